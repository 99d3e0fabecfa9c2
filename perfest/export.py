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
    """One row per point, every SweepPoint field."""
    from perfest.sweeps import SWEEP_POINT_FIELDS

    return to_csv(
        SWEEP_POINT_FIELDS, ([getattr(p, c) for c in SWEEP_POINT_FIELDS] for p in result.points)
    )
