"""Inference phases → Estimate: prefill (time to first token), a decode step, the generation.

    TTFT       = T(prefill: s = t = input_len)
    TPOT       = T(decode: s = 1, t = input_len + max(1, ⌊output_len / 2⌋))
    e2e        = TTFT + (output_len − 1)·TPOT
    tokens/s   = b·output_len / e2e                     (all sequences of the batch together)

The first output token comes out of prefill; each of the output_len − 1 further tokens costs a
decode step whose context grows from input_len + 1 to input_len + output_len − 1. Step time is
affine in the context length within each bound, so the step at the mean context stands for the
average step: `decode` reports that step and its `context_len`.

The phases are data (`INFERENCE`): each a name and the point (b, s, t, s_logits) at which the
model's compiled plan (perfest.plan) is evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from pydantic import ValidationError

from perfest.catalog import load_hardware, load_model
from perfest.errors import ArgumentTypeError, SpecError
from perfest.memory import memory_estimate, smallest_fitting_tp
from perfest.plan import Plan, Point, Totals, plan_for
from perfest.results import (
    SCHEMA_VERSION,
    EncodingEstimate,
    Estimate,
    GenerationEstimate,
    MemoryEstimate,
    Note,
    NoteKind,
    PhaseEstimate,
)
from perfest.specs import HardwareSpec, ModelConfig, Workload, dtype_problem, first_error


def make_workload(workload: Workload | None = None, **fields) -> Workload:
    """A Workload from keyword fields (None values dropped), one-line errors on bad input."""
    if workload is not None and not isinstance(workload, Workload):
        raise ArgumentTypeError(
            f"workload: expected a Workload or None (or its fields as keywords); got "
            f"{type(workload).__name__}"
        )
    if workload is not None and not fields:
        return workload
    base = workload.model_dump(exclude_unset=True) if workload is not None else {}
    base.update({key: value for key, value in fields.items() if value is not None})
    try:
        return Workload(**base)
    except ValidationError as exc:
        raise first_error(exc) from None


def for_model(model: ModelConfig, w: Workload) -> Workload:
    """`w` with the model's own weight dtype (a quantized checkpoint's) when it gives none."""
    if w.weight_dtype is not None or model.weight_dtype is None:
        return w
    problem = dtype_problem(w.dtype, model.weight_dtype, w.kv_dtype)
    if problem:
        raise SpecError(
            f"{problem.split(':', 1)[0]}: {model.name} stores {model.weight_dtype} weights "
            f"(weight_dtype in its spec):{problem.split(':', 1)[1]}"
        )
    return w.model_copy(update={"weight_dtype": model.weight_dtype})


class Shape(NamedTuple):
    """What changes from point to point of a sweep: the batch and the lengths. A Workload has
    the same fields, so either serves the functions below."""

    batch: int
    input_len: int
    output_len: int
    logits: str = "last"


def decode_context(w: Workload | Shape) -> int:
    """Context length of the decode step that stands for the average step."""
    return w.input_len + max(1, w.output_len // 2)


@dataclass(frozen=True, slots=True)
class PhaseSpec:
    """A named pass of a workload: the point its plan is evaluated at."""

    name: str
    point: Callable[[Workload | Shape], Point]


def prefill_point(w: Workload | Shape) -> Point:
    s_logits = w.input_len if w.logits == "all" else 1
    return Point(w.batch, w.input_len, w.input_len, s_logits)


def decode_point(w: Workload | Shape) -> Point:
    return Point(w.batch, 1, decode_context(w), 1)


#: The phases of autoregressive inference: prefill, then the decode step that stands for all.
INFERENCE = (PhaseSpec("prefill", prefill_point), PhaseSpec("decode", decode_point))


class Inference(NamedTuple):
    """The numbers of one inference point (what an Estimate and a sweep point are made of)."""

    points: tuple[Point, ...]  # one per phase of INFERENCE
    totals: tuple[Totals, ...]
    memory: MemoryEstimate
    generation: GenerationEstimate


def infer(plan: Plan, hw: HardwareSpec, w: Workload | Shape) -> Inference:
    """Evaluate the phases of INFERENCE on a compiled plan, then memory and the generation
    (an encoder's or encoder-decoder's phases: perfest.encoders)."""
    if plan.ctx is not None and plan.ctx.model.architecture != "decoder":
        from perfest import encoders

        return encoders.infer(plan, hw, w)
    points = (prefill_point(w), decode_point(w))  # INFERENCE's, unrolled: sweeps call this
    prefill, decode = plan.evaluate(points[0]), plan.for_phase("decode").evaluate(points[1])
    memory = memory_estimate(plan, hw, w, points[0])
    return Inference(points, (prefill, decode), memory, generation(w, prefill, decode))


def generation(w: Workload | Shape, prefill: Totals, decode: Totals) -> GenerationEstimate:
    """Prefill, then output_len − 1 decode steps (the equations in the module docstring)."""
    steps = w.output_len - 1
    e2e = prefill.time_s + steps * decode.time_s
    roof_e2e = prefill.roofline_time_s + steps * decode.roofline_time_s
    return GenerationEstimate(  # positional, in field order (ttft_s, tpot_s, …): it is hot
        prefill.time_s,
        decode.time_s,
        e2e,
        w.batch * w.output_len / e2e,
        w.output_len / e2e,
        prefill.roofline_time_s,
        decode.roofline_time_s,
        w.batch * w.output_len / roof_e2e,
    )


def memory_note(
    hw: HardwareSpec, mem: MemoryEstimate, plan: Plan | None = None, w: Workload | None = None
) -> Note | None:
    """Does not fit: by how much, the largest batch that does, and (given the plan and the
    workload) the smallest tensor-parallel degree that does."""
    if mem.fits:
        return None
    text = (
        f"memory: needs {mem.total_bytes / 1e9:.1f} GB per device but {hw.name} has "
        f"{mem.capacity_bytes / 1e9:.0f} GB (largest batch that fits: {mem.max_batch}"
    )
    if plan is not None and plan.ctx is not None and w is not None:
        tp = smallest_fitting_tp(plan, w, prefill_point(w), mem.capacity_bytes)
        text += f"; fits with tp {tp}" if tp else f"; no tp up to {plan.ctx.model.n_h} fits"
    return Note(NoteKind.MEMORY, text + ")")


def positions_note(model: ModelConfig, w: Workload | Shape) -> Note | None:
    """Longer than the model was trained for: the last generated token is never fed back, so a
    request needs input_len + output_len − 1 positions (an encoder's input: perfest.encoders)."""
    if model.architecture != "decoder":
        from perfest import encoders

        return encoders.positions_note(model, w)
    positions = w.input_len + w.output_len - 1
    if positions <= model.max_position_embeddings:
        return None
    return Note(
        NoteKind.POSITIONS,
        f"input_len + output_len - 1 = {positions} positions exceed {model.name}'s "
        f"max_position_embeddings {model.max_position_embeddings}",
    )


def layout_notes(model: ModelConfig, hw: HardwareSpec, w: Workload) -> tuple[Note, ...]:
    """What-if layouts, estimated but worth a warning: a tensor-parallel group larger than a
    node (its all-reduces cross the network between nodes, as perfest.sharding.link charges
    them), and kv heads that neither divide tp nor are divided by it (some replicated on some
    devices only; perfest charges every device the most any holds)."""
    notes = []
    per_node = hw.devices_per_node
    if per_node is not None and w.tp > per_node:
        nodes = -(-w.tp // per_node)
        notes.append(
            Note(
                NoteKind.LAYOUT,
                f"tp: {w.tp} devices span {nodes} nodes of {per_node} {hw.name}; tensor "
                f"parallelism normally stays within a node, so its all-reduces are charged to "
                f"the network between nodes ({hw.network_bandwidth_gb_s:g} GB/s per device)",
            )
        )
    n_kv = model.n_kv
    if w.tp > 1 and n_kv % w.tp and w.tp % n_kv:
        notes.append(
            Note(
                NoteKind.LAYOUT,
                f"tp: {w.tp} devices and {model.name}'s {n_kv} kv heads do not divide each "
                f"other; each device is charged {-(-n_kv // w.tp)} kv heads",
            )
        )
    return tuple(notes)


def run(plan: Plan, model: ModelConfig, hw: HardwareSpec, w: Workload) -> Estimate:
    """Evaluate the inference phases of `w` on a compiled plan, as an Estimate (an encoder's
    or encoder-decoder's: perfest.encoders)."""
    if model.architecture != "decoder":
        from perfest import encoders

        return encoders.run(plan, model, hw, w)
    result = infer(plan, hw, w)
    notes = (memory_note(hw, result.memory, plan, w), positions_note(model, w),
             *layout_notes(model, hw, w))  # fmt: skip
    return assemble(plan, model, hw, w, INFERENCE, result, notes)


def assemble(
    plan: Plan,
    model: ModelConfig,
    hw: HardwareSpec,
    w: Workload,
    specs: tuple[PhaseSpec, ...],
    result: Inference,
    notes: tuple[Note | None, ...],
    encoding: EncodingEstimate | None = None,
) -> Estimate:
    """The Estimate of `specs`' phases evaluated in `result` (the notes that apply kept)."""
    phases = tuple(
        PhaseEstimate(spec.name, point, total, plan.for_phase(spec.name))
        for spec, point, total in zip(specs, result.points, result.totals, strict=True)
    )
    r = plan.rates
    return Estimate(  # positional, in field order
        model.name,
        hw.name,
        w,
        plan.parameters,
        r.matmul_flops / r.bandwidth,
        r.compute_eff,
        r.memory_eff,
        result.memory,
        phases,
        result.generation,
        tuple(n for n in notes if n),
        SCHEMA_VERSION,
        encoding,
    )


def estimate(
    model: str | ModelConfig,
    hardware: str | HardwareSpec,
    workload: Workload | None = None,
    **fields,
) -> Estimate:
    """Estimate inference of `model` on `hardware`.

    `model` and `hardware` are catalog names, file paths (str or pathlib.Path; a Hugging Face
    config.json or model folder for a model), loaded specs, or dicts of their fields; the
    workload is a `Workload` or its fields as keywords (batch, input_len, output_len, dtype,
    weight_dtype, kv_dtype, tp, logits, attention, compute_efficiency, memory_efficiency, ep,
    dp_attention, experts_touched, mla, head). A model that stores quantized weights
    (`weight_dtype`) sets the weight dtype unless given. An encoder's estimate has one phase,
    `encode`, and `encoding` in place of `generation`; an encoder-decoder's has encode, prefill
    and decode (perfest.encoders).
    """
    m, hw = load_model(model), load_hardware(hardware)
    w = for_model(m, make_workload(workload, **fields))
    return run(plan_for(m, hw, w), m, hw, w)
