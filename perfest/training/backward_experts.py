"""The backward of a mixture of experts' element-wise ops, derived from the forward op's `fn`
(perfest.layers.moe_training), as perfest.training.backward derives the rest. FLOPs per element
are reasoned from the math (a FLOP is one multiply or one add; exp counts one):

    router      the gradient reaches the scores only through the k selected weights (the
                top-k's backward scatters them into a zero [T, E] tensor), then the scoring's
                backward runs over all T·E scores as autograd runs it: softmax
                dS = P∘(dP − rowsum(dP∘P)) → 4 per score; sigmoid dy·σ·(1 − σ) → 3 per score
                (the renormalization of the k weights, ~4 per selected weight, T·k ≪ T·E, is
                not counted, as the forward's is not)
    permute     the k copies of each token's gradient summed back: k − 1 adds per element of
                the token rows
    combine     y = Σ_k w·routed: d routed = dy·w (1 per element of T·k·h), d w = Σ_h dy·routed
                (2 per element) → 3 per element of the T·k rows
    gate scale  y = σ(g)·x per row: dx = dy·σ (1), dσ = Σ dy·x (2) → 3 per element (σ's own
                derivative, 3 per token, not counted)

The top-k tensor of each token holds its k weights and its k expert ids: backward reads the
ids and writes the weights' gradients, half of it each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from perfest.layers.context import Ctx
from perfest.ops import Access, Fn, Op, elementwise, grad
from perfest.symbols import mul

if TYPE_CHECKING:
    from perfest.training.backward import Grads

SCORING_BACKWARD_FLOPS = {"softmax": 4, "sigmoid": 3}
COMBINE_BACKWARD_FLOPS = 3
GATE_SCALE_BACKWARD_FLOPS = 3


def _router(op: Op, ctx: Ctx, grads: Grads) -> tuple[Op, ...]:
    """Through the k selected weights to the logits (module docstring): reads the kept scores,
    the k weights' gradients and the k expert ids (the top-k tensor holds both, half each)."""
    logits = op.reads[0]
    scores, topk = op.saves
    half = mul(topk.elements, 0.5)
    flops = SCORING_BACKWARD_FLOPS[ctx.model.router_scoring]
    d_logits = Access(grad(logits.tensor), logits.elements)
    return (elementwise(f"{op.name}.bwd", op.group, logits.elements, flops,
                        (scores, Access(grad(topk.tensor), half), Access(topk.tensor, half)),
                        (d_logits,)),)  # fmt: skip


def _permute(op: Op, ctx: Ctx, grads: Grads) -> tuple[Op, ...]:
    """The k copies of each token's gradient summed into the token's row."""
    x = op.reads[0]
    (sent,) = op.writes
    k = ctx.model.experts_per_token
    return (elementwise(f"{op.name}.bwd", op.group, x.elements, k - 1,
                        (Access(grad(sent.tensor), sent.elements),),
                        (Access(grad(x.tensor), x.elements),)),)  # fmt: skip


def _combine(op: Op, ctx: Ctx, grads: Grads) -> tuple[Op, ...]:
    """d routed = dy·w and d w = Σ_h dy·routed, one kernel per token's k rows."""
    (y,) = op.writes
    routed, weights = op.saves
    d_routed = Access(grad(routed.tensor), routed.elements)
    d_weights = Access(grad(weights.tensor), mul(weights.elements, 0.5))  # the k weights
    return (elementwise(f"{op.name}.bwd", op.group, routed.elements, COMBINE_BACKWARD_FLOPS,
                        (Access(grad(y.tensor), y.elements), routed, weights),
                        (d_routed, d_weights)),)  # fmt: skip


def _gate_scale(op: Op, ctx: Ctx, grads: Grads) -> tuple[Op, ...]:
    """dx = dy·σ(g) and dσ = Σ dy·x per row (σ's own derivative per row not counted)."""
    x, gate = op.saves
    (y,) = op.writes
    return (elementwise(f"{op.name}.bwd", op.group, x.elements, GATE_SCALE_BACKWARD_FLOPS,
                        (Access(grad(y.tensor), y.elements), x, gate),
                        (Access(grad(x.tensor), x.elements), Access(grad(gate.tensor),
                                                                     gate.elements))),)  # fmt: skip


#: Fn → the rule deriving an expert op's backward (merged into perfest.training.backward.RULES).
EXPERT_RULES: dict[Fn, Callable[[Op, Ctx, Grads], tuple[Op, ...]]] = {
    Fn.ROUTER: _router,
    Fn.PERMUTE: _permute,
    Fn.COMBINE: _combine,
    Fn.GATE_SCALE: _gate_scale,
}
