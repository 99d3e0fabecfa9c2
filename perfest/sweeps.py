"""Sweeps: `estimate` over batch sizes, prompt and output lengths, and devices.

The lesson a batch sweep shows: a decode step reads every weight once for the whole batch, so
while decode is memory-bound its step time barely grows with b and throughput rises almost
linearly; the weight matmuls' intensity is

    I(b) ≈ 2·b·h·n / (w·h·n) = 2·b / w         FLOP/byte  (w = bytes per weight element)

and it reaches the device's ridge point R = peak / bandwidth at the *ridge-point batch*

    b_ridge = R·w / 2 = peak·w / (2·bandwidth)

past which the matmuls are paced by FLOPs and throughput flattens. Attention's products with
the KV cache do not share their operand across the batch (each sequence has its own cache), so
their intensity stays ≈ 1 FLOP/byte at every batch: at long contexts they, not the ridge point,
decide where decode stops scaling, and decode as a whole can stay memory-bound at every batch.

A mixture of experts shares its expert weights across the batch only as tokens collide on
experts. A decode step of b sequences touches e(b) = E·(1 − (1 − k/E)^b) of the E experts
(uniform routing, perfest.layers.moe) and does 2·b·k FLOPs per expert weight it reads, so

    I_experts(b) = 2·b·k / (w_e·e(b))                               FLOP/byte

≈ 2/w_e while b ≪ E/k (each token streams its own experts) and → 2·b·k/(w_e·E) once every
expert is touched. It reaches R at the MoE ridge-point batch, solved numerically (I_experts
rises with b): b_ridge ≈ R·w_e·E/(2k) when the batch touches all experts — E/k times the dense
ridge-point batch, which is why an MoE's knee sits far to the right (DeepSeek-V3: 32×).
`--experts-touched N` fixes e = min(N, b·k), and b_ridge = R·w_e·N/(2k).

Every point is one `perfest.estimate` call on specs loaded once; nothing is re-derived here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import product
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from perfest.catalog import load_hardware, load_model
from perfest.errors import ArgumentTypeError, SpecError
from perfest.inference import (
    Inference,
    Shape,
    decode_context,
    for_model,
    infer,
    layout_notes,
    make_workload,
    positions_note,
)
from perfest.memory import kv_bytes_per_sequence
from perfest.plan import Plan, plan_for
from perfest.results import SCHEMA_VERSION, MemoryEstimate, _plain, workload_json
from perfest.roofline import Bound
from perfest.specs import DTYPE_BYTES, MAX_BATCH, MAX_TOKENS, HardwareSpec, ModelConfig, Workload

#: The most values one axis, and one sweep, may hold (a typo such as 1:10000000 fails fast
#: instead of running for an hour).
MAX_AXIS_VALUES = 100_000
MAX_POINTS = 100_000
#: The largest batch or length an axis may hold (the Workload's bound on each).
MAX_VALUE = max(MAX_BATCH, MAX_TOKENS)

if TYPE_CHECKING:
    from perfest.encoder_sweeps import EncoderSweepResult

_RANGE = re.compile(r"^(?P<start>[^:]+):(?P<stop>[^:]+)(?::(?P<step>[^:]*))?$")


def _as_dict(obj: Any) -> dict[str, Any]:
    return {name: _plain(getattr(obj, name)) for name in obj.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One (device, input_len, output_len, batch) point; times in seconds, memory in bytes."""

    hardware: str
    batch: int
    input_len: int
    output_len: int
    output_tokens_per_s: float  # all sequences of the batch together
    per_sequence_tokens_per_s: float
    ttft_s: float
    tpot_s: float
    e2e_latency_s: float
    decode_intensity: float  # FLOP/byte of the whole decode step
    decode_bound: Bound  # the bound holding most of the decode step's time
    weights_bound: Bound  # the same, over decode's matmuls with a weight operand
    memory_bytes: float
    capacity_bytes: float
    fits: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (bounds as their strings); built 100,000 times in a large sweep."""
        values = list(_point_values(self))
        values[10], values[11] = values[10].value, values[11].value
        return dict(zip(SWEEP_POINT_FIELDS, values, strict=True))


SWEEP_POINT_FIELDS = tuple(SweepPoint.__dataclass_fields__)
_point_values = attrgetter(*SWEEP_POINT_FIELDS)


@dataclass(frozen=True, slots=True)
class SweepSummary:
    """The batch curve of one (device, input_len, output_len) series, in numbers."""

    hardware: str
    input_len: int
    output_len: int
    ridge_point: float  # FLOP/byte, peak / bandwidth of the compute dtype
    bytes_per_weight: float  # w, the size of the weight storage dtype
    ridge_batch: float  # ridge_point · w / 2: where the weight matmuls flip, analytically
    knee_batch: int | None  # smallest swept batch whose decode step is compute-bound
    weights_knee_batch: int | None  # smallest swept batch whose weight matmuls are compute-bound
    max_batch: int  # largest batch that fits in memory at these lengths (any batch, not only swept)
    best_batch: int | None  # the fitting swept batch with the highest throughput
    best_tokens_per_s: float | None
    largest_swept_batch: int
    decode_context_len: int
    kv_bytes_per_sequence: float  # KV cache one sequence reads per decode step, per device
    # A mixture of experts (0 and None for a dense model; module docstring): E, k, and the
    # experts a decode step touches at the ridge-point batch.
    experts: int = 0
    experts_per_token: int = 0
    ridge_experts_touched: float | None = None

    to_dict = _as_dict


@dataclass(frozen=True, slots=True)
class SweepResult:
    """Everything `perfest sweep` reports; `to_dict()` is its JSON form."""

    model: str
    hardware: tuple[str, ...]
    workload: dict[str, Any]  # the fields every point shares (dtypes, tp, efficiencies…)
    batches: tuple[int, ...]
    input_lens: tuple[int, ...]
    output_lens: tuple[int, ...]
    points: tuple[SweepPoint, ...]
    summaries: tuple[SweepSummary, ...]
    warnings: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION

    def series(self, summary: SweepSummary) -> tuple[SweepPoint, ...]:
        """The points of one summary's batch curve, in batch order."""
        key = (summary.hardware, summary.input_len, summary.output_len)
        return tuple(p for p in self.points if (p.hardware, p.input_len, p.output_len) == key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "model": self.model,
            "hardware": list(self.hardware),
            "workload": self.workload,
            "batches": list(self.batches),
            "input_lens": list(self.input_lens),
            "output_lens": list(self.output_lens),
            "points": [p.to_dict() for p in self.points],
            "summaries": [s.to_dict() for s in self.summaries],
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------------------------
# Axes: "1,2,4,8", "1:1024:x2" (geometric), "1:64:+8" or "1:64:8" (arithmetic), or a mix.


def parse_axis(text: str, option: str = "--batch") -> tuple[int, ...]:
    """Parse a list and/or ranges of positive whole numbers into sorted, distinct values.

    `start:stop:xF` multiplies by F (> 1), `start:stop:+N` (or `:N`) adds N ≥ 1, `start:stop`
    adds 1; `stop` is included when a step lands on it and never exceeded. Items are separated
    by commas: "1,2,4:64:x2" is valid. Errors are SpecError messages starting with `option`.
    """
    items = [item.strip() for item in str(text).split(",")]
    if not any(items):
        raise SpecError(f"{option}: empty list; give values such as 1,2,4 or a range 1:1024:x2")
    values: set[int] = set()
    for item in items:
        if not item:
            raise SpecError(f"{option}: empty item in '{text}'")
        values.update(_parse_item(item, option))
        if len(values) > MAX_AXIS_VALUES:
            raise SpecError(f"{option}: more than {MAX_AXIS_VALUES:,} values in '{text}'")
    return tuple(sorted(values))


def _parse_item(item: str, option: str) -> Iterable[int]:
    match = _RANGE.match(item)
    if match is None:
        if ":" in item:
            raise SpecError(f"{option}: '{item}' is not a range start:stop:step ({_EXAMPLES})")
        return (_positive(item, option),)
    start = _positive(match["start"], option)
    stop = _positive(match["stop"], option)
    if stop < start:
        raise SpecError(f"{option}: range '{item}' ends ({stop}) before it starts ({start})")
    step = (match["step"] or "+1").strip()
    if step[:1] in ("x", "*"):
        return _geometric(start, stop, _factor(step[1:], item, option), option)
    increment = _whole(step.removeprefix("+"), option, what=f"step '{step}' in '{item}'")
    if increment <= 0:
        raise SpecError(f"{option}: step '{step}' in '{item}' must be at least +1")
    if (stop - start) // increment >= MAX_AXIS_VALUES:
        raise SpecError(f"{option}: '{item}' has more than {MAX_AXIS_VALUES:,} values")
    return range(start, stop + 1, increment)


_EXAMPLES = "e.g. 1,2,4,8 or 1:1024:x2 or 1:64:+8"


def _whole(text: str, option: str, what: str) -> int:
    text = text.strip()
    if len(text.lstrip("+-")) > len(str(MAX_VALUE)):  # also spares int() a 5,000-digit string
        shown = f"a {len(text)}-digit number" if text.lstrip("+-").isdigit() else what
        raise SpecError(f"{option}: {shown} is more than {MAX_VALUE:,}, beyond anything "
                        "physically meaningful")  # fmt: skip
    try:
        return int(text)
    except ValueError:
        raise SpecError(f"{option}: {what} is not a whole number ({_EXAMPLES})") from None


def _positive(text: str, option: str) -> int:
    value = _whole(text, option, what=f"'{text.strip()}'")
    _check(value, option)
    return value


def _check(value: int, option: str) -> None:
    if value <= 0:
        raise SpecError(f"{option}: {value} must be a positive whole number")
    if value > MAX_VALUE:
        shown = f"{value:,}" if value < 10**15 else f"a {len(str(value))}-digit number"
        raise SpecError(
            f"{option}: {shown} is more than {MAX_VALUE:,}, beyond anything physically meaningful"
        )


def _factor(text: str, item: str, option: str) -> float:
    try:
        factor = float(text)
    except ValueError:
        raise SpecError(f"{option}: factor 'x{text}' in '{item}' is not a number") from None
    if not factor > 1:  # also rejects nan
        raise SpecError(f"{option}: factor 'x{text}' in '{item}' must be greater than 1")
    return factor


def _geometric(start: int, stop: int, factor: float, option: str) -> list[int]:
    """start, start·f, start·f², … ≤ stop, each rounded to a whole number."""
    values, k = [], 0
    while (value := start * factor**k) <= stop * (1 + 1e-12):
        values.append(round(value))
        k += 1
        if k > MAX_AXIS_VALUES:  # a factor of 1.000001 would take forever
            raise SpecError(f"{option}: x{factor!r} gives more than {MAX_AXIS_VALUES:,} values")
    return values


def _axis(values: str | int | Sequence[int] | None, default: int, option: str) -> tuple[int, ...]:
    """An axis given as text, one number, a sequence, or None (the workload's value); errors
    name `option` (the keyword in the library, the flag in the CLI)."""
    if values is None:
        return (default,)
    if isinstance(values, str):
        return parse_axis(values, option)
    if isinstance(values, int) and not isinstance(values, bool):
        values = (values,)
    elif isinstance(values, (list, tuple, range, set, frozenset)):
        values = tuple(values)
    else:
        raise ArgumentTypeError(
            f"{option}: expected an int, a list of ints or text such as '1:1024:x2'; got "
            f"{type(values).__name__}"
        )
    if len(values) > MAX_AXIS_VALUES:
        raise SpecError(f"{option}: more than {MAX_AXIS_VALUES:,} values")
    if not values:
        raise SpecError(f"{option}: empty list")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{option}: {str(value)[:40]!r} must be a positive whole number")
        _check(value, option)
    return tuple(sorted(set(values)))


# ---------------------------------------------------------------------------------------------
# The sweep.


def sweep(
    model: str | ModelConfig,
    hardware: str | HardwareSpec | Sequence[str | HardwareSpec],
    workload: Workload | None = None,
    *,
    batches: str | int | Sequence[int] | None = None,
    input_lens: str | int | Sequence[int] | None = None,
    output_lens: str | int | Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    **fields: Any,
) -> SweepResult | EncoderSweepResult:
    """Estimate `model` on each device at every (input_len, output_len, batch) combination
    (an encoder: every (input_len, batch), an EncoderSweepResult: perfest.encoder_sweeps).

    Axes are sequences of positive ints or text such as "1,2,4" or "1:1024:x2"; an axis left as
    None takes the workload's value. The other workload fields (dtype, weight_dtype, kv_dtype,
    tp, logits, attention, compute_efficiency, memory_efficiency) are shared by every point.
    Points that do not fit in memory are kept, with `fits=False`. `progress(done, total)` is
    called after each point.
    """
    m = load_model(model)
    devices = _devices(hardware)
    base = for_model(m, make_workload(workload, **fields))
    bs = _axis(batches, base.batch, "batches")
    ins = _axis(input_lens, base.input_len, "input_lens")
    outs = _axis(output_lens, base.output_len, "output_lens")
    total = len(devices) * len(bs) * len(ins) * len(outs)
    if total > MAX_POINTS:
        raise SpecError(
            f"batches, input_lens, output_lens, hardware: {len(bs)} × {len(ins)} × {len(outs)} "
            f"× {len(devices)} = {total:,} points; at most {MAX_POINTS:,}"
        )
    if m.architecture == "encoder":  # one pass: batch and length only (perfest.encoder_sweeps)
        from perfest.encoder_sweeps import encoder_sweep

        return encoder_sweep(m, devices, base, bs, ins, output_lens, progress)
    points: list[SweepPoint] = []
    summaries: list[SweepSummary] = []
    warnings: dict[str, None] = {}  # ordered set
    for hw, input_len, output_len in product(devices, ins, outs):
        shape = base.model_copy(update={"input_len": input_len, "output_len": output_len})
        plan = plan_for(m, hw, shape)
        series = []
        for b in bs:  # every field was validated in `base`, and b > 0 in _axis
            point = infer(plan, hw, Shape(b, input_len, output_len, base.logits))
            series.append(_point(hw.name, b, input_len, output_len, point))
            if progress is not None:
                progress(len(points) + len(series), total)
        # the memory note becomes the `fits` column instead
        for note in (positions_note(m, shape), *layout_notes(m, hw, shape)):
            if note is not None:
                warnings[note.text] = None
        points += series
        summaries.append(_summary(plan, hw, shape, series, point.memory))
    return SweepResult(
        model=m.name,
        hardware=tuple(hw.name for hw in devices),
        workload=workload_json(base, exclude={"batch", "input_len", "output_len"}),
        batches=bs,
        input_lens=ins,
        output_lens=outs,
        points=tuple(points),
        summaries=tuple(summaries),
        warnings=tuple(warnings),
    )


def _devices(hardware: Any) -> tuple[HardwareSpec, ...]:
    if isinstance(hardware, (str, os.PathLike, HardwareSpec, dict)):
        hardware = [hardware]
    elif not isinstance(hardware, (list, tuple)):
        raise ArgumentTypeError(
            "hardware: expected a device (a catalog name, a path, a HardwareSpec or a dict of "
            f"its fields) or a list of them; got {type(hardware).__name__}"
        )
    devices = tuple(load_hardware(hw) for hw in hardware)
    if not devices:
        raise SpecError("hardware: empty list of devices")
    return tuple({hw.name: hw for hw in devices}.values())  # each device once, in order


def _point(hardware: str, b: int, input_len: int, output_len: int, point: Inference) -> SweepPoint:
    gen, mem, decode = point.generation, point.memory, point.totals[-1]
    return SweepPoint(  # positional, in field order: a sweep builds up to 100,000
        hardware,
        b,
        input_len,
        output_len,
        gen.output_tokens_per_s,
        gen.per_sequence_tokens_per_s,
        gen.ttft_s,
        gen.tpot_s,
        gen.e2e_latency_s,
        decode.flops / decode.bytes if decode.bytes else 0.0,
        decode.bound,
        decode.weights_bound,
        mem.total_bytes,
        mem.capacity_bytes,
        mem.fits,
    )


def experts_touched(experts: int, k: int, batch: float, override: float | None = None) -> float:
    """Experts a decode step of `batch` tokens touches: E·(1 − (1 − k/E)^b), or min(N, b·k)."""
    if override is not None:
        return min(override, experts, batch * k)
    return experts * (1.0 - (1.0 - k / experts) ** batch)


def moe_ridge_batch(
    ridge: float, w: float, experts: int, k: int, override: float | None = None
) -> float:
    """The batch at which the experts' weight matmuls reach the ridge point: 2·b·k /
    (w·e(b)) = R (module docstring), by bisection (the intensity rises with b)."""

    def intensity(b: float) -> float:
        return 2.0 * b * k / (w * experts_touched(experts, k, b, override))

    low, high = 1e-6, 1.0
    while intensity(high) < ridge:
        high *= 2.0
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if intensity(mid) < ridge else (low, mid)
    return high


def _ridge_batch(plan: Plan, w: Workload, ridge: float) -> tuple[float, float, dict]:
    """(ridge-point batch, bytes per weight, MoE fields of the summary)."""
    model = plan.ctx.model if plan.ctx is not None else None
    if model is None or not model.moe:
        return ridge * DTYPE_BYTES[w.w_dtype] / 2, DTYPE_BYTES[w.w_dtype], {}
    E, k = model.num_experts, model.experts_per_token
    w_e = DTYPE_BYTES[plan.ctx.dt.expert]
    batch = moe_ridge_batch(ridge, w_e, E, k, w.experts_touched)
    touched = experts_touched(E, k, batch, w.experts_touched)
    return batch, w_e, dict(experts=E, experts_per_token=k, ridge_experts_touched=touched)


def _summary(
    plan: Plan, hw: HardwareSpec, w: Workload, series: list[SweepPoint], last: MemoryEstimate
) -> SweepSummary:
    """`last` is the memory of the series' last point: max_batch does not depend on the batch."""
    fitting = [p for p in series if p.fits]
    best = max(fitting, key=lambda p: p.output_tokens_per_s) if fitting else None
    ridge = plan.rates.matmul_flops / plan.rates.bandwidth
    context = decode_context(w)
    kv = kv_bytes_per_sequence(plan, context)
    if plan.ctx is not None and plan.ctx.model.architecture == "encoder-decoder":
        from perfest import encoders  # the decoder's own context, and its cross cache

        context = encoders.step_context(w)
        kv = encoders.kv_bytes_per_sequence(plan, w, context)
    ridge_batch, per_weight, moe = _ridge_batch(plan, w, ridge)
    return SweepSummary(
        hardware=hw.name,
        input_len=w.input_len,
        output_len=w.output_len,
        ridge_point=ridge,
        bytes_per_weight=per_weight,
        ridge_batch=ridge_batch,
        knee_batch=next((p.batch for p in series if p.decode_bound is Bound.COMPUTE), None),
        weights_knee_batch=next(
            (p.batch for p in series if p.weights_bound is Bound.COMPUTE), None
        ),
        max_batch=last.max_batch,
        best_batch=best.batch if best else None,
        best_tokens_per_s=best.output_tokens_per_s if best else None,
        largest_swept_batch=series[-1].batch,
        decode_context_len=context,
        kv_bytes_per_sequence=kv,
        **moe,
    )
