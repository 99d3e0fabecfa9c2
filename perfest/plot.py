"""Pictures (the optional `perfest[plot]` extra): the device roofline with every op placed on it,
and a batch sweep's throughput and time per token.

matplotlib is imported inside the functions only (Agg backend, no display needed), so nothing
else in perfest pays for it or needs it installed.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from perfest.errors import MissingExtraError, SpecError
from perfest.results import Estimate
from perfest.specs import HardwareSpec
from perfest.sweeps import SweepResult, SweepSummary

FORMATS = (".png", ".svg")
INSTALL = "plots need matplotlib: pip install 'perfest[plot]'"

PHASE_STYLE = {
    "encode": ("tab:green", "s"),  # an encoder's (and encoder-decoder's) encoder pass
    "prefill": ("tab:blue", "o"),
    "decode": ("tab:orange", "^"),
}
TEXT_BOX = {"fc": "white", "ec": "none", "pad": 1, "alpha": 0.85}


def require() -> None:
    """Fail early, before any work, when the plot extra is missing."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError(INSTALL) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise SpecError(f"{path}: plots are written as {' or '.join(FORMATS)}")
    return path


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    # SVG text stays text (searchable, selectable); no creation date, so files are reproducible.
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "perfest"}):
        metadata = {"Date": None} if path.suffix.lower() == ".svg" else {}
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata=metadata)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# Roofline: attained FLOP/s = min(peak, intensity · bandwidth), log–log.


def roofline_plot(est: Estimate, hw: HardwareSpec, path: str | Path) -> Path:
    """The device's roofline with each op of prefill and of decode at (intensity, FLOP/s)."""
    path = check_path(path)
    return _save(roofline_figure(est, hw), path)


#: The gid of the op labels on a roofline figure (tests find them by it).
OP_LABEL = "op-label"


def roofline_figure(est: Estimate, hw: HardwareSpec) -> Any:
    """The roofline as a matplotlib figure (not saved): every op label inside the axes, none
    overlapping another label, the legend or the roofs' texts (perfest.plot_labels)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 6.5))
    points = list(_op_points(est))
    ceilings = _ceilings(hw, est.workload.dtype)
    xs = [x for _, _, x, _ in points] or [1.0]
    ys = [y for *_, y in points] or [1.0]
    x_lo = 10 ** math.floor(math.log10(min(*xs, 1.0)) - 0.3)
    x_hi = 10 ** math.ceil(math.log10(max(*xs, est.ridge_point) * 4))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(min(*ys, x_lo * hw.memory_bandwidth) / 3, max(ceilings.values()) * 3)
    _draw_roofs(ax, est, hw.memory_bandwidth, ceilings, x_lo, x_hi)
    for phase, (colour, marker) in PHASE_STYLE.items():
        mine = [(name, x, y) for name, ph, x, y in points if ph == phase]
        if not mine:  # a phase the model does not run (encode for a decoder)
            continue
        context = f", context {est.decode.context_len}" if phase == "decode" else ""
        ax.scatter(
            [x for _, x, _ in mine],
            [y for *_, y in mine],
            c=colour,
            marker=marker,
            s=46,
            edgecolors="black",
            linewidths=0.5,
            zorder=3,
            label=f"{phase} ops (batch {est.workload.batch}{context})",
        )
    ax.set_xlabel("arithmetic intensity (FLOP per byte of memory traffic)")
    ax.set_ylabel("attained FLOP/s (predicted, per op)")
    w = est.workload.model_dump()
    extras = [f"weights {w['weight_dtype']}"] if w["weight_dtype"] else []
    extras += [f"KV {w['kv_dtype']}"] if w["kv_dtype"] else []
    extras += [f"tensor parallel ×{w['tp']} (per device)"] if w["tp"] > 1 else []
    lengths = f"{w['input_len']} in / {w['output_len']} out"
    if est.encoding is not None:  # an encoder: one pass, nothing generated
        lengths = f"{w['input_len']} tokens, head {w['head']}"
    ax.set_title(
        f"{est.model} on {hw.label}: {lengths}, " + ", ".join([w["dtype"], *extras]),
        fontsize=11,
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)  # above the slope: always empty
    skipped = sorted({name for name, *_ in _op_points(est, placed=False)})
    note = (
        f"Ops sit below the roof by the efficiencies, GEMM tile padding, compute and memory "
        f"time adding up rather than overlapping, and kernel launches "
        f"({hw.kernel_launch_us:g} µs each)."
    )
    if skipped:
        note += " Not placed (no FLOPs, or no memory traffic): " + ", ".join(skipped) + "."
    fig.text(0.125, 0.0, textwrap.fill(note, 150), fontsize=7, color="dimgray", va="top")
    from perfest.plot_labels import op_labels, place_labels

    clusters = op_labels(points, PHASE_STYLE)
    labels = [(text, PHASE_STYLE[phase][0], x, y) for text, phase, x, y in clusters]
    place_labels(ax, labels, OP_LABEL, markers=[(x, y) for _, _, x, y in points])
    return fig


def compare_plot(comparison: Any, hw: HardwareSpec, path: str | Path) -> Path:
    """The roofline with each op group of each phase under the first and the last variant of a
    comparison (`perfest roofline --compare fusion`: none → full), an arrow from one to the
    other: fusion moves the memory-bound groups right (more FLOPs per byte) and up."""
    path = check_path(path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 6.5))
    first = comparison.estimates[0]
    pairs = []
    for g in comparison.groups:
        a = (
            g.flops[0] / g.bytes[0] if g.bytes[0] else 0.0,
            g.flops[0] / g.time_s[0] if g.time_s[0] else 0.0,
        )
        z = (
            g.flops[-1] / g.bytes[-1] if g.bytes[-1] else 0.0,
            g.flops[-1] / g.time_s[-1] if g.time_s[-1] else 0.0,
        )
        if min(*a, *z) > 0:
            pairs.append((g, a, z))
    ceilings = _ceilings(hw, first.workload.dtype)
    xs = [p[0] for _, a, z in pairs for p in (a, z)] or [1.0]
    ys = [p[1] for _, a, z in pairs for p in (a, z)] or [1.0]
    x_lo = 10 ** math.floor(math.log10(min(*xs, 1.0)) - 0.3)
    x_hi = 10 ** math.ceil(math.log10(max(*xs, first.ridge_point) * 4))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(min(*ys, x_lo * hw.memory_bandwidth) / 3, max(ceilings.values()) * 3)
    _draw_roofs(ax, first, hw.memory_bandwidth, ceilings, x_lo, x_hi)
    for g, a, z in pairs:
        colour, marker = PHASE_STYLE.get(g.phase, ("tab:green", "s"))
        ax.scatter(*a, c="white", edgecolors=colour, marker=marker, s=40, zorder=3)
        ax.scatter(*z, c=colour, edgecolors="black", marker=marker, s=46, linewidths=0.5, zorder=3)
        ax.annotate("", z, a, arrowprops={"arrowstyle": "->", "color": colour, "lw": 1}, zorder=2)
        ax.annotate(f"{g.phase} {g.group}", z, xytext=(4, 3), textcoords="offset points",
                    fontsize=7, bbox=TEXT_BOX)  # fmt: skip
    v = comparison.variants
    ax.set_title(
        f"{first.model} on {hw.label}: op groups, {comparison.axis} {v[0]} (hollow) → "
        f"{v[-1]} (filled)",
        fontsize=11,
    )
    ax.set_xlabel("arithmetic intensity (FLOP per byte of memory traffic)")
    ax.set_ylabel("attained FLOP/s (predicted, per op group)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    gone = sorted({f"{g.phase} {g.group}" for g in comparison.groups if not g.bytes[-1]})
    if gone:
        note = f"Fused away entirely under {v[-1]} (their work moved into the products): "
        fig.text(0.125, 0.0, textwrap.fill(note + ", ".join(gone) + ".", 150), fontsize=7,
                 color="dimgray", va="top")  # fmt: skip
    return _save(fig, path)


def _op_points(est: Estimate, placed: bool = True) -> Iterable[tuple[str, str, float, float]]:
    """(op, phase, intensity, attained FLOP/s) of the ops a log–log chart can place
    (`placed=False`: the others, with zeros)."""
    for phase in est.phases:
        for op in phase.layers:
            ok = bool(op.flops > 0 and op.intensity and op.time_s > 0)
            if ok == placed:
                yield op.name, phase.phase, op.intensity or 0.0, op.flops / op.time_s if ok else 0.0


def _ceilings(hw: HardwareSpec, dtype: str) -> dict[str, float]:
    """The matmul dtype's peak and the element-wise (fp32 vector) rate the other ops run at."""
    ceilings = {f"{dtype} matmul peak": hw.peak_flops(dtype)}
    if hw.vector_flops < ceilings[f"{dtype} matmul peak"]:
        ceilings["fp32 element-wise peak"] = hw.vector_flops
    return ceilings


def _draw_roofs(ax: Any, est: Estimate, bw: float, ceilings: dict, x_lo, x_hi) -> None:
    """Datasheet roofs (solid, dashed for element-wise), the reachable roof the prediction
    assumes (dotted), the ridge point, and the bandwidth slope's label along the slope."""
    for i, (label, peak) in enumerate(ceilings.items()):
        style = {"color": "black", "lw": 2} if i == 0 else {"color": "gray", "lw": 1.2, "ls": "--"}
        ax.plot([x_lo, peak / bw, x_hi], [x_lo * bw, peak, peak], zorder=2, **style)
        ax.annotate(
            f"{label}: {peak / 1e12:,.0f} TFLOP/s",
            (x_hi, peak),
            xytext=(-4, 4),
            textcoords="offset points",
            ha="right",
            fontsize=8,
            bbox=TEXT_BOX,
        )
    peak = next(iter(ceilings.values())) * est.compute_efficiency
    reach_bw = bw * est.memory_efficiency
    ax.plot(
        [x_lo, peak / reach_bw, x_hi],
        [x_lo * reach_bw, peak, peak],
        color="black",
        lw=0.8,
        ls=":",
        zorder=2,
        label=f"reachable roof: {est.compute_efficiency:.0%} of peak, "
        f"{est.memory_efficiency:.0%} of bandwidth",
    )
    ridge = est.ridge_point
    ax.axvline(ridge, color="crimson", lw=1, ls="--", zorder=1)
    ax.annotate(
        f"ridge point {ridge:,.0f} FLOP/B",
        (ridge, 0.02),
        xycoords=("data", "axes fraction"),
        xytext=(-3, 0),
        textcoords="offset points",
        color="crimson",
        fontsize=8,
        rotation=90,
        ha="right",
        va="bottom",
        bbox=TEXT_BOX,
    )
    # The slope's on-screen angle, from two points of it through the axes' transform.
    x0, x1 = x_lo * 3, x_lo * 30
    (a, b), (c, d) = ax.transData.transform([(x0, x0 * bw), (x1, x1 * bw)])
    ax.annotate(
        f"memory bandwidth {bw / 1e12:.2f} TB/s",
        (x0, x0 * bw),
        xytext=(0, 5),
        textcoords="offset points",
        fontsize=8,
        rotation=math.degrees(math.atan2(d - b, c - a)),
        rotation_mode="anchor",
    )


# ---------------------------------------------------------------------------------------------
# Sweep: throughput and time per output token against batch.


#: Line styles of the (input, output) length pairs of a sweep; colours go to devices.
LINE_STYLES = ("-", "--", ":", "-.")


def sweep_plot(result: SweepResult, path: str | Path) -> Path:
    """Throughput (top) and TPOT (bottom) against batch, one line per series: a colour per
    device, a line style per (input, output) length; on each curve the best batch that fits
    (○), the knee (★), where the weight matmuls turn compute-bound (◆) and the memory limit
    (|); points that do not fit in memory drawn hollow; a tick at every swept power of two."""
    path = check_path(path)
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {hw: palette[i % len(palette)] for i, hw in enumerate(result.hardware)}
    lengths = list(dict.fromkeys((s.input_len, s.output_len) for s in result.summaries))
    styles = {pair: LINE_STYLES[i % len(LINE_STYLES)] for i, pair in enumerate(lengths)}
    panels = ((top, lambda p: p.output_tokens_per_s), (bottom, lambda p: p.tpot_s * 1e3))
    for summary in result.summaries:
        colour = colours[summary.hardware]
        style = styles[(summary.input_len, summary.output_len)]
        points = result.series(summary)
        for ax, value in panels:
            _curve(ax, points, value, colour, style)
            _mark_curve(ax, points, value, summary, colour)
    if len(result.summaries) == 1:  # one series: also say the marks in words
        _mark_lines(top, bottom, result.summaries[0])
    top.set_ylabel("output tokens/s (whole batch)")
    bottom.set_ylabel("time per output token (ms)")
    bottom.set_xlabel("batch (sequences)")
    for ax in (top, bottom):
        ax.set_xscale("log", base=2)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_ylim(bottom=0)
    _batch_ticks(bottom, result.batches)
    bottom.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    w = result.workload
    tp = f", tp {w['tp']}" if w["tp"] > 1 else ""
    where = f" on {result.hardware[0]}" if len(result.hardware) == 1 else ""
    top.set_title(
        f"{result.model}{where}: batch sweep, {_lengths(result)}, {w['dtype']}{tp}", fontsize=11
    )
    top.legend(handles=_series_keys(colours, styles), fontsize=8, loc="upper left", framealpha=0.9)
    bottom.legend(handles=_mark_keys(result), fontsize=8, loc="upper left", framealpha=0.9)
    fig.tight_layout()
    return _save(fig, path)


def _batch_ticks(ax: Any, batches: tuple[int, ...]) -> None:
    """A tick at every swept power of two (the axis's own ticks when none was swept)."""
    powers = [b for b in batches if b & (b - 1) == 0]
    if powers:
        ax.set_xticks(powers)
        ax.minorticks_off()
        if len(powers) > 12:
            ax.tick_params(axis="x", labelrotation=45)


def _series_keys(colours: dict[str, str], styles: dict[tuple[int, int], str]) -> list:
    """Legend entries: a solid line per device in its colour, a grey line per length pair in
    its style (just the device when there is one series)."""
    from matplotlib.lines import Line2D

    keys = [Line2D([], [], color=c, lw=1.5, label=hw) for hw, c in colours.items()]
    if len(styles) > 1:
        keys += [
            Line2D([], [], color="gray", ls=ls, lw=1.5, label=f"{i} in / {o} out")
            for (i, o), ls in styles.items()
        ]
    return keys


def _curve(ax: Any, points: tuple, value: Any, colour: str, style: str = "-") -> None:
    xs, ys = [p.batch for p in points], [value(p) for p in points]
    ax.plot(xs, ys, color=colour, ls=style, lw=1.5)
    for fits, face in ((True, colour), (False, "white")):
        mine = [(x, y) for x, y, p in zip(xs, ys, points, strict=True) if p.fits == fits]
        if mine:
            ax.scatter(*_columns(mine), s=22, zorder=3, facecolors=face, edgecolors=colour)


def _columns(pairs: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [x for x, _ in pairs], [y for _, y in pairs]


def _mark_curve(ax: Any, points: tuple, value: Any, s: SweepSummary, colour: str) -> None:
    """The knee (or else the weight-matmul knee) and the memory limit, placed on the curve."""
    at = {p.batch: value(p) for p in points}
    # the knee as a star; without one, the weight matmuls' knee as a diamond
    knee = next(
        (
            (batch, marker, size)
            for batch, marker, size in ((s.knee_batch, "*", 200), (s.weights_knee_batch, "D", 55))
            if batch is not None
        ),
        None,
    )
    if knee is not None:
        batch, marker, size = knee
        ax.scatter(
            [batch],
            [at[batch]],
            marker=marker,
            s=size,
            zorder=4,
            color=colour,
            edgecolors="black",
            linewidths=0.6,
        )
    if s.best_batch is not None:  # the best throughput that fits: a ring around its point
        ax.scatter(
            [s.best_batch],
            [at[s.best_batch]],
            marker="o",
            s=150,
            zorder=4,
            facecolors="none",
            edgecolors=colour,
            linewidths=1.6,
        )
    limit = _on_curve(points, value, s.max_batch)
    if limit is not None:
        ax.scatter(
            [s.max_batch], [limit], marker="|", s=260, linewidths=2.2, zorder=4, color=colour
        )


def _on_curve(points: tuple, value: Any, batch: int) -> float | None:
    """The curve's height at `batch` (linear in log batch), None outside the swept range."""
    for a, b in zip(points, points[1:], strict=False):
        if a.batch <= batch <= b.batch:
            f = math.log(batch / a.batch) / math.log(b.batch / a.batch) if b.batch > a.batch else 0
            return value(a) + f * (value(b) - value(a))
    return None


def _mark_lines(top: Any, bottom: Any, s: SweepSummary) -> None:
    for batch, text in _marks(s):
        for ax in (top, bottom):
            ax.axvline(batch, color="gray", ls=":", lw=1, zorder=1)
        top.annotate(
            text,
            (batch, 0.03),
            xycoords=("data", "axes fraction"),
            xytext=(3, 0),
            textcoords="offset points",
            rotation=90,
            va="bottom",
            fontsize=8,
            color="dimgray",
        )


def _marks(s: SweepSummary) -> list[tuple[int, str]]:
    marks = []
    if s.knee_batch is not None:
        marks.append((s.knee_batch, f"knee: decode compute-bound at {s.knee_batch:,}"))
    elif s.weights_knee_batch is not None:
        marks.append((s.weights_knee_batch, f"matmuls compute-bound at {s.weights_knee_batch:,}"))
    if s.largest_swept_batch > s.max_batch >= 1:
        marks.append((s.max_batch, f"memory limit: {s.max_batch:,} fit"))
    return marks


def _mark_keys(result: SweepResult) -> list:
    """Legend entries for the marks this plot shows."""
    from matplotlib.lines import Line2D

    def key(marker: str, label: str, **style: Any) -> Any:
        return Line2D([], [], ls="", marker=marker, color="gray", label=label, **style)

    ss = result.summaries
    keys = []
    if any(s.best_batch is not None for s in ss):
        keys.append(key("o", "best throughput that fits", ms=11, mfc="none", mew=1.6))
    if any(s.knee_batch is not None for s in ss):
        keys.append(key("*", "knee: decode turns compute-bound", ms=12, mec="black"))
    if any(s.knee_batch is None and s.weights_knee_batch is not None for s in ss):
        label = "weight matmuls turn compute-bound (decode does not)"
        keys.append(key("D", label, ms=6, mec="black"))
    if any(s.largest_swept_batch > s.max_batch for s in ss):
        keys.append(key("|", "memory limit: largest batch that fits", ms=12, mew=2.2))
    if not all(p.fits for p in result.points):
        keys.append(key("o", "hollow: does not fit in memory", mfc="white"))
    return keys


def _lengths(result: SweepResult) -> str:
    ins = "/".join(map(str, result.input_lens)) if len(result.input_lens) <= 4 else "varied"
    outs = "/".join(map(str, result.output_lens)) if len(result.output_lens) <= 4 else "varied"
    return f"{ins} in / {outs} out"
