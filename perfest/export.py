"""Output for scripts: JSON and CSV. Nothing here imports rich, so `--json` and `--csv` start
fast; the rich tables for people are perfest.render."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from perfest.results import OP_FIELDS, Estimate, _plain

if TYPE_CHECKING:
    from perfest.sweeps import SweepResult
    from perfest.training.results import TrainingEstimate
    from perfest.training.search import SearchResult


def dumps(data: Any, indent: int | None = 2) -> str:
    """JSON, with infinities and NaN as null (JSON has neither)."""
    try:
        return json.dumps(data, indent=indent, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(data), indent=indent)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV with one number format per column: a column holding any float writes every number
    as a float (`268435456.0` beside `1649267441664.0`), a column of whole numbers as ints;
    enums as their values."""
    rows = [[_plain(value) for value in row] for row in rows]
    floats = {col for row in rows for col, value in enumerate(row) if isinstance(value, float)}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            [
                float(v) if col in floats and isinstance(v, int) and not isinstance(v, bool) else v
                for col, v in enumerate(row)
            ]
        )
    return out.getvalue()


def estimate_csv(est: Estimate) -> str:
    """One row per op of every phase (prefill and the decode step), the JSON keys as columns."""
    rows = []
    for phase in est.phases:
        for op in phase.layers:
            rows.append([phase.phase, *(getattr(op, col) for col in OP_FIELDS)])
    return to_csv(("phase", *OP_FIELDS), rows)


def sweep_csv(result: SweepResult) -> str:
    """One row per point, every SweepPoint (EncoderSweepPoint) field."""
    from perfest.encoder_sweeps import POINT_FIELDS, EncoderSweepResult
    from perfest.sweeps import SWEEP_POINT_FIELDS

    if isinstance(result, EncoderSweepResult):
        return to_csv(POINT_FIELDS, ([getattr(p, c) for c in POINT_FIELDS] for p in result.points))

    return to_csv(
        SWEEP_POINT_FIELDS, ([getattr(p, c) for c in SWEEP_POINT_FIELDS] for p in result.points)
    )


def training_csv(est: TrainingEstimate) -> str:
    """One row per op of each phase of a training step (one micro-batch on the slowest stage;
    the optimizer once), the JSON keys of an op as columns."""
    rows = []
    for phase in est.phases:
        for op in phase.layers:
            rows.append([phase.phase, *(getattr(op, col) for col in OP_FIELDS)])
    return to_csv(("phase", *OP_FIELDS), rows)


#: The columns of a scaling curve: where each value comes from in a TrainingEstimate.
SCALING_COLUMNS = {
    "gpus": lambda e: e.layout.devices,
    "dp": lambda e: e.layout.dp,
    "global_batch": lambda e: e.config.global_batch,
    "step_time_s": lambda e: e.step_time_s,
    "tokens_per_s": lambda e: e.tokens_per_s,
    "tokens_per_s_per_gpu": lambda e: e.tokens_per_s_per_gpu,
    "mfu": lambda e: e.mfu,
    "hfu": lambda e: e.hfu,
    "bubble_s": lambda e: e.breakdown.bubble_s,
    "communication_s": lambda e: e.breakdown.communication_s,
    "per_device_bytes": lambda e: e.memory.per_device_bytes,
    "fits": lambda e: e.memory.fits,
}


def scaling_csv(ests: Sequence[TrainingEstimate]) -> str:
    return to_csv(tuple(SCALING_COLUMNS), ([f(e) for f in SCALING_COLUMNS.values()] for e in ests))


def search_csv(result: SearchResult) -> str:
    """One row per layout evaluated, fastest first."""
    rows = [c.to_dict() for c in result.candidates]
    header = tuple(rows[0]) if rows else ()
    return to_csv(header, ([row[k] for k in header] for row in rows))
