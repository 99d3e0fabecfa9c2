"""`perfest sweep` of an encoder: its one pass over batch sizes and sequence lengths.

An encoder's pass reads every weight once for the whole batch, as a decoder's prefill does:
its weight matmuls do 2·b·s FLOPs per weight element read, an intensity of

    I(b, s) ≈ 2·b·s / w      FLOP/byte   (w = bytes per weight element)

so the pass turns compute-bound once the batch holds b·s ≈ R·w/2 tokens, R = peak / bandwidth
the ridge point: the ridge-point batch at length s is b_ridge = R·w / (2·s) (BERT at s = 128 on
an H100 in bf16: 295 / 128 ≈ 2.3). Below it the latency barely grows with b and throughput
rises; above it throughput (sequences/s) flattens while the latency grows with b. Attention's
s² scores make each token of a long sequence dearer.

Every point is the plan of perfest.encoders evaluated at (b, s); nothing is re-derived here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from operator import attrgetter
from typing import Any

from perfest.encoders import (
    check_workload,
    encode_point,
    encoding,
    memory_estimate,
    positions_note,
)
from perfest.errors import SpecError
from perfest.inference import Shape, layout_notes
from perfest.plan import plan_for
from perfest.results import SCHEMA_VERSION, _plain, workload_json
from perfest.roofline import Bound
from perfest.specs import DTYPE_BYTES, HardwareSpec, ModelConfig, Workload


@dataclass(frozen=True, slots=True)
class EncoderSweepPoint:
    """One (device, input_len, batch) point; times in seconds, memory in bytes."""

    hardware: str
    batch: int
    input_len: int
    latency_s: float
    sequences_per_s: float  # all sequences of the batch together
    tokens_per_s: float
    intensity: float  # FLOP/byte of the whole pass
    bound: Bound  # the bound holding most of the pass's time
    weights_bound: Bound  # the same, over its matmuls with a weight operand
    memory_bytes: float
    capacity_bytes: float
    fits: bool

    def to_dict(self) -> dict[str, Any]:
        values = _values(self)
        return {name: _plain(v) for name, v in zip(POINT_FIELDS, values, strict=True)}


POINT_FIELDS = tuple(EncoderSweepPoint.__dataclass_fields__)
_values = attrgetter(*POINT_FIELDS)


@dataclass(frozen=True, slots=True)
class EncoderSweepSummary:
    """The batch curve of one (device, input_len) series, in numbers."""

    hardware: str
    input_len: int
    ridge_point: float  # FLOP/byte, peak / bandwidth of the compute dtype
    bytes_per_weight: float  # w
    ridge_batch: float  # R·w / (2·s): where the weight matmuls turn compute-bound, analytically
    knee_batch: int | None  # smallest swept batch whose pass is compute-bound
    weights_knee_batch: int | None  # … whose weight matmuls are compute-bound
    max_batch: int  # largest batch that fits in memory at this length
    best_batch: int | None  # the fitting swept batch with the most sequences/s
    best_sequences_per_s: float | None
    largest_swept_batch: int

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class EncoderSweepResult:
    """Everything `perfest sweep` reports for an encoder; `to_dict()` is its JSON form."""

    model: str
    hardware: tuple[str, ...]
    workload: dict[str, Any]  # the fields every point shares
    batches: tuple[int, ...]
    input_lens: tuple[int, ...]
    points: tuple[EncoderSweepPoint, ...]
    summaries: tuple[EncoderSweepSummary, ...]
    warnings: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION

    def series(self, summary: EncoderSweepSummary) -> tuple[EncoderSweepPoint, ...]:
        key = (summary.hardware, summary.input_len)
        return tuple(p for p in self.points if (p.hardware, p.input_len) == key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "model": self.model,
            "architecture": "encoder",
            "hardware": list(self.hardware),
            "workload": self.workload,
            "batches": list(self.batches),
            "input_lens": list(self.input_lens),
            "points": [p.to_dict() for p in self.points],
            "summaries": [s.to_dict() for s in self.summaries],
            "warnings": list(self.warnings),
        }


def encoder_sweep(
    m: ModelConfig,
    devices: Sequence[HardwareSpec],
    base: Workload,
    batches: tuple[int, ...],
    input_lens: tuple[int, ...],
    output_lens: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> EncoderSweepResult:
    """`perfest.sweeps.sweep` for an encoder (its axes already parsed): every (device,
    input_len, batch), with `fits=False` kept for points that do not fit."""
    if output_lens is not None:
        raise SpecError(f"output_lens: {m.name} is an encoder: nothing is generated; sweep "
                        "--batch and --input-len")  # fmt: skip
    check_workload(m, base)
    total = len(devices) * len(batches) * len(input_lens)
    points: list[EncoderSweepPoint] = []
    summaries, warnings = [], {}
    for hw, n in product(devices, input_lens):
        shape = base.model_copy(update={"input_len": n})
        plan = plan_for(m, hw, shape)
        series = []
        for b in batches:
            series.append(_point(plan, hw, Shape(b, n, 1)))
            if progress is not None:
                progress(len(points) + len(series), total)
        memory = memory_estimate(plan, hw, Shape(batches[-1], n, 1))
        for note in (positions_note(m, shape), *layout_notes(m, hw, shape)):
            if note is not None:
                warnings[note.text] = None
        points += series
        summaries.append(_summary(plan, hw, shape, series, memory.max_batch))
    return EncoderSweepResult(
        model=m.name,
        hardware=tuple(hw.name for hw in devices),
        workload=workload_json(
            base.model_copy(update={"head": base.head or m.head}),
            exclude={"batch", "input_len", "output_len"},
        ),  # fmt: skip
        batches=batches,
        input_lens=input_lens,
        points=tuple(points),
        summaries=tuple(summaries),
        warnings=tuple(warnings),
    )


def _point(plan, hw: HardwareSpec, at: Shape) -> EncoderSweepPoint:
    """One batch size at one length: the encode pass's rates, bound and memory."""
    totals = plan.evaluate(encode_point(at))
    memory = memory_estimate(plan, hw, at)
    rate = encoding(at, totals)
    return EncoderSweepPoint(  # positional, in field order
        hw.name,
        at.batch,
        at.input_len,
        rate.latency_s,
        rate.sequences_per_s,
        rate.tokens_per_s,
        totals.flops / totals.bytes,
        totals.bound,
        totals.weights_bound,
        memory.total_bytes,
        memory.capacity_bytes,
        memory.fits,
    )


def _summary(plan, hw: HardwareSpec, w: Workload, series: list, max_batch: int):
    fitting = [p for p in series if p.fits]
    best = max(fitting, key=lambda p: p.sequences_per_s) if fitting else None
    ridge = plan.rates.matmul_flops / plan.rates.bandwidth
    per_weight = DTYPE_BYTES[w.w_dtype]
    return EncoderSweepSummary(
        hardware=hw.name,
        input_len=w.input_len,
        ridge_point=ridge,
        bytes_per_weight=per_weight,
        ridge_batch=ridge * per_weight / (2 * w.input_len),
        knee_batch=next((p.batch for p in series if p.bound is Bound.COMPUTE), None),
        weights_knee_batch=next(
            (p.batch for p in series if p.weights_bound is Bound.COMPUTE), None
        ),
        max_batch=max_batch,
        best_batch=best.batch if best else None,
        best_sequences_per_s=best.sequences_per_s if best else None,
        largest_swept_batch=series[-1].batch,
    )
