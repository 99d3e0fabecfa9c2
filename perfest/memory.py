"""Inference memory per device: weights, KV cache, peak activations.

    weights      Σ the weight tensors of the plan's graph (perfest.graph): the ops' own
                 operands at their per-device widths and dtypes (weight-only quantization
                 leaves embeddings, norms, biases and LM head in the activation dtype, as
                 AWQ/GPTQ checkpoints do; norms and row-parallel biases are replicated)
    KV cache     b·(input + output)·(KV bytes per token: Σ the graph's KV-cache tensors, e.g.
                 2·L·n_kv·d·kv with n_kv the device's share, replicated if n_kv < tp)
    activations  the largest live set of one prefill layer, per device:
                 b·s·(2h + max((n_h + 2·n_kv)·d, (2 if gated else 1)·i))·act
                 (a mixture of experts: also k·(h + (2 if gated else 1)·i_e)/tp per token, the
                 routed rows and their intermediates — T·k/ep rows of i_e/(tp/ep) per device,
                 or with data-parallel attention the whole batch's, ep/tp groups of them)
                 (+ b·n_h·s·s·act for eager attention's score matrix)
                 + b·s_logits·V·4 (fp32 logits)
Framework overheads (CUDA context, allocator fragmentation, serving engines' pre-allocation)
are not included: the total is what the model itself needs.
"""

from __future__ import annotations

from math import floor
from typing import TYPE_CHECKING

from perfest.layers.context import Ctx
from perfest.results import MemoryEstimate
from perfest.specs import HardwareSpec, Workload

if TYPE_CHECKING:
    from perfest.plan import Plan, Point


def kv_bytes_per_sequence(plan: Plan, context: int) -> float:
    """K and V for `context` tokens of one sequence, on each device (a windowed layer keeps
    min(context, window) tokens)."""
    return plan.kv_bytes(context)


def activation_coefficients(ctx: Ctx, act: float | None = None) -> tuple[float, float, float]:
    """Bytes of one sequence's peak live prefill activations on a device, per prompt token s,
    per s² (eager attention's scores) and per logit position (`act`: bytes per element,
    default the activation dtype): the formula in the module docstring."""
    m, sh = ctx.model, ctx.shard
    act = ctx.dt.act_size if act is None else act
    gated = 2 if m.mlp == "gated" else 1
    widest = max((sh.n_h + 2 * sh.n_kv) * m.d, gated * sh.i)
    if m.moe:
        widest = max(widest, m.experts_per_token * (m.h + gated * m.i_e) / sh.tp)
    per_token = (2 * m.h + widest) * act
    per_token2 = 0.0 if ctx.flash else sh.n_h * act
    return per_token, per_token2, sh.V * 4.0


def activation_bytes_per_sequence(ctx: Ctx, prefill: Point, act: float | None = None) -> float:
    """Peak live activations of one sequence of a prefill pass, on each device."""
    per_token, per_token2, per_logit = activation_coefficients(ctx, act)
    return _activations(prefill, per_token, per_token2, per_logit)


def _activations(prefill: Point, per_token: float, per_token2: float, per_logit: float) -> float:
    s = prefill.s
    layer = s * per_token
    if per_token2:
        layer += s * s * per_token2
    return layer + prefill.s_logits * per_logit


def smallest_fitting_tp(plan: Plan, w: Workload, prefill: Point, capacity: float) -> int | None:
    """The smallest tensor-parallel degree above w.tp that splits the model's heads and fits its
    weights, KV cache and activations in `capacity` bytes per device (None: none up to the
    number of heads). Reads the graph at each tp, as memory does; each tp's footprint is
    worked out once per plan (`plan.footprints`), so only the arithmetic below runs per call."""
    model = plan.ctx.model
    for tp in range(w.tp + 1, model.n_h + 1):
        if model.n_h % tp:
            continue
        footprint = plan.footprints.get(tp)
        if footprint is None:
            footprint = plan.footprints[tp] = _footprint(plan.ctx, tp)
        weights, kv_token, coefficients = footprint
        kv_seq = kv_token * (w.input_len + w.output_len)
        if weights + w.batch * (kv_seq + _activations(prefill, *coefficients)) <= capacity:
            return tp
    return None


def _footprint(ctx: Ctx, tp: int) -> tuple:
    """(weight bytes, KV bytes per token, activation coefficients) on one device at `tp`."""
    from perfest.graph import build_graph
    from perfest.sharding import Layout, shard

    at = Ctx(ctx.model, shard(ctx.model, Layout(tp=tp)), ctx.dt, ctx.flash)
    graph = build_graph(at)
    return graph.weight_bytes(), graph.kv_bytes_per_token(), activation_coefficients(at)


def memory_estimate(plan: Plan, hw: HardwareSpec, w: Workload, prefill: Point) -> MemoryEstimate:
    """With data-parallel attention over g groups a device holds the caches and activations of
    its group's ⌈b/g⌉ sequences."""
    weights = plan.weight_bytes
    kv_seq = plan.kv_bytes(w.input_len + w.output_len)
    act_seq = _activations(prefill, *plan.activations)
    g = plan.groups
    held = w.batch if g == 1 else -(-w.batch // g)
    kv, act = kv_seq * held, act_seq * held
    total = weights + kv + act
    capacity = hw.memory_bytes
    max_batch = g * max(0, floor((capacity - weights) / (kv_seq + act_seq)))
    return MemoryEstimate(weights, kv, act, total, capacity, total <= capacity, max_batch)
