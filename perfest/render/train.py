"""The tables of `perfest train`: a step, a scaling curve, the best layouts."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from perfest.render import bound_style, count, gb, intensity, seconds, si
from perfest.training.results import TrainingEstimate, TrainPhase
from perfest.training.search import SearchResult


def _layout(est: TrainingEstimate) -> str:
    lay, c = est.layout, est.config
    parts = [f"tp {lay.tp}", f"pp {lay.pp}", f"cp {lay.cp}", f"dp {lay.dp}"]
    if lay.ep > 1 or lay.etp > 1:
        parts.append(f"ep {lay.ep} · etp {lay.etp} · expert dp {lay.edp}")
    if lay.interleave > 1:
        parts.append(f"v {lay.interleave}")
    if lay.sequence_parallel:
        parts.append("sequence-parallel")
    parts.append(f"ZeRO-{lay.zero}" if lay.zero else "no ZeRO")
    return (
        " · ".join(parts)
        + f" | batch {c.global_batch} = {lay.dp} × {lay.micro_batches} × {lay.micro_batch}"
        + f" · seq {c.seq_len} · {c.dtype} · {c.optimizer} · recompute {lay.recompute}"
        + f" · {c.attention} attention"
    )


def render_training(est: TrainingEstimate, console: Console, layers: bool = False) -> None:
    console.print(
        f"[bold]{est.model}[/] on {est.layout.devices} × [bold]{est.hardware}[/] · "
        f"{count(est.parameters)} parameters"
    )
    console.print(_layout(est))
    summary = Table(show_edge=False, show_header=False)
    summary.add_column("")
    summary.add_column("", justify="right")
    for label, value in (
        ("step time", seconds(est.step_time_s)),
        ("roofline bound", seconds(est.roofline_step_s)),
        ("tokens/s (cluster)", f"{est.tokens_per_s:,.0f}"),
        ("tokens/s per GPU", f"{est.tokens_per_s_per_gpu:,.1f}"),
        ("model TFLOP/s per GPU", f"{est.model_tflops_per_gpu:,.1f}"),
        ("hardware TFLOP/s per GPU", f"{est.hardware_tflops_per_gpu:,.1f}"),
        (f"MFU / HFU (of {est.peak_tflops:,.0f} TFLOP/s)", f"{est.mfu:.1%} / {est.hfu:.1%}"),
    ):
        summary.add_row(label, value)
    console.print(summary)
    console.print(_breakdown(est))
    if est.collectives:
        console.print(_collectives(est))
    _memory(est, console)
    if est.time_to_train is not None:
        t = est.time_to_train
        console.print(
            f"{t.tokens:.3g} tokens: {t.days:,.1f} days on {est.layout.devices} GPUs "
            f"({t.gpu_hours:,.0f} GPU-hours)"
        )
    if layers:
        for phase in est.phases:
            if phase.runs and phase.time_s:
                console.print(phase_table(phase))


def _breakdown(est: TrainingEstimate) -> Table:
    table = Table(title="step time", title_justify="left", show_edge=False)
    for col in ("", "time", "share"):
        table.add_column(col, justify="left" if not col else "right")
    for name, value in est.breakdown.to_dict().items():
        label = name.removesuffix("_s").replace("_", " ")
        if name == "communication_s":
            label = "communication (exposed)"
        table.add_row(label, seconds(value), f"{value / est.step_time_s:.1%}")
    return table


def _collectives(est: TrainingEstimate) -> Table:
    table = Table(title="communication per step", title_justify="left", show_edge=False)
    for col in ("collective", "link", "total", "exposed"):
        table.add_column(col, justify="left" if col in ("collective", "link") else "right")
    for c in est.collectives:
        table.add_row(c.name, c.link, seconds(c.total_s), seconds(c.exposed_s))
    return table


def _memory(est: TrainingEstimate, console: Console) -> None:
    m = est.memory
    terms = [("weights", m.weights_bytes), ("gathered (ZeRO-3)", m.gathered_bytes),
             ("gradients", m.gradient_bytes), ("master", m.master_bytes),
             ("optimizer", m.optimizer_bytes), ("activations", m.activation_bytes),
             ("logits", m.logits_bytes)]  # fmt: skip
    shown = " + ".join(f"{name} {gb(value)}" for name, value in terms if value)
    fits = "[green]fits[/]" if m.fits else "[red]does not fit[/]"
    console.print(
        f"memory per device (stage {m.stage}): {shown} = {gb(m.per_device_bytes)} of "
        f"{gb(m.capacity_bytes)} — {fits} (largest micro-batch that fits: {m.max_micro_batch})"
    )


def phase_table(phase: TrainPhase) -> Table:
    title = f"{phase.phase}, per op"
    if phase.phase != "optimizer":
        title += " (one micro-batch on the slowest stage)"
    table = Table(title=title, title_justify="left", show_edge=False)
    for col in ("op", "×", "FLOPs", "bytes", "FLOP/B", "time", "roofline", "bound"):
        table.add_column(col, justify="left" if col in ("op", "bound") else "right")
    for op in phase.layers:
        table.add_row(op.name, str(op.count), si(op.flops), si(op.bytes, "B"),
                      intensity(op.intensity), seconds(op.time_s), seconds(op.roofline_time_s),
                      bound_style(op.bound))  # fmt: skip
    return table


def render_scaling(ests: Sequence[TrainingEstimate], console: Console, weak: bool = False) -> None:
    first = ests[0]
    kind = "weak (fixed batch per GPU)" if weak else "strong (fixed global batch)"
    console.print(f"[bold]{first.model}[/] on [bold]{first.hardware}[/]: {kind} scaling")
    table = Table(show_edge=False)
    for col in ("GPUs", "dp", "batch", "step", "tokens/s", "per GPU", "MFU", "bubble",
                "comm.", "memory", "fits"):  # fmt: skip
        table.add_column(col, justify="right")
    for e in ests:
        fits = "yes" if e.memory.fits else "[red]no[/]"
        table.add_row(str(e.layout.devices), str(e.layout.dp), str(e.config.global_batch),
                      seconds(e.step_time_s), f"{e.tokens_per_s:,.0f}",
                      f"{e.tokens_per_s_per_gpu:,.1f}", f"{e.mfu:.1%}",
                      seconds(e.breakdown.bubble_s), seconds(e.breakdown.communication_s),
                      gb(e.memory.per_device_bytes), fits)  # fmt: skip
    console.print(table)


def render_search(result: SearchResult, console: Console) -> None:
    console.print(
        f"[bold]{result.model}[/] on {result.gpus} × [bold]{result.hardware}[/] · batch "
        f"{result.global_batch} · seq {result.seq_len}: {result.evaluated:,} layouts in "
        f"{result.seconds:.2f} s ({result.evaluated / result.seconds:,.0f}/s), "
        f"{result.fitting:,} fit in memory"
    )
    table = Table(show_edge=False)
    experts = any(r.candidate.layout.ep * r.candidate.layout.etp > 1 for r in result.top)
    for col in ("#", "tp", "pp", "cp", "dp", *(("ep", "etp") if experts else ()), "b", "v",
                "ZeRO", "recompute", "step", "tokens/s/GPU", "MFU", "memory", "why"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("recompute", "why") else "right")
    for i, ranked in enumerate(result.top, 1):
        c, lay = ranked.candidate, ranked.candidate.layout
        degrees = [lay.tp, lay.pp, lay.cp, lay.dp, *((lay.ep, lay.etp) if experts else ())]
        table.add_row(str(i), *map(str, degrees),
                      str(lay.micro_batch), str(lay.interleave), str(lay.zero), lay.recompute,
                      seconds(c.step_s), f"{c.tokens_per_s / result.gpus:,.1f}", f"{c.mfu:.1%}",
                      gb(c.memory_bytes), ranked.reason)  # fmt: skip
    console.print(table)
    if not result.top:
        console.print("[red]no layout fits in memory[/]")
