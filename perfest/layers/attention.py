"""Self-attention: Q/K/V projections, RoPE, the KV-cache write, scores, softmax, ·V, output.

Under tensor parallelism n_h and n_kv below are the device's shares (perfest.sharding).

    qkv_proj     [b·s, h] @ [h, (n_h + 2·n_kv)·d]   2·b·s·h·(n_h + 2·n_kv)·d
    attn_scores  [s, d] @ [d, t], b·n_h times       2·b·n_h·s·t·d
    attn_values  [s, t] @ [t, d], b·n_h times       2·b·n_h·s·t·d
    out_proj     [b·s, n_h·d] @ [n_h·d, h]          2·b·s·n_h·d·h

Causal masking: FLOPs are counted for the full s×t score matrix, the convention of the
closed form 24·b·s·h²·L·(1 + s/(6h)) and of torch's FlopCounterMode. A causal kernel that
skips masked tiles does about half the prefill attention work, so for long prompts the
prediction of the two attention matmuls errs on the slow side, by about (s/12h)/(1 + s/6h) of
the prefill FLOPs: 7 % at s = h, 2 % at s = h/4.

With `flash` (the default: FlashAttention-style fused kernels, what serving engines run), the
s×t scores and probabilities stay on chip: one kernel reads Q, K, V and writes the output.
Without it (eager), scores and probabilities round-trip through memory in three kernels.
Grouped-query attention: each k/v head serves n_h/n_kv query heads, so K and V are read once
per kv head (b·n_kv distinct operands) while the products run b·n_h times.
"""

from __future__ import annotations

from perfest.layers.context import Ctx
from perfest.ops import Group, Op, Tensor, elementwise, matmul, read
from perfest.symbols import b, mul, s, t

#: RoPE: x·cos + rotate(x)·sin → 2 multiplies and 1 add per rotated element.
ROPE_FLOPS_PER_ELEMENT = 3
#: Softmax: max, subtract, exp, sum, divide per score.
SOFTMAX_FLOPS_PER_ELEMENT = 5


def attention_ops(ctx: Ctx, x: Tensor, y: Tensor) -> list[Op]:
    """x [b·s, h] (normed) → y [b·s, h], this pass's keys and values appended to the cache."""
    m = ctx.model
    h, d, n_h, n_kv = ctx.h, ctx.d, ctx.n_h, ctx.n_kv
    width = (n_h + 2 * n_kv) * d
    qkv = ctx.act("qkv", b * s, width)
    ops = [
        # [b·s, h] @ [h, (n_h + 2·n_kv)·d] → q, k, v
        matmul(
            "qkv_proj",
            Group.ATTENTION,
            x,
            ctx.weight("attn.w_qkv", h, width),
            qkv,
            m=b * s,
            k=h,
            n=width,
            bias=ctx.bias("attn.b_qkv", width) if m.qkv_bias else None,
        ),
    ]
    if m.rope_dim:
        rotated = b * s * (n_h + n_kv) * ctx.d_rope  # q and k, d_rope dims per head
        cos_sin = ctx.table("rope.cos_sin", s, ctx.d_rope)
        ops.append(
            elementwise(
                "rope",
                Group.ATTENTION,
                rotated,
                ROPE_FLOPS_PER_ELEMENT,
                reads=(read(qkv, rotated), read(cos_sin)),  # x, cos/sin table [s, d_rope]
                writes=(read(qkv, rotated),),
            )
        )
    cache = ctx.kv_cache("attn.kv_cache", b, t, 2 * n_kv * d)  # K and V of t tokens
    kv_new = b * s * 2 * n_kv * d  # this pass's k and v, appended to the cache
    ops.append(
        elementwise(
            "kv_cache_write",
            Group.ATTENTION,
            kv_new,
            0,
            reads=(read(qkv, kv_new),),
            writes=(read(cache, kv_new),),
        )
    )
    out = ctx.act("attn.out", b * s, n_h * d)
    ops += _core(ctx, qkv, cache, out)
    # [b·s, n_h·d] @ [n_h·d, h]
    ops.append(
        matmul(
            "out_proj",
            Group.ATTENTION,
            out,
            ctx.weight("attn.w_out", n_h * d, h),
            y,
            m=b * s,
            k=n_h * d,
            n=h,
            bias=ctx.bias("attn.b_out", h) if m.out_bias else None,  # replicated
        )
    )
    return ops


def _core(ctx: Ctx, q: Tensor, cache: Tensor, out: Tensor) -> list[Op]:
    """softmax(q·kᵀ/√d)·v over the cache's t keys."""
    d, n_h, n_kv = ctx.d, ctx.n_h, ctx.n_kv
    eager = not ctx.flash
    scores = ctx.act("attn.scores", b * n_h, s, t)  # [b·n_h, s, t], on chip with flash
    n_scores = b * n_h * s * t
    return [
        # [s, d] @ [d, t] per (sequence, head): q·kᵀ
        matmul(
            "attn_scores",
            Group.ATTENTION,
            q,
            cache,
            scores,
            m=s,
            k=d,
            n=t,
            batch=b * n_h,
            b_batch=b * n_kv,
            write_c=eager,
        ),
        elementwise(
            "attn_softmax",
            Group.ATTENTION,
            n_scores,
            SOFTMAX_FLOPS_PER_ELEMENT,
            reads=(read(scores, n_scores),) if eager else (),
            writes=(read(scores, n_scores),) if eager else (),
            kernels=1 if eager else 0,
        ),
        # [s, t] @ [t, d] per (sequence, head): probabilities · v
        matmul(
            "attn_values",
            Group.ATTENTION,
            scores,
            cache,
            out,
            m=s,
            k=t,
            n=d,
            batch=b * n_h,
            b_batch=b * n_kv,
            read_a=eager,
            kernels=1 if eager else 0,
        ),
    ]


def kv_elements_per_token(ctx: Ctx) -> int:
    """K and V elements one token adds to one layer's cache on this device: 2·n_kv·d."""
    return mul(2, ctx.n_kv, ctx.d).value()
