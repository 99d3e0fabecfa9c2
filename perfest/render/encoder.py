"""The tables of `perfest estimate` and `perfest sweep` for an encoder: one pass, its latency,
sequences/s and tokens/s, memory (no KV cache), and the per-op rows."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from perfest.encoder_sweeps import EncoderSweepResult, EncoderSweepSummary
from perfest.render import bound_style, count, gb, intensity, seconds, si
from perfest.render.estimate import phase_table
from perfest.results import Estimate


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _dtypes(w: dict) -> str:
    return w["dtype"] + (f", weights {w['weight_dtype']}" if w["weight_dtype"] else "")


def render_encoding(est: Estimate, console: Console, layers: bool = False) -> None:
    w, mem, enc = est.workload, est.memory, est.encoding
    head = w.head
    console.print(
        f"[bold]{est.model}[/] on [bold]{est.hardware}[/]"
        + (f" ×{w.tp} (tensor parallel)" if w.tp > 1 else "")
        + f" · encoder, head {head} · batch {w.batch} · {w.input_len} tokens · "
        + _dtypes(w.model_dump())
    )
    console.print(
        f"{count(est.parameters)} parameters · ridge point {est.ridge_point:,.0f} FLOP/B · "
        f"efficiency: compute {est.compute_efficiency:.0%}, memory {est.memory_efficiency:.0%}"
    )
    console.print(_phase_row(est.encode))
    console.print(_rates(enc))
    fits = "[green]fits[/]" if mem.fits else "[red]does not fit[/]"
    console.print(
        f"memory per device: weights {gb(mem.weights_bytes)} + activations "
        f"{gb(mem.activation_bytes)} (no KV cache) = {gb(mem.total_bytes)} of "
        f"{gb(mem.capacity_bytes)} — {fits} (largest batch that fits: {mem.max_batch:,})"
    )
    if layers:
        title = f"encode ({w.input_len} tokens, head {head}), per op"
        console.print(phase_table(est.encode, title))


def _phase_row(phase) -> Table:
    table = Table(show_edge=False)
    columns = ("phase", "tokens", "FLOPs", "bytes", "FLOP/B", "predicted", "roofline", "bound")
    for col in columns:
        table.add_column(col, justify="left" if col in ("phase", "bound") else "right")
    table.add_row(
        phase.phase,
        str(phase.batch * phase.query_len),
        si(phase.flops),
        si(phase.bytes, "B"),
        intensity(phase.intensity),
        seconds(phase.time_s),
        seconds(phase.roofline_time_s),
        bound_style(phase.bound),
    )
    return table


def _rates(enc) -> Table:
    rates = Table(show_edge=False)
    for col in ("", "predicted", "roofline bound"):
        rates.add_column(col, justify="left" if not col else "right")
    rates.add_row("latency (the batch)", seconds(enc.latency_s), seconds(enc.roofline_latency_s))
    rates.add_row("sequences/s", _rate(enc.sequences_per_s), _rate(enc.roofline_sequences_per_s))
    rates.add_row("tokens/s", _rate(enc.tokens_per_s), _rate(enc.roofline_tokens_per_s))
    return rates


_COLUMNS = ("batch", "latency", "seq/s", "tok/s", "FLOP/B", "bound", "memory", "fits")


def render_encoder_sweep(result: EncoderSweepResult, console: Console) -> None:
    w = result.workload
    console.print(
        f"[bold]{result.model}[/] on [bold]{', '.join(result.hardware)}[/] · encoder"
        + (f" ×{w['tp']} (tensor parallel)" if w["tp"] > 1 else "")
        + (f" · {result.input_lens[0]} tokens" if len(result.input_lens) == 1 else "")
        + f" · {_dtypes(w)} · {len(result.points)} points"
    )
    varied = {"gpu": len(result.hardware) > 1, "input": len(result.input_lens) > 1}
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1))
    for col in [c for c, shown in varied.items() if shown] + list(_COLUMNS):
        table.add_column(col, justify="left" if col in ("gpu", "bound", "fits") else "right")
    for p in result.points:
        lead = {"gpu": p.hardware, "input": str(p.input_len)}
        table.add_row(
            *(lead[c] for c, shown in varied.items() if shown),
            str(p.batch),
            seconds(p.latency_s),
            _rate(p.sequences_per_s),
            _rate(p.tokens_per_s),
            f"{p.intensity:,.1f}",
            bound_style(p.bound),
            f"{p.memory_bytes / 1e9:,.2f} GB",
            "yes" if p.fits else "[red]no[/]",
        )
    console.print(table)
    for s in result.summaries:
        console.print(summary_line(s, len(result.summaries) > 1))


def summary_line(s: EncoderSweepSummary, named: bool) -> str:
    """Where the pass turns compute-bound, the memory limit, the best batch: one line."""
    where = f"{s.hardware}, {s.input_len} tokens: " if named else ""
    ridge = (
        f"analytic ridge-point batch ≈ {s.ridge_batch:,.1f} = ridge point {s.ridge_point:,.0f} "
        f"FLOP/B × {s.bytes_per_weight:g} B per weight ÷ (2 FLOP × {s.input_len} tokens)"
    )
    if s.knee_batch is None:
        knee = f"[bold]knee[/]: none up to batch {s.largest_swept_batch:,} ({ridge})"
    else:
        knee = f"[bold]knee[/]: compute-bound from batch {s.knee_batch:,} ({ridge})"
    best = (
        "no swept batch fits"
        if s.best_batch is None
        else f"batch {s.best_batch:,}, {s.best_sequences_per_s:,.0f} sequences/s"
    )
    return (
        f"{where}{knee}; [bold]memory[/]: up to batch {s.max_batch:,}; [bold]best[/] that fits: "
        f"{best}."
    )
