"""A mixture-of-experts MLP in training: Megatron-Core's all-to-all token dispatcher.

Symbols as in perfest.layers.moe; per device E_l = E/ep experts, each i_e/etp wide (expert
tensor parallelism, Megatron-Core's parallel folding: perfest.sharding), and T the device's
rows of the residual stream — b·s/tp with the sequence parallelism Megatron-Core requires of a
mixture of experts under tp > 1 (megatron/training/arguments.py: "When using MoE and tensor
parallelism, sequence parallelism must be used."), b·s at tp = 1. The layer runs as
Megatron-Core's `MoEAlltoAllTokenDispatcher` (megatron/core/transformer/moe/token_dispatcher.py):

    router            [T, h] @ [h, E] on the device's own tokens     2·T·h·E
    router_topk       softmax (5) or sigmoid (4) + top-k (1) per score of T·E; the scores are
                      kept for backward, with the k weights and expert ids of each token
    moe_permute       each token copied to its k slots, grouped by expert   T·k rows of h
    expert_dispatch   all-to-all over the ep group (ep > 1): T·k rows of h, (ep−1)/ep of them
                      on the wire (uniform routing)
    expert_allgather  over etp (etp > 1): each etp rank gets the group's T·k·etp rows
    expert_gate, expert_up, expert_act, expert_down
                      the E_l local experts on the T·k·etp rows: 2·T·k·etp·h·(i_e/etp) each
    expert_reducescatter  over etp (etp > 1): the experts' partial sums back to T·k rows
    expert_return     all-to-all over ep back to the tokens' devices
    expert_combine    each token's k outputs weighted and summed: 2 FLOPs per element of
                      T·k·h; the output is whole on the device's rows (no tensor-parallel
                      reduction follows)
    shared_*          the shared experts as a dense MLP under tp (all-gathered input, partial
                      sums reduce-scattered at the block's end: perfest.layers.residual)
    shared_gate_scale (Qwen2-MoE's shared-expert gate) σ(x·w_g)·shared: 1 FLOP per element of
                      b·s·h (the sigmoid of the b·s logits, 4 per row, is not counted)

Expert FLOPs per device: T·k·etp rows on i_e/etp columns, 2·T·k·h·i_e per product — what the
device's own T tokens need, whoever computes them (uniform routing).

**Every expert is touched.** A device's experts see the tokens of its ep·etp group,
P = T·ep·etp, and touch e_t = E_l·(1 − (1 − k/E)^P) of them (perfest.layers.moe); at training
sizes that is E_l to double precision — a 4096-token micro-batch at k/E = 8/256 leaves
(1 − 1/32)^4096 ≈ e^−130 — so each expert's product has m_e = T·k·etp/E_l rows.

Not modelled: load imbalance between experts and devices (Megatron-Bridge's published MoE
benchmarks force-balance the routing, the uniform case modelled here); Megatron's batch-level
overlap of the all-to-alls with compute (`--overlap-moe-expert-parallel-comm`: here they are
exposed); the auxiliary load-balancing loss (a sum over E per token group: O(T·E) FLOPs, as
small as the scoring) and its gradient; the update of DeepSeek-V3's score-correction bias
(counted as the router's bias, whose gradient of T·E adds is negligible).
"""

from __future__ import annotations

from perfest.layers.context import Ctx
from perfest.layers.mlp import mlp_ops
from perfest.layers.moe import (
    COMBINE_FLOPS_PER_ELEMENT,
    SCORING_FLOPS_PER_ELEMENT,
    TOPK_FLOPS_PER_ELEMENT,
    _experts,
)
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
from perfest.symbols import Derived, Expr, Sym, b, s

#: The shared-expert gate's scaling: one multiply per element of the branch.
GATE_SCALE_FLOPS_PER_ELEMENT = 1


def token_pool(ctx: Ctx) -> float:
    """P / (b·s): the tokens whose assignments can reach this device's experts, per token of
    the micro-batch: its T rows (b·s/tp under sequence parallelism) times the ep·etp devices
    that exchange them."""
    sh = ctx.shard
    local = 1 / sh.tp if ctx.sequence_parallel and sh.split else 1.0
    return local * sh.ep * sh.etp


def local_tokens(ctx: Ctx) -> Expr:
    """T, this device's rows: b·s, or under sequence parallelism b·s/tp as a derived symbol
    (a product's dimension is a whole monomial in the plan: perfest.plan)."""
    if not (ctx.sequence_parallel and ctx.shard.split):
        return b * s
    tp = ctx.shard.tp
    return Derived("T_l", lambda b, s, t, s_logits: b * s / tp, f"b·s/{tp}")


def touched_symbols(ctx: Ctx) -> tuple[Derived, Derived]:
    """e_t, the experts this device touches per MoE layer, and m_e, the rows each gets
    (module docstring), from the pool of P = (b·s)·`token_pool` tokens."""
    m = ctx.model
    E, k, held, ep = m.num_experts, m.experts_per_token, ctx.shard.experts, ctx.shard.ep
    pool = token_pool(ctx)

    def touched(b: float, s: float, t: float, s_logits: float) -> float:
        return held * (1.0 - (1.0 - k / E) ** (pool * b * s))

    def rows(b: float, s: float, t: float, s_logits: float) -> float:
        return pool * b * s * k / ep / touched(b, s, t, s_logits)

    formula = f"{held}·(1 − (1 − {k}/{E})^({pool:g}·b·s))"
    return Derived("e_t", touched, formula), Derived("m_e", rows, f"{pool:g}·b·s·{k}/{ep} / e_t")


def moe_training_ops(
    ctx: Ctx, x: Tensor, x_full: Tensor, y: Tensor
) -> tuple[list[Op], tuple[Tensor, ...]]:
    """x [T, h] (normed, this device's rows), x_full the same rows gathered over tp (what
    the shared experts read) → the block's MLP branches: the shared experts' output first
    (partial sums over tp) if the model has them, then y (the routed experts', whole)."""
    m = ctx.model
    h, rows = ctx.h, local_tokens(ctx)
    E, k = Sym("E", m.num_experts), Sym("k", m.experts_per_token)
    sh = ctx.shard
    ops = _router(ctx, x, rows, E, k)
    scores_and_ids = ops[-1].writes[-1]
    sent = ctx.act("moe.dispatch", rows * k, h)  # this device's tokens, k copies, by expert
    ops.append(_permute(ctx, x, sent, rows, k))
    if sh.ep > 1:
        ops.append(collective("expert_dispatch", CollectiveKind.ALL_TO_ALL, Axis.EP, sh.ep, sent))
    x_in, out = sent, ctx.act("moe.return", rows * k, h)
    if sh.etp > 1:  # the expert-tensor-parallel ranks share their tokens
        x_in = ctx.act("moe.x", rows * k * sh.etp, h)
        routed = ctx.act("moe.routed", rows * k * sh.etp, h)
        ops.append(collective("expert_allgather", CollectiveKind.ALL_GATHER, Axis.ETP, sh.etp,
                              x_in))  # fmt: skip
    else:
        routed = out
    sizes = (Sym("E_l", sh.experts), Sym("i_e", sh.i_e))
    ops += _experts(ctx, touched_symbols(ctx), sizes, x_in, routed)
    if sh.etp > 1:
        ops.append(collective("expert_reducescatter", CollectiveKind.REDUCE_SCATTER, Axis.ETP,
                              sh.etp, routed))  # fmt: skip
    if sh.ep > 1:
        ops.append(collective("expert_return", CollectiveKind.ALL_TO_ALL, Axis.EP, sh.ep, out))
    weights = scores_and_ids.tensor
    combined = rows * k * h
    ops.append(
        elementwise(
            "expert_combine",
            Group.MLP,
            combined,
            COMBINE_FLOPS_PER_ELEMENT,
            reads=(read(out, combined), read(weights)),
            writes=(read(y, rows * h),),
            fn=Fn.COMBINE,
            saves=(read(out, combined), read(weights)),  # d weights = Σ_h dy·routed
        )
    )
    if not m.i_shared:
        return ops, (y,)
    shared_out = ctx.act("shared.y", b * s, h)
    ops += mlp_ops(ctx, x_full, shared_out, Sym("i_shared", sh.i_shared), "shared")
    if m.shared_expert_gate:
        ops += _shared_gate(ctx, x_full, shared_out)
    return ops, (shared_out, y)


def _router(ctx: Ctx, x: Tensor, rows: Expr, E: Sym, k: Sym) -> list[Op]:
    """Scores of the device's tokens; the scoring's output is kept for its backward."""
    m = ctx.model
    logits = ctx.act("router.logits", rows, E)
    scores = ctx.act("router.scores", rows, E)
    topk = ctx.act("router.topk", rows, 2 * k)  # weights and expert ids
    return [
        # [T, h] @ [h, E]: the router weight is replicated
        matmul(
            "router",
            Group.MLP,
            x,
            ctx.param("router.weight", ctx.h, E),
            logits,
            m=rows,
            k=ctx.h,
            n=E,
            bias=ctx.bias("router.bias", E) if m.router_bias else None,
        ),  # fmt: skip
        elementwise(
            "router_topk",
            Group.MLP,
            rows * E,
            SCORING_FLOPS_PER_ELEMENT[m.router_scoring] + TOPK_FLOPS_PER_ELEMENT,
            reads=(read(logits),),
            writes=(read(scores), read(topk)),
            fn=Fn.ROUTER,
            saves=(read(scores), read(topk)),
        ),
    ]


def _permute(ctx: Ctx, x: Tensor, sent: Tensor, rows: Expr, k: Sym) -> Op:
    """Each token's row copied to its k slots, grouped by expert (Megatron's moe_permute): a
    pure data movement reading each row once."""
    return elementwise("moe_permute", Group.MLP, rows * k * ctx.h, 0,
                       reads=(read(x, rows * ctx.h), read(ctx.act("router.topk", rows, 2 * k))),
                       writes=(read(sent),), fn=Fn.PERMUTE)  # fmt: skip


def _shared_gate(ctx: Ctx, x: Tensor, shared: Tensor) -> list[Op]:
    """σ(x·w_g) scales the shared experts' output, one gate per token (Qwen2-MoE)."""
    gate = ctx.act("shared.gate", b * s, 1)
    n = b * s * ctx.h
    scale = elementwise("shared_gate_scale", Group.MLP, n, GATE_SCALE_FLOPS_PER_ELEMENT,
                        reads=(read(shared), read(gate)), writes=(read(shared),),
                        fn=Fn.GATE_SCALE, saves=(read(shared), read(gate)))  # fmt: skip
    product = matmul("shared_expert_gate", Group.MLP, x, ctx.param("shared.gate.weight", ctx.h, 1),
                     gate, m=b * s, k=ctx.h, n=1)  # fmt: skip
    return [product, scale]
