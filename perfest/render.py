"""Rendering for people (rich tables) and for scripts (JSON, CSV). Units are formatted here only."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from perfest.results import OP_FIELDS, Estimate, PhaseEstimate

_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """1.23e12, "FLOP" → '1.23 TFLOP'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞"
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip()


def seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def gb(value: float) -> str:
    return f"{value / 1e9:,.2f} GB"


def count(value: int) -> str:
    """Parameter counts: 6.74 B, 124.4 M, 266 k."""
    if value >= 1e9:
        return f"{value / 1e9:.2f} B"
    return f"{value / 1e6:.1f} M" if value >= 1e6 else f"{value / 1e3:.3g} k"


def intensity(value: float | None) -> str:
    return "–" if value is None else ("∞" if math.isinf(value) else f"{value:,.1f}")


def dumps(data: Any) -> str:
    """JSON with infinities as null (JSON has no infinity)."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        if isinstance(obj, dict):
            return {key: clean(value) for key, value in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(value) for value in obj]
        return obj

    return json.dumps(clean(data), indent=2)


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


OP_COLUMNS = OP_FIELDS  # the JSON keys of a row, in order


def estimate_csv(est: Estimate) -> str:
    """One row per op of every phase (prefill and the decode step)."""
    rows = []
    for phase in est.phases:
        for op in phase.layers:
            rows.append([phase.phase, *(getattr(op, col) for col in OP_COLUMNS)])
    return to_csv(("phase", *OP_COLUMNS), rows)


def bound_style(bound: str) -> str:
    """The bound, coloured for rich."""
    colours = {
        "compute": "green",
        "memory": "cyan",
        "communication": "magenta",
        "overhead": "yellow",
    }
    colour = colours.get(bound, "")
    return f"[{colour}]{bound}[/]" if colour else bound


def phase_table(phase: PhaseEstimate, title: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    for col in ("op", "×", "FLOPs", "bytes", "FLOP/B", "time", "roofline", "bound", "share"):
        table.add_column(col, justify="left" if col in ("op", "bound") else "right")
    for op in phase.layers:
        share = op.time_s / phase.time_s if phase.time_s else 0.0
        table.add_row(
            op.name,
            str(op.count),
            si(op.flops),
            si(op.bytes, "B"),
            intensity(op.intensity),
            seconds(op.time_s),
            seconds(op.roofline_time_s),
            bound_style(op.bound),
            f"{share:.0%}",
        )
    table.add_section()
    table.add_row(
        "total",
        "",
        si(phase.flops),
        si(phase.bytes, "B"),
        intensity(phase.intensity),
        seconds(phase.time_s),
        seconds(phase.roofline_time_s),
        bound_style(phase.bound),
        "",
    )
    return table


def render_estimate(est: Estimate, console: Console, layers: bool = False) -> None:
    w = est.workload
    mem, gen = est.memory, est.generation
    console.print(
        f"[bold]{est.model}[/] on [bold]{est.hardware}[/]"
        + (f" ×{w.tp} (tensor parallel)" if w.tp > 1 else "")
        + f" · batch {w.batch} · {w.input_len} in / {w.output_len} out · {w.dtype}"
        + (f", weights {w.weight_dtype}" if w.weight_dtype else "")
        + (f", KV {w.kv_dtype}" if w.kv_dtype else "")
    )
    console.print(
        f"{count(est.parameters)} parameters · ridge point {est.ridge_point:,.0f} FLOP/B · "
        f"efficiency: compute {est.compute_efficiency:.0%}, memory {est.memory_efficiency:.0%}"
    )
    table = Table(show_edge=False, title_justify="left")
    for col in (
        "phase",
        "tokens",
        "context",
        "FLOPs",
        "bytes",
        "FLOP/B",
        "predicted",
        "roofline",
        "overhead",
        "bound",
    ):
        table.add_column(col, justify="left" if col in ("phase", "bound") else "right")
    for phase in est.phases:
        table.add_row(
            phase.phase,
            str(phase.batch * phase.query_len),
            str(phase.context_len),
            si(phase.flops),
            si(phase.bytes, "B"),
            intensity(phase.intensity),
            seconds(phase.time_s),
            seconds(phase.roofline_time_s),
            seconds(phase.overhead_s),
            bound_style(phase.bound),
        )
    console.print(table)
    gen_table = Table(show_edge=False, show_header=True)
    for col in ("", "predicted", "roofline bound"):
        gen_table.add_column(col, justify="left" if not col else "right")
    gen_table.add_row("time to first token", seconds(gen.ttft_s), seconds(gen.roofline_ttft_s))
    gen_table.add_row("time per output token", seconds(gen.tpot_s), seconds(gen.roofline_tpot_s))
    gen_table.add_row("end-to-end latency", seconds(gen.e2e_latency_s), "")
    gen_table.add_row(
        "output tokens/s (batch)",
        f"{gen.output_tokens_per_s:,.1f}",
        f"{gen.roofline_output_tokens_per_s:,.1f}",
    )
    gen_table.add_row("tokens/s per sequence", f"{gen.per_sequence_tokens_per_s:,.1f}", "")
    console.print(gen_table)
    fits = "[green]fits[/]" if mem.fits else "[red]does not fit[/]"
    console.print(
        f"memory per device: weights {gb(mem.weights_bytes)} + KV cache "
        f"{gb(mem.kv_cache_bytes)} + activations {gb(mem.activation_bytes)} = "
        f"{gb(mem.total_bytes)} of {gb(mem.capacity_bytes)} — {fits} "
        f"(largest batch that fits: {mem.max_batch})"
    )
    if layers:
        console.print(phase_table(est.prefill, "prefill, per op"))
        title = f"decode step at context {est.decode.context_len}, per op"
        console.print(phase_table(est.decode, title))


def catalog_table(kind: str, specs: Sequence[Any]) -> Table:
    from perfest.parameters import count_parameters

    table = Table(show_edge=False)
    if kind == "models":
        for col in ("id", "name", "params", "L", "h", "heads", "kv", "d", "i", "V", "mlp"):
            table.add_column(col, justify="left" if col in ("id", "name", "mlp") else "right")
        for m in specs:
            table.add_row(
                m.name,
                m.label,
                count(count_parameters(m)),
                str(m.L),
                str(m.h),
                str(m.n_h),
                str(m.n_kv),
                str(m.d),
                str(m.i),
                str(m.V),
                m.mlp,
            )
    else:
        for col in ("id", "name", "bf16", "fp8", "memory", "bandwidth", "ridge (bf16)"):
            table.add_column(col, justify="left" if col in ("id", "name") else "right")
        for hw in specs:
            fp8 = si(hw.fp8_tflops * 1e12, "FLOP/s") if hw.fp8_tflops else "–"
            bf16 = si(hw.bf16_tflops * 1e12, "FLOP/s") if hw.bf16_tflops else "–"
            ridge = f"{hw.ridge_point('bf16'):,.0f}" if hw.bf16_tflops else "–"
            table.add_row(
                hw.name,
                hw.label,
                bf16,
                fp8,
                gb(hw.memory_bytes),
                si(hw.memory_bandwidth, "B/s"),
                ridge,
            )
    return table


def _facts(rows: Iterable[tuple[str, str]]) -> Table:
    table = Table(show_header=False, show_edge=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


def show_model(m: Any, console: Console) -> None:
    from perfest.parameters import count_parameters, parameter_breakdown

    total = count_parameters(m)
    parts = ", ".join(f"{k} {count(v)}" for k, v in parameter_breakdown(m).items())
    console.print(
        _facts(
            [
                ("model", f"{m.name} ({m.label})"),
                ("parameters", f"{total:,} ({count(total)}): {parts}"),
                ("layers L", str(m.L)),
                ("hidden h", str(m.h)),
                ("heads n_h / n_kv", f"{m.n_h} / {m.n_kv} ({m.attention_kind})"),
                ("head dim d", str(m.d)),
                ("intermediate i", f"{m.i} ({m.mlp}, {m.activation})"),
                ("vocab V", str(m.V)),
                (
                    "norm, positions",
                    f"{m.norm}, {m.position}"
                    + (f" (rotary dim {m.rope_dim})" if m.rope_dim and m.rope_dim != m.d else ""),
                ),
                ("block", "parallel attention + MLP" if m.parallel_block else "sequential"),
                ("tied embeddings", "yes" if m.tied_embeddings else "no"),
                ("max positions", str(m.max_position_embeddings)),
                ("aliases", ", ".join(m.aliases) or "–"),
                ("source", m.source or "–"),
            ]
        )
    )


def show_hardware(hw: Any, console: Console) -> None:
    peaks = ", ".join(f"{dt} {si(hw.peak_flops(dt), 'FLOP/s')}" for dt in hw.dtypes)
    rows = [
        ("device", f"{hw.name} ({hw.label})"),
        ("vendor", hw.vendor or "–"),
        ("dense peaks", peaks),
        ("memory", f"{gb(hw.memory_bytes)} at {si(hw.memory_bandwidth, 'B/s')}"),
        ("ridge points", ", ".join(f"{dt} {hw.ridge_point(dt):,.0f} FLOP/B" for dt in hw.dtypes)),
        (
            "interconnect",
            f"{hw.interconnect or '–'}, {si(hw.interconnect_bandwidth, 'B/s')} "
            f"per direction, α = {hw.interconnect_latency_us:g} µs",
        ),
        ("compute units", str(hw.compute_units)),
        ("efficiency", f"compute {hw.compute_efficiency:.0%}, memory {hw.memory_efficiency:.0%}"),
        ("kernel launch", f"{hw.kernel_launch_us:g} µs"),
        ("aliases", ", ".join(hw.aliases) or "–"),
        ("source", hw.source or "–"),
    ]
    if hw.calibration:
        rows.append(("calibration", ", ".join(f"{k}: {v}" for k, v in hw.calibration.items())))
    console.print(_facts(rows))
