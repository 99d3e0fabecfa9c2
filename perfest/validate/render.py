"""Tables for `perfest validate` and `perfest calibrate` (units formatted here only)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from perfest.export import to_csv
from perfest.render import seconds, si
from perfest.specs import HardwareSpec
from perfest.validate.run import Validation
from perfest.validate.train_run import TrainValidation


def _err(pct: float) -> str:
    colour = "green" if abs(pct) <= 30 else ("yellow" if abs(pct) <= 60 else "red")
    return f"[{colour}]{pct:+.0f} %[/]"


def render_validation(v: Validation, console: Console) -> None:
    w = v.workload
    console.print(
        f"[bold]{v.model}[/] on {v.device} (torch {v.torch}), predicted with {v.hardware}: "
        f"batch {w['batch']}, input {w['input_len']}"
        + (f", output {w['output_len']}" if "output_len" in w else "")  # an encoder has none
        + f", {w['dtype']}, "
        f"{w['attention']} attention"
    )
    phases = Table(title="phases (error = (predicted − measured) / measured)", title_justify="left")
    for col in ("phase", "mode", "predicted", "measured", "error", "FLOP/s", "of peak", "GB/s",
                "of peak"):  # fmt: skip
        phases.add_column(col, justify="left" if col in ("phase", "mode") else "right")
    for p in v.phases:
        phases.add_row(
            p.phase,
            f"{p.mode} ({p.fusion})",
            seconds(p.predicted_s),
            seconds(p.measured_s),
            _err(p.error_pct),
            si(p.achieved_flops_s, "FLOP/s"),
            f"{p.achieved_flops_s / v.peak_flops_s:.0%}",
            f"{p.achieved_bytes_s / 1e9:.1f}",
            f"{p.achieved_bytes_s / v.peak_bytes_s:.0%}",
        )
    console.print(phases)
    groups = Table(title="op groups (eager, measured with per-module hooks)", title_justify="left")
    for col in ("phase", "group", "predicted", "measured", "error"):
        groups.add_column(col, justify="left" if col in ("phase", "group") else "right")
    for p in v.phases:
        for g in p.groups:
            groups.add_row(
                p.phase, g.group, seconds(g.predicted_s), seconds(g.measured_s), _err(g.error_pct)
            )
    console.print(groups)
    verdict = "[green]exact[/]" if v.flops_match else "[red]MISMATCH[/]"
    console.print(f"matmul FLOPs, reference (FlopCounterMode) vs perfest: {verdict}")


def validation_csv(v: Validation) -> str:
    rows = []
    for p in v.phases:
        rows.append([p.phase, p.mode, "total", p.predicted_s, p.measured_s, p.error_pct])
        rows += [[p.phase, p.mode, g.group, g.predicted_s, g.measured_s, g.error_pct]
                 for g in p.groups]  # fmt: skip
    return to_csv(("phase", "mode", "group", "predicted_s", "measured_s", "error_pct"), rows)


def render_calibration(spec: HardwareSpec, curves: dict, console: Console) -> None:
    console.print(f"[bold]{spec.label}[/]")
    table = Table(title="square GEMM FLOP/s by size", title_justify="left")
    table.add_column("dtype")
    sizes = sorted({n for curve in curves.values() for n in curve})
    for n in sizes:
        table.add_column(f"n={n}", justify="right")
    for dtype, curve in curves.items():
        table.add_row(dtype, *(si(curve[n], "FLOP/s") if n in curve else "–" for n in sizes))
    console.print(table)
    skinny = spec.gemm_memory_efficiency or spec.memory_efficiency
    cal = spec.calibration or {}
    spread = ""
    if "memory_bandwidth_gb_s_low" in cal:
        spread = (
            f", samples {cal['memory_bandwidth_gb_s_low']:g}–{cal['memory_bandwidth_gb_s_high']:g}"
            f" over {cal['memory_bandwidth_gb_s_rounds']} rounds"
        )
    console.print(
        f"memory bandwidth {spec.memory_bandwidth_gb_s:g} GB/s{spread} (weight streaming "
        f"{spec.memory_efficiency:.0%} of it, {spec.gemv_row_ns:g} ns per GEMV row, "
        f"{skinny:.0%} for m ≥ 2); inference-shaped GEMMs {spec.compute_efficiency:.0%}"
        f" of peak; element-wise {si(spec.vector_flops, 'FLOP/s')}; per-op overhead "
        f"{spec.kernel_launch_us:g} µs; memory {spec.memory_gb:g} GB"
    )


def render_train_validation(v: TrainValidation, console: Console) -> None:
    console.print(
        f"[bold]{v.model}[/] training step on {v.device} (torch {v.torch}), predicted with "
        f"{v.hardware}: batch {v.batch}, sequence {v.seq_len}, {v.dtype}, {v.optimizer}, "
        f"{v.attention} attention"
    )
    table = Table(title="phases (error = (predicted − measured) / measured)", title_justify="left")
    for col in ("phase", "predicted", "measured", "error"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for p in v.phases:
        table.add_row(p.phase, seconds(p.predicted_s), seconds(p.measured_s), _err(p.error_pct))
    console.print(table)


def train_validation_csv(v: TrainValidation) -> str:
    rows = [[p.phase, p.predicted_s, p.measured_s, p.error_pct] for p in v.phases]
    return to_csv(("phase", "predicted_s", "measured_s", "error_pct"), rows)
