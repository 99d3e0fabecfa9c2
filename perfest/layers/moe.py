"""A mixture-of-experts MLP: router, top-k routed experts, shared experts, expert parallelism.

Symbols as in perfest.specs, plus E routed experts per MoE layer, k of them per token (top-k),
i_e each routed expert's intermediate size, i_shared the shared experts' together; per device
(perfest.sharding) E_l = E/ep experts, i_e split over tp/ep devices (attention under tp) or whole
(dp_attention), T = b·s tokens of the whole batch.

    router         [b·s, h] @ [h, E]                    2·b·s·h·E   (replicated; + E bias adds)
    router_topk    scores of b·s·E: softmax (5) or sigmoid (4) + 1 per score to select the top k
    expert_gate    [m_e, h] @ [h, i_e] per touched expert   2·m_e·h·i_e·e_t = 2·(T·k/ep)·h·i_e
    expert_up      the same (gated experts; a classic expert has up and down only)
    expert_act     the activation (and gating) of m_e·e_t·i_e elements
    expert_down    [m_e, i_e] @ [i_e, h] per touched expert
    expert_combine Σ over each token's k outputs, weighted: 2 FLOPs per element of b·s·k·h
    shared_*       a gated (or classic) MLP of i_shared for every token (perfest.layers.mlp)
    expert_dispatch, expert_return   all-to-all of b·s·k/tp rows of h over ep ranks (dp_attention)

**Experts touched.** A decode step's T·k token–expert assignments land on E·(1 − (1 − k/E)^T)
distinct experts on average, under uniform, independent routing (each expert is missed by a
token with probability 1 − k/E); a device holding E_l of them touches e_t = E_l·(1 − (1 −
k/E)^T), and reads only their weights. Prefill and large batches touch all of them (e_t → E_l).
Each touched expert's product has m_e = (T·k/ep) / e_t rows — the grouped GEMM's reality: a
decode step runs many skinny products, and tile quantization charges each one's small m (a
fractional mean m counts as ⌈m⌉ rows, perfest.roofline). e_t and m_e are derived symbols
(perfest.symbols): not polynomials in b and s, evaluated per point, exact at every batch.
`--experts-touched N` replaces the expectation for a decode step: N experts per MoE layer of
the whole model (N/ep per device), never more than the device holds or its assignments.
Real routers are not uniform (load imbalance); the slowest device paces a step — not modelled.

Under expert parallelism the expert matmuls of a device are its experts' share of the
assignments, T·k/ep rows in all. With attention under tensor parallelism every device has
every token, so no token moves: the MLP's all-reduce sums the experts' partial outputs. With
dp_attention, each device sends its share of its group's tokens, b·s/tp rows per device with the
point's per-group b, k copies each, to the experts' devices (all-to-all), and gets the outputs
back the same way; a token sent to two experts of one device travels twice (DeepEP dedups it;
an upper bound).

Training runs the layer as Megatron-Core does, tokens moved by all-to-all over expert
parallelism: perfest.layers.moe_training.
"""

from __future__ import annotations

from perfest.layers.context import Ctx, Phase
from perfest.layers.mlp import ACTIVATION_FLOPS_PER_ELEMENT, mlp_ops
from perfest.ops import (
    Axis,
    CollectiveKind,
    Fn,
    Group,
    Op,
    Tensor,
    collective,
    elementwise,
    matmul,
    read,
)
from perfest.specs import ModelConfig
from perfest.symbols import Derived, Sym, b, s

#: Router FLOPs per score: softmax (max, subtract, exp, sum, divide) or sigmoid (negate, exp,
#: add, divide), plus one comparison per score to pick the top k (reasoned; small next to the
#: experts).
SCORING_FLOPS_PER_ELEMENT = {"softmax": 5, "sigmoid": 4}
TOPK_FLOPS_PER_ELEMENT = 1
#: Combining a token's k expert outputs: multiply by the routing weight, add (per element).
COMBINE_FLOPS_PER_ELEMENT = 2


def expected_touched(experts: int, k: int, tokens: float) -> float:
    """E·(1 − (1 − k/E)^T): distinct experts T tokens touch on average, k each, uniform
    routing (each token misses a given expert with probability 1 − k/E)."""
    return experts * (1.0 - (1.0 - k / experts) ** tokens)


def touched_symbols(ctx: Ctx) -> tuple[Derived, Derived]:
    """e_t, the experts this device touches per MoE layer, and m_e, the rows each gets: derived
    symbols of the point (module docstring). The point's b is the whole batch's."""
    m: ModelConfig = ctx.model
    E, k = m.num_experts, m.experts_per_token
    held, ep = ctx.shard.experts, ctx.shard.ep
    w = ctx.workload
    override = w.experts_touched if w is not None and ctx.phase is Phase.DECODE else None

    def touched(b: float, s: float, t: float, s_logits: float) -> float:
        assignments = b * s * k / ep
        if override is not None:
            return min(override / ep, held, assignments)
        return held * (1.0 - (1.0 - k / E) ** (b * s))

    def rows(b: float, s: float, t: float, s_logits: float) -> float:
        return b * s * k / ep / touched(b, s, t, s_logits)

    if override is not None:
        formula = f"min({override:g}/{ep}, {held}, b·s·{k}/{ep})"
    else:
        formula = f"{held}·(1 − (1 − {k}/{E})^(b·s))"
    return Derived("e_t", touched, formula), Derived("m_e", rows, f"b·s·{k}/{ep} / e_t")


def moe_ops(ctx: Ctx, x: Tensor, y: Tensor) -> tuple[list[Op], tuple[Tensor, ...]]:
    """x [b·s, h] (normed) → the block's MLP branches: y (routed experts), and the shared
    experts' output if the model has them (the residual sums the branches)."""
    m = ctx.model
    h = ctx.h
    E, k = Sym("E", m.num_experts), Sym("k", m.experts_per_token)
    E_l, i_e = Sym("E_l", ctx.shard.experts), Sym("i_e", ctx.shard.i_e)
    e_t, m_e = touched_symbols(ctx)
    rows = b * s
    logits = ctx.act("router.logits", rows, E)
    ops = [
        # [b·s, h] @ [h, E]: every device scores every expert (the router weight is replicated)
        matmul(
            "router",
            Group.MLP,
            x,
            ctx.param("router.weight", h, E),
            logits,
            m=rows,
            k=h,
            n=E,
            bias=ctx.bias("router.bias", E) if m.router_bias else None,
        ),  # fmt: skip
        elementwise(
            "router_topk",
            Group.MLP,
            rows * E,
            SCORING_FLOPS_PER_ELEMENT[m.router_scoring] + TOPK_FLOPS_PER_ELEMENT,
            reads=(read(logits, rows * E),),
            writes=(read(ctx.act("router.topk", rows, 2 * k)),),  # weights and expert ids
            fn=Fn.ROUTER,
        ),
    ]
    a2a = ctx.workload is not None and ctx.workload.dp_attention and ctx.shard.ep > 1
    sent = ctx.act("moe.dispatch", rows * k * (1 / ctx.shard.tp), h)  # this device's share
    if a2a:
        ops.append(collective("expert_dispatch", CollectiveKind.ALL_TO_ALL, Axis.EP,
                              ctx.shard.ep, sent))  # fmt: skip
    ops += _experts(ctx, (e_t, m_e), (E_l, i_e))
    routed_out = ctx.act("moe.routed", e_t * m_e, h)
    if a2a:
        ops.append(collective("expert_return", CollectiveKind.ALL_TO_ALL, Axis.EP,
                              ctx.shard.ep, sent))  # fmt: skip
    combined = rows * k * h  # each token's k outputs, weighted and summed
    ops.append(
        elementwise(
            "expert_combine",
            Group.MLP,
            combined,
            COMBINE_FLOPS_PER_ELEMENT,
            reads=(read(routed_out, combined), read(ctx.act("router.topk", rows, 2 * k))),
            writes=(read(y, rows * h),),
            fn=Fn.COMBINE,
        )
    )
    branches = (y,)
    if m.i_shared:
        shared_out = ctx.act("shared.y", rows, h)
        ops += mlp_ops(ctx, x, shared_out, Sym("i_shared", ctx.shard.i_shared), "shared")
        if m.shared_expert_gate:  # sigmoid(x·w_g) scales the shared output (Qwen2-MoE)
            gate = ctx.act("shared.gate", rows, 1)
            ops.append(
                matmul(
                    "shared_expert_gate",
                    Group.MLP,
                    x,
                    ctx.param("shared.gate.weight", h, 1),
                    gate,
                    m=rows,
                    k=h,
                    n=1,
                )
            )
        branches = (y, shared_out)
    return ops, branches


def _experts(
    ctx: Ctx, touched: tuple, sizes: tuple, rows_in: Tensor | None = None,
    out: Tensor | None = None,
) -> list[Op]:  # fmt: skip
    """The routed experts' grouped products: e_t products of m_e rows each (module docstring);
    `rows_in` and `out` name the rows they read and write (training: the dispatched buffers)."""
    m = ctx.model
    e_t, m_e = touched
    E_l, i_e = sizes
    h = ctx.h
    gated = m.mlp == "gated"
    assigned = e_t * m_e  # token–expert assignments on this device: b·s·k/ep

    def bank(name: str, a: Tensor, c: Tensor, k_dim, n_dim) -> Op:
        weights = ctx.expert_weight(f"experts.{name}.weight", E_l, k_dim, n_dim)
        bias = ctx.expert_bias(f"experts.{name}.bias", E_l, n_dim) if m.mlp_bias else None
        return matmul(name, Group.MLP, a, weights, c, m=m_e, k=k_dim, n=n_dim, batch=e_t,
                      b_batch=e_t, bias=bias)  # fmt: skip

    # the kernel gathers each expert's rows of x by index: k reads of a token's row in all
    rows_in = ctx.act("moe.x", assigned, h) if rows_in is None else rows_in
    gate, up, act = (ctx.act(f"experts.{n}", assigned, i_e) for n in ("gate", "up", "act"))
    out = ctx.act("moe.routed", assigned, h) if out is None else out
    inner = assigned * i_e
    act_flops = ACTIVATION_FLOPS_PER_ELEMENT[m.activation] + (1 if gated else 0)
    inputs = (read(gate, inner), read(up, inner)) if gated else (read(up, inner),)
    ops = [bank("expert_gate", rows_in, gate, h, i_e)] if gated else []
    return [
        *ops,
        bank("expert_up", rows_in, up, h, i_e),  # [m_e, h] @ [h, i_e], e_t times
        elementwise(
            "expert_act",
            Group.MLP,
            inner,
            act_flops,
            reads=inputs,
            writes=(read(act, inner),),
            fn=Fn.ACTIVATION,
            saves=inputs,  # backward needs the activation's inputs (as the dense MLP's)
        ),
        bank("expert_down", act, out, i_e, h),  # [m_e, i_e] @ [i_e, h], e_t times
    ]
