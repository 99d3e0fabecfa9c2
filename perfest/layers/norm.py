"""LayerNorm and RMSNorm over the hidden dimension.

    norm   rows·h elements: read x [rows, h] and γ (β) [h], write y [rows, h]

FLOPs per element (reasoned from the definitions, not counted by torch's FlopCounterMode):
    RMSNorm   y = x / sqrt(mean(x²) + ε) · γ          square, sum, scale, γ       → 4
    LayerNorm y = (x − mean(x)) / sqrt(var + ε) · γ + β  sum, sub, square, sum,
                                                          scale, γ, β              → 7
Norm weights are replicated under tensor parallelism (perfest.sharding).
"""

from __future__ import annotations

from perfest.layers.context import Ctx
from perfest.ops import Group, Op, Tensor, elementwise, read
from perfest.symbols import Expr, b, mul, s

NORM_FLOPS_PER_ELEMENT = {"rmsnorm": 4, "layernorm": 7}
NORM_PARAMS = {"rmsnorm": ("γ",), "layernorm": ("γ", "β")}


def norm_op(
    name: str, ctx: Ctx, x: Tensor, y: Tensor, rows: Expr | None = None, width: Expr | None = None
) -> Op:
    """Normalize `rows` (default b·s) vectors of `width` (default h): read x and γ (β), write y."""
    width = ctx.h if width is None else width
    n = mul(b, s, width) if rows is None else mul(rows, width)
    kind = ctx.model.norm
    params = tuple(read(ctx.param(f"{name}.{p}", width)) for p in NORM_PARAMS[kind])
    return elementwise(
        name,
        Group.NORM,
        n,
        NORM_FLOPS_PER_ELEMENT[kind],
        reads=(read(x, n), *params),  # x [rows, h], γ (β) [h]
        writes=(read(y, n),),  # y [rows, h]
    )
