"""The tables and sentences of `perfest sweep`: a row per point, the knee explained, the
memory limit and the best batch."""

from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.table import Table

from perfest.render import bound_style, gb, seconds
from perfest.sweeps import SweepPoint, SweepResult, SweepSummary


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def render_sweep(result: SweepResult, console: Console) -> None:
    w = result.workload
    console.print(
        f"[bold]{result.model}[/] on [bold]{', '.join(result.hardware)}[/]"
        + (f" ×{w['tp']} (tensor parallel)" if w["tp"] > 1 else "")
        + (
            f" · {result.input_lens[0]} in / {result.output_lens[0]} out"
            if len(result.input_lens) == len(result.output_lens) == 1
            else ""
        )
        + f" · {w['dtype']}"
        + (f", weights {w['weight_dtype']}" if w["weight_dtype"] else "")
        + (f", KV {w['kv_dtype']}" if w["kv_dtype"] else "")
        + f" · {len(result.points)} points"
    )
    capacities = {p.hardware: gb(p.capacity_bytes) for p in result.points}
    named = [f"{hw} {c}" for hw, c in capacities.items()]
    console.print(
        "memory capacity per device: "
        + (", ".join(named) if len(capacities) > 1 else next(iter(capacities.values())))
    )
    console.print(points_table(result, notes=console.width >= NOTES_MIN_WIDTH))
    if len(result.summaries) == 1:
        (summary,) = result.summaries
        for line in summary_lines(summary, result.series(summary)):
            console.print(line)
    else:
        console.print(summary_table(result))
        console.print(KNEE_LEGEND)


def points_table(result: SweepResult, notes: bool = True) -> Table:
    """A row per point; `notes` adds a column naming the knee and the best fitting batch."""
    varied = {
        "gpu": len(result.hardware) > 1,
        "input": len(result.input_lens) > 1,
        "output": len(result.output_lens) > 1,
    }
    columns = [c for c, shown in varied.items() if shown] + list(_POINT_COLUMNS)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1))
    for col in columns + ([""] if notes else []):
        table.add_column(col, justify="left" if col in ("gpu", "bound", "fits", "") else "right")
    marks = _marks(result.summaries) if notes else {}
    for p in result.points:
        lead = {"gpu": p.hardware, "input": str(p.input_len), "output": str(p.output_len)}
        note = marks.get((p.hardware, p.input_len, p.output_len, p.batch), "")
        table.add_row(
            *(lead[c] for c, shown in varied.items() if shown),
            str(p.batch),
            _rate(p.output_tokens_per_s),
            _rate(p.per_sequence_tokens_per_s),
            seconds(p.ttft_s),
            seconds(p.tpot_s),
            seconds(p.e2e_latency_s),
            f"{p.decode_intensity:,.1f}",
            bound_style(p.decode_bound),
            f"{p.memory_bytes / 1e9:,.1f} GB",
            "yes" if p.fits else "[red]no[/]",
            *([note] if notes else []),
        )
    return table


#: After the varied axes: output tokens/s of the whole batch and of one sequence, latencies,
#: the decode step's intensity and bound, memory per device and whether it fits.
_POINT_COLUMNS = (
    "batch",
    "tok/s",
    "per seq",
    "TTFT",
    "TPOT",
    "e2e",
    "FLOP/B",
    "bound",
    "memory",
    "fits",
)
#: Terminals this wide get the note column (knee, best); without it one device's table fits
#: in 80 columns.
NOTES_MIN_WIDTH = 100


def _marks(summaries: tuple[SweepSummary, ...]) -> dict[tuple, str]:
    """Notes beside the knee, the matmul knee and the best fitting batch of each series."""
    marks: dict[tuple, list[str]] = {}
    for s in summaries:
        key = (s.hardware, s.input_len, s.output_len)
        if s.knee_batch is not None:
            marks.setdefault((*key, s.knee_batch), []).append("knee")
        elif s.weights_knee_batch is not None:
            marks.setdefault((*key, s.weights_knee_batch), []).append("matmul knee")
        if s.best_batch is not None:
            marks.setdefault((*key, s.best_batch), []).append("best")
    return {key: ", ".join(notes) for key, notes in marks.items()}


def summary_lines(s: SweepSummary, points: tuple[SweepPoint, ...]) -> list[str]:
    """The knee (explained in one sentence), the memory limit and the best fitting batch."""
    lines = [knee_sentence(s, points)]
    lines.append(
        f"[bold]memory[/]: the largest batch that fits is {s.max_batch:,} at {s.input_len} + "
        f"{s.output_len} tokens" + (" (no sequence fits)" if s.max_batch == 0 else "") + "."
    )
    if s.best_batch is None:
        lines.append("[bold]best[/]: no swept batch fits in memory.")
    else:
        lines.append(
            f"[bold]best[/] throughput that fits: batch {s.best_batch:,}, "
            f"{s.best_tokens_per_s:,.0f} output tokens/s."
        )
    return lines


def _ridge(s: SweepSummary) -> str:
    if s.experts:
        return _moe_ridge(s)
    return (
        f"analytic ridge-point batch ≈ {s.ridge_batch:,.0f} = ridge point "
        f"{s.ridge_point:,.0f} FLOP/B × {s.bytes_per_weight:g} B per weight ÷ 2 FLOP"
    )


def _moe_ridge(s: SweepSummary) -> str:
    """The ridge-point batch of a mixture of experts, with experts touched (perfest.sweeps)."""
    E, k = s.experts, s.experts_per_token
    dense = s.ridge_point * s.bytes_per_weight / 2
    return (
        f"analytic ridge-point batch ≈ {s.ridge_batch:,.0f}, where the experts' weight matmuls "
        f"reach the ridge point {s.ridge_point:,.0f} FLOP/B: 2·b·{k} FLOP per "
        f"{s.bytes_per_weight:g} B expert weight read, shared only by the tokens that pick the "
        f"same expert — a step of b sequences touches {E}·(1 − (1 − {k}/{E})^b) of the {E} "
        f"experts ({s.ridge_experts_touched:,.1f} at the ridge); a dense model's "
        f"ridge point × {s.bytes_per_weight:g} B ÷ 2 = {dense:,.0f} holds for the attention "
        "and shared weights only"
    )


_KV = "attention's KV reads, which batching cannot share"


def knee_sentence(s: SweepSummary, points: tuple[SweepPoint, ...]) -> str:
    """Where decode turns compute-bound and why, in one sentence."""
    knee = s.knee_batch
    if knee is None:
        return _no_knee_sentence(s)
    if knee == points[0].batch and knee < s.ridge_batch:
        text = (
            f"[bold]knee[/]: decode is compute-bound already at batch {knee:,}, below the "
            f"{_ridge(s)}, so tile padding, dequantization or element-wise work, not weight "
            "reads, set its pace (see `perfest estimate --layers`)"
        )
    elif knee == points[0].batch:
        text = (
            f"[bold]knee[/]: decode is compute-bound from the smallest swept batch, {knee:,} "
            f"({_ridge(s)}); sweep smaller batches to see it turn"
        )
    else:
        text = (
            f"[bold]knee[/]: decode turns compute-bound at batch {knee:,} ({_ridge(s)}) — below "
            "it each step is paced by reading the weights, which the whole batch shares, so "
            "throughput grows almost linearly with batch; above it the step is paced by FLOPs, "
            "so throughput flattens while each sequence waits longer"
        )
    back = next((p for p in points if p.batch > knee and p.decode_bound != "compute"), None)
    if back is not None:
        text += f"; from batch {back.batch:,} it is {back.decode_bound}-bound again, as {_KV}, grow"
    return text + "."


def _no_knee_sentence(s: SweepSummary) -> str:
    upto = f"[bold]knee[/]: none up to batch {s.largest_swept_batch:,} — decode never turns "
    if s.weights_knee_batch is not None:
        return upto + (
            f"compute-bound: its weight matmuls do at batch {s.weights_knee_batch:,} "
            f"({_ridge(s)}), but every step attention also reads each sequence's own "
            f"{gb(s.kv_bytes_per_sequence)} KV cache (context {s.decode_context_len:,}), which "
            "batching cannot share, so throughput flattens as those reads take over."
        )
    fit = (
        f", though only {s.max_batch:,} sequences fit in memory"
        if s.max_batch < s.ridge_batch
        else ""
    )
    return upto + (
        f"compute-bound ({_ridge(s)}); sweep past batch {math.ceil(s.ridge_batch):,} to reach "
        f"it{fit}."
    )


KNEE_LEGEND = (
    "knee: the smallest swept batch at which decode is compute-bound; matmul knee: the same "
    "for decode's weight matmuls alone, whose intensity ≈ 2·batch ÷ bytes per weight reaches "
    "the ridge point at the ridge batch (a mixture of experts: 2·batch·k ÷ (bytes per weight "
    "· experts touched)); '–': not within the sweep (at long contexts, attention's KV reads, "
    "one cache per sequence, can keep decode memory-bound at any batch)."
)


def summary_table(result: SweepResult) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, title="summary", title_justify="left")
    cols = ("gpu", "input", "output", "knee", "matmul knee", "ridge batch", "max fit", "best")
    for col in (*cols, "best tok/s"):
        table.add_column(col, justify="left" if col == "gpu" else "right")

    def opt(value: int | None) -> str:
        return "–" if value is None else f"{value:,}"

    for s in result.summaries:
        table.add_row(
            s.hardware,
            str(s.input_len),
            str(s.output_len),
            opt(s.knee_batch),
            opt(s.weights_knee_batch),
            f"{s.ridge_batch:,.0f}",
            f"{s.max_batch:,}",
            opt(s.best_batch),
            "–" if s.best_tokens_per_s is None else _rate(s.best_tokens_per_s),
        )
    return table
