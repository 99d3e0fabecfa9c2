"""Labels on a chart that stay inside the axes and never overlap (used by perfest.plot).

Each label is tried at a list of spots around its point, nearest first: right of it, left of
it, then one line lower or higher on either side, and so on. A spot is taken when the label's
box, measured by matplotlib's renderer (not estimated from a character count), lies inside the
axes and overlaps neither a label placed before it nor the chart's other texts and legend. A
label placed away from its point gets a thin leader line. When no spot is free, the label goes
where it overlaps least, still inside the axes. Only imported when a plot is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

#: Ops closer than this (in decades, on both axes) share one label on the roofline.
LABEL_MERGE_DECADES = 0.12
#: Label spots, as (side, lines down): right and left of the point, then further down and up.
MAX_SHIFT_LINES = 12
OFFSET_POINTS = 6.0
FONT_SIZE = 7
LINE_POINTS = 9.0
MARKER_POINTS = 4.0  # half the width of a plotted marker


def place_labels(
    ax: Any,
    labels: Iterable[tuple[str, str, float, float]],
    gid: str,
    markers: Iterable[tuple[float, float]] = (),
) -> list:
    """Annotate each (text, colour, x, y) of `labels` on `ax` (data coordinates), clear of the
    other texts, the legend and the `markers` (data coordinates); returns the annotations, each
    with `gid` so they can be found again. Call it last, once the limits, the legend and the
    other texts are final."""
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = [t.get_window_extent(renderer) for t in ax.texts if t.get_visible()]
    radius = MARKER_POINTS * ax.figure.dpi / 72
    for x, y in markers:
        px, py = ax.transData.transform((x, y))
        taken.append(Bbox.from_extents(px - radius, py - radius, px + radius, py + radius))
    legend = ax.get_legend()
    if legend is not None:
        taken.append(legend.get_window_extent(renderer))
    placed = []
    for text, colour, x, y in sorted(labels, key=lambda label: -label[3]):
        best = None  # (overlap, annotation)
        for dx, dy in _spots():
            ann = _annotate(ax, text, colour, x, y, dx, dy)
            box = _text_box(ann, renderer)
            overlap = sum(_overlap(box, other) for other in taken)
            inside = _inside(box, frame)
            if inside and (best is None or overlap < best[0]):
                if best is not None:
                    best[1].remove()
                best = (overlap, ann)
                if overlap == 0:
                    break
            else:
                ann.remove()
        if best is None:  # nowhere inside: the first spot, clipped to the axes
            best = (0.0, _annotate(ax, text, colour, x, y, *next(_spots())))
            best[1].set_clip_on(True)
        ann = best[1]
        ann.set_gid(gid)
        taken.append(_text_box(ann, renderer))
        placed.append(ann)
    return placed


def _spots() -> Iterable[tuple[float, float]]:
    """Offsets (points) of a label's top corner from its point: beside it first, then further
    down and up, alternating sides."""
    for lines in range(MAX_SHIFT_LINES + 1):
        for shift in (lines, -lines) if lines else (0,):
            dy = -2.0 - shift * LINE_POINTS
            yield OFFSET_POINTS, dy
            yield -OFFSET_POINTS, dy


def _annotate(ax: Any, text: str, colour: str, x: float, y: float, dx: float, dy: float) -> Any:
    moved = abs(dy + 2.0) > LINE_POINTS / 2
    return ax.annotate(
        text,
        (x, y),
        xytext=(dx, dy),
        textcoords="offset points",
        fontsize=FONT_SIZE,
        color=colour,
        ha="left" if dx > 0 else "right",
        va="top",
        annotation_clip=False,
        arrowprops={"arrowstyle": "-", "color": "lightgray", "lw": 0.6} if moved else None,
    )


def _text_box(ann: Any, renderer: Any) -> Any:
    """The box of an annotation's text alone (its leader line may cross other things)."""
    from matplotlib.text import Text

    ann.update_positions(renderer)  # the text's place follows from its offset
    return Text.get_window_extent(ann, renderer)


def _overlap(a: Any, b: Any) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def _inside(box: Any, frame: Any) -> bool:
    return box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1


Label = tuple[str, str, float, float]


def op_labels(points: list[Label], phases: Iterable[str]) -> list[Label]:
    """One label per cluster of nearby ops of a phase (decode's GEMMs sit on one spot):
    (text, phase, x, y) at the cluster's first op; at most three names, then "+N"."""
    labels = []
    for phase in phases:
        clusters: list[list[tuple[str, float, float]]] = []
        for name, ph, x, y in sorted(points, key=lambda p: (p[2], p[3])):
            if ph != phase:
                continue
            home = next((c for c in clusters if _near(x, c[0][1]) and _near(y, c[0][2])), None)
            if home is None:
                clusters.append([(name, x, y)])
            else:
                home.append((name, x, y))
        for cluster in clusters:
            names = list(dict.fromkeys(name for name, *_ in cluster))
            more = f" +{len(names) - 3}" if len(names) > 3 else ""
            labels.append((", ".join(names[:3]) + more, phase, cluster[0][1], cluster[0][2]))
    return labels


def _near(a: float, b: float) -> bool:
    return abs(math.log10(a) - math.log10(b)) < LABEL_MERGE_DECADES
