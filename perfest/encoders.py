"""Inference of encoders and encoder-decoders: their phases as data, memory, the Estimate.

Encoder (BERT): one phase, `encode`, over the batch (s = t = input_len; the masked-LM head
scores every position, s_logits = s):
    latency      = T(encode)
    sequences/s  = b / latency            tokens/s = b·input_len / latency

Encoder-decoder (T5): the encoder once over the input, then the decoder generates.
    encode   s = t = s_enc = input_len
    prefill  the decoder's first step: its start token (s = t = 1) and the cross K/V projection
             of the s_enc encoder outputs, once (perfest.layers.cross_attention)
    decode   one decoder step at context t = 1 + max(1, ⌊output_len/2⌋) — the mean of the
             output_len − 1 steps, as for a decoder (perfest.inference) — reading the cross
             cache of s_enc tokens
    TTFT = T(encode) + T(prefill)      TPOT = T(decode)      e2e = TTFT + (output_len − 1)·TPOT
    tokens/s = b·output_len / e2e

Memory per device: every weight (both stacks), the KV caches at the end of generation — the
decoder's self-attention cache of 1 + output_len tokens and the cross cache of s_enc tokens,
2·L_dec·s_enc·n_kv·d values per sequence — and the peak activations: one encoder layer's live
set at s = input_len (perfest.memory's formula per token and per s² for eager scores), the
relative position bias n_h·s² (once for the batch), an encoder-decoder's encoder output
(s_enc·h per sequence), and fp32 logits (a masked-LM head's s·V, a decoder's V per sequence).
"""

from __future__ import annotations

from functools import lru_cache
from math import floor

from perfest.encoder_checks import point_workload_problem
from perfest.errors import SpecError
from perfest.graph import Graph
from perfest.inference import (
    Inference,
    PhaseSpec,
    Shape,
    assemble,
    layout_notes,
    memory_note,
)
from perfest.memory import activation_coefficients
from perfest.plan import Plan, Point, Totals
from perfest.results import (
    EncodingEstimate,
    Estimate,
    GenerationEstimate,
    MemoryEstimate,
    Note,
    NoteKind,
)
from perfest.specs import HardwareSpec, ModelConfig, Workload

#: Tokens the decoder of an encoder-decoder starts from (T5's decoder_start_token_id).
DECODER_START = 1


def encode_point(w: Workload | Shape) -> Point:
    n = w.input_len
    return Point(w.batch, n, n, n, n)


def start_point(w: Workload | Shape) -> Point:
    """The decoder's first step: its start token, attending to itself, reading s_enc."""
    return Point(w.batch, DECODER_START, DECODER_START, DECODER_START, w.input_len)


def step_context(w: Workload | Shape) -> int:
    """The decoder's context at the step that stands for the average decode step."""
    return DECODER_START + max(1, w.output_len // 2)


def step_point(w: Workload | Shape) -> Point:
    return Point(w.batch, 1, step_context(w), 1, w.input_len)


#: The phases of each architecture, in order.
ENCODER = (PhaseSpec("encode", encode_point),)
ENCODER_DECODER = (
    PhaseSpec("encode", encode_point),
    PhaseSpec("prefill", start_point),
    PhaseSpec("decode", step_point),
)


def phases_of(model: ModelConfig) -> tuple[PhaseSpec, ...]:
    return ENCODER if model.architecture == "encoder" else ENCODER_DECODER


def infer(plan: Plan, hw: HardwareSpec, w: Workload | Shape) -> Inference:
    """Every phase of `plan`'s model at `w`, memory, and (an encoder-decoder) the generation;
    an encoder's `generation` is None (see `encoding`)."""
    model = plan.ctx.model
    specs = phases_of(model)
    points = tuple(spec.point(w) for spec in specs)
    totals = tuple(
        plan.for_phase(spec.name).evaluate(p) for spec, p in zip(specs, points, strict=True)
    )
    memory = memory_estimate(plan, hw, w)
    gen = generation(w, *totals) if model.architecture == "encoder-decoder" else None
    return Inference(points, totals, memory, gen)


def encoding(w: Workload | Shape, encode: Totals) -> EncodingEstimate:
    """An encoder's pass over the batch (the equations in the module docstring)."""
    t, roof = encode.time_s, encode.roofline_time_s
    tokens = w.batch * w.input_len
    return EncodingEstimate(t, w.batch / t, tokens / t, roof, w.batch / roof, tokens / roof)


def generation(
    w: Workload | Shape, encode: Totals, prefill: Totals, decode: Totals
) -> GenerationEstimate:
    """The encoder, the decoder's first step, then output_len − 1 decode steps."""
    steps = w.output_len - 1
    ttft = encode.time_s + prefill.time_s
    roof_ttft = encode.roofline_time_s + prefill.roofline_time_s
    e2e = ttft + steps * decode.time_s
    roof_e2e = roof_ttft + steps * decode.roofline_time_s
    return GenerationEstimate(
        ttft,
        decode.time_s,
        e2e,
        w.batch * w.output_len / e2e,
        w.output_len / e2e,
        roof_ttft,
        decode.roofline_time_s,
        w.batch * w.output_len / roof_e2e,
    )


# ---------------------------------------------------------------------------------------------
# Memory.


@lru_cache(maxsize=256)
def _held(plan: Plan) -> tuple[float, Graph]:
    """(bytes of every weight a device holds, the graph holding the KV caches)."""
    if plan.ctx.model.architecture == "encoder":
        return plan.weight_bytes, plan.graph
    whole = Graph((*plan.for_phase("encode").graph.segments, *plan.graph.segments))
    return whole.weight_bytes(), plan.graph


def kv_bytes_per_sequence(plan: Plan, w: Workload | Shape, context: int | None = None) -> float:
    """KV caches of one sequence on a device: the decoder's self-attention cache of `context`
    tokens (default: the whole generation, 1 + output_len) and the cross cache of input_len."""
    if plan.ctx.model.architecture == "encoder":
        return 0.0
    context = DECODER_START + w.output_len if context is None else context
    return _held(plan)[1].kv_bytes(context, encoder=w.input_len)


def activation_bytes(plan: Plan, w: Workload | Shape) -> tuple[float, float]:
    """(per sequence, once for the batch) peak activation bytes on a device (module docstring)."""
    ctx = plan.for_phase("encode").ctx
    per_token, per_token2, per_logit = activation_coefficients(ctx)
    s, m = w.input_len, ctx.model
    per_sequence = s * per_token + s * s * per_token2
    if m.architecture == "encoder-decoder":
        per_sequence += s * m.h * ctx.dt.act_size + per_logit  # encoder output; one position
    elif _mlm(plan):
        per_sequence += s * per_logit
    shared = ctx.shard.n_h * s * s * ctx.dt.act_size if m.position == "relative" else 0.0
    return per_sequence, shared


def _mlm(plan: Plan) -> bool:
    from perfest.encoder_graph import encoder_head

    return encoder_head(plan.ctx) == "mlm"


def memory_estimate(plan: Plan, hw: HardwareSpec, w: Workload | Shape) -> MemoryEstimate:
    weights = _held(plan)[0]
    kv_seq = kv_bytes_per_sequence(plan, w)
    act_seq, shared = activation_bytes(plan, w)
    kv, act = kv_seq * w.batch, act_seq * w.batch + shared
    total = weights + kv + act
    capacity = hw.memory_bytes
    max_batch = max(0, floor((capacity - weights - shared) / (kv_seq + act_seq)))
    return MemoryEstimate(weights, kv, act, total, capacity, total <= capacity, max_batch)


# ---------------------------------------------------------------------------------------------
# The Estimate.


def positions_note(model: ModelConfig, w: Workload | Shape) -> Note | None:
    """An input longer than learned absolute positions cover (relative positions have no
    table to run out of)."""
    if model.position != "learned" or w.input_len <= model.max_position_embeddings:
        return None
    return Note(
        NoteKind.POSITIONS,
        f"input_len {w.input_len} exceeds {model.name}'s max_position_embeddings "
        f"{model.max_position_embeddings}",
    )


def check_workload(model: ModelConfig, w: Workload) -> None:
    """One line for what an encoder does not do (--output-len, --logits)."""
    problem = point_workload_problem(model, w)
    if problem:
        raise SpecError(problem)


def run(plan: Plan, model: ModelConfig, hw: HardwareSpec, w: Workload) -> Estimate:
    """Evaluate an encoder's or an encoder-decoder's phases of `w` on a compiled plan."""
    check_workload(model, w)
    result = infer(plan, hw, w)
    notes = (memory_note(hw, result.memory), positions_note(model, w), *layout_notes(model, hw, w))
    encoder = model.architecture == "encoder"
    if encoder and w.head is None:  # say which head ran
        w = w.model_copy(update={"head": model.head})
    encoded = encoding(w, result.totals[0]) if encoder else None
    return assemble(plan, model, hw, w, phases_of(model), result, notes, encoded)
