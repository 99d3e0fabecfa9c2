"""LayerNorm and RMSNorm over the hidden dimension.

    norm   rows·h elements: read x [rows, h] and γ (β) [h], write y [rows, h]

FLOPs per element (reasoned from the definitions, not counted by torch's FlopCounterMode):
    RMSNorm   y = x / sqrt(mean(x²) + ε) · γ          square, sum, scale, γ       → 4
    LayerNorm y = (x − mean(x)) / sqrt(var + ε) · γ + β  sum, sub, square, sum,
                                                          scale, γ, β              → 7
Norm weights are replicated under tensor parallelism (perfest.sharding); with sequence
parallelism each device normalizes its b·s/tp rows.

For backward a norm saves its input x and its per-row fp32 statistics (RMSNorm 1/rms;
LayerNorm mean and 1/σ), as PyTorch's and Apex's fused kernels do.
"""

from __future__ import annotations

from perfest.layers.context import Ctx
from perfest.ops import Access, Fn, Group, Op, Tensor, elementwise, read
from perfest.symbols import Expr, mul

NORM_FLOPS_PER_ELEMENT = {"rmsnorm": 4, "layernorm": 7}
NORM_PARAMS = {"rmsnorm": ("γ",), "layernorm": ("γ", "β")}
#: Per-row fp32 statistics kept for backward: 1/rms; mean and 1/σ.
NORM_STATS = {"rmsnorm": 1, "layernorm": 2}


def norm_op(
    name: str, ctx: Ctx, x: Tensor, y: Tensor, rows: Expr | None = None, width: Expr | None = None
) -> Op:
    """Normalize `rows` (default the device's rows of the residual stream: b·s, or b·s/tp with
    sequence parallelism) vectors of `width` (default h): read x and γ (β), write y; save x
    and the row statistics."""
    width = ctx.h if width is None else width
    rows = ctx.rows if rows is None else rows
    n = mul(rows, width)
    kind = ctx.model.norm
    params = tuple(read(ctx.param(f"{name}.{p}", width)) for p in NORM_PARAMS[kind])
    stats = ctx.stat(f"{name}.stats", rows, NORM_STATS[kind])
    return elementwise(
        name,
        Group.NORM,
        n,
        NORM_FLOPS_PER_ELEMENT[kind],
        reads=(read(x, n), *params),  # x [rows, h], γ (β) [h]
        writes=(read(y, n),),  # y [rows, h]
        fn=Fn.NORM,
        saves=(Access(x, n), read(stats)),
    )
