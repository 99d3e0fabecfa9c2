"""The tables of `perfest estimate`: phases, the generation, memory, and the per-op rows."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from perfest.render import bound_style, count, gb, intensity, seconds, si
from perfest.results import Estimate, OpEstimate, PhaseEstimate


def _op_label(segment: str, name: str) -> str:
    """An op's name, with its decoder segment's kind where a model has several ("moe: qkv_proj",
    "window: attn_scores")."""
    if segment.startswith("decoder."):
        return f"{segment.removeprefix('decoder.')}: {name}"
    return name


def phase_table(phase: PhaseEstimate, title: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    for col in ("op", "×", "FLOPs", "bytes", "FLOP/B", "time", "roofline", "bound", "share"):
        table.add_column(col, justify="left" if col in ("op", "bound") else "right")
    for row in phase.rows:
        op = OpEstimate.of(row)
        share = op.time_s / phase.time_s if phase.time_s else 0.0
        table.add_row(
            _op_label(row.segment, op.name),
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


def _active(est: Estimate) -> str:
    """ " (12.9 B active per token)" for a mixture of experts, else nothing."""
    ctx = est.prefill.plan.ctx
    if ctx is None or not ctx.model.moe:
        return ""
    from perfest.parameters import active_parameters

    return f" ({count(active_parameters(ctx.model))} active per token)"


def render_estimate(est: Estimate, console: Console, layers: bool = False) -> None:
    if est.encoding is not None:  # an encoder: one pass, nothing generated
        from perfest.render.encoder import render_encoding

        render_encoding(est, console, layers)
        return
    w = est.workload
    mem, gen = est.memory, est.generation
    console.print(
        f"[bold]{est.model}[/] on [bold]{est.hardware}[/]"
        + (f" ×{w.tp} (tensor parallel)" if w.tp > 1 else "")
        + (f" · experts over {w.ep} devices" if w.ep > 1 else "")
        + (" · data-parallel attention" if w.dp_attention else "")
        + f" · batch {w.batch} · {w.input_len} in / {w.output_len} out · {w.dtype}"
        + (f", weights {w.weight_dtype}" if w.weight_dtype else "")
        + (f", KV {w.kv_dtype}" if w.kv_dtype else "")
    )
    console.print(
        f"{count(est.parameters)} parameters{_active(est)} · "
        f"ridge point {est.ridge_point:,.0f} FLOP/B · "
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
    encoded = est.phases[0].phase == "encode"  # an encoder-decoder: the encoder comes first
    ttft = "time to first token" + (" (encode + prefill)" if encoded else "")
    gen_table.add_row(ttft, seconds(gen.ttft_s), seconds(gen.roofline_ttft_s))
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
        for phase in est.phases:
            console.print(phase_table(phase, PHASE_TITLES[phase.phase].format(phase=phase)))


#: The title of each phase's per-op table.
PHASE_TITLES = {
    "encode": "encode (the encoder over {phase.query_len} tokens), per op",
    "prefill": "prefill, per op",
    "decode": "decode step at context {phase.context_len}, per op",
}


def render_comparison(c, console: Console) -> None:
    """`--compare`: per phase and op group, bytes, FLOP/B, time and kernels under each variant
    (one cell per metric, the variants in order: a → b → c)."""
    console.print(
        f"[bold]{c.model}[/] on [bold]{c.hardware}[/] · {c.axis}: " + " → ".join(c.variants)
    )

    def cells(values, fmt) -> str:
        return " → ".join(fmt(v) for v in values)

    for index, est in enumerate(c.estimates[0].phases):
        table = Table(title=f"{est.phase}, per op group", title_justify="left", show_edge=False)
        for col in ("group", "bytes", "FLOP/B", "time", "kernels"):
            table.add_column(col, justify="left" if col == "group" else "right")
        for g in (g for g in c.groups if g.phase == est.phase):
            table.add_row(
                g.group,
                cells(g.bytes, lambda v: si(v, "B")),
                cells(g.intensity, intensity),
                cells(g.time_s, seconds),
                cells(g.kernels, str),
            )
        phases = [e.phases[index] for e in c.estimates]
        table.add_section()
        table.add_row(
            "total",
            cells([p.bytes for p in phases], lambda v: si(v, "B")),
            cells([p.intensity for p in phases], intensity),
            cells([p.time_s for p in phases], seconds),
            "",
        )
        console.print(table)
