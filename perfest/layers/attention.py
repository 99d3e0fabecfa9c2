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

Training (ctx.training): no KV cache: K and V are activations of the pass, and with context
parallelism (cp > 1) each device's s = S/cp queries attend to the t = S keys gathered from the
ring of cp devices (`kv_allgather`: the ring exchange moves the same (cp − 1)/cp of K and V).
What backward needs (`saves`): eager attention keeps q, k, v and the s×t probabilities (the
products' operands); flash attention keeps q, k, v, its output and the fp32 log-sum-exp of each
score row (b·n_h·s), and recomputes the scores in backward (FlashAttention-2, Dao 2023).
"""

from __future__ import annotations

from dataclasses import replace

from perfest.layers.context import Ctx
from perfest.ops import (
    Access,
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
from perfest.symbols import b, mul, s, t

#: RoPE: x·cos + rotate(x)·sin → 2 multiplies and 1 add per rotated element.
ROPE_FLOPS_PER_ELEMENT = 3
#: Softmax: max, subtract, exp, sum, divide per score.
SOFTMAX_FLOPS_PER_ELEMENT = 5
#: Dropout: compare a random number with p, scale the kept values (Srivastava et al. 2014).
DROPOUT_FLOPS_PER_ELEMENT = 2


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
                fn=Fn.ROPE,
            )
        )
    out = ctx.act("attn.out", b * s, n_h * d)
    if ctx.training:
        ops += _training_core(ctx, qkv, out)
    else:
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
                fn=Fn.COPY,
            )
        )
        ops += _core(ctx, qkv, cache, cache, out)
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


def _training_core(ctx: Ctx, qkv: Tensor, out: Tensor) -> list[Op]:
    """The core without a KV cache; with cp > 1, K and V gathered over the context ring."""
    d, n_h, n_kv = ctx.d, ctx.n_h, ctx.n_kv
    k, v = (ctx.act(f"attn.{name}", b, t, n_kv * d) for name in ("k", "v"))
    ops = []
    if ctx.cp > 1:  # the ring brings the other cp − 1 chunks of K and V
        kv = ctx.act("attn.kv", b, t, 2 * n_kv * d)
        ops.append(collective("kv_allgather", CollectiveKind.ALL_GATHER, Axis.CP, ctx.cp, kv))
    core = _core(ctx, qkv, k, v, out)
    if not ctx.flash:
        return ops + core
    # flash keeps this device's q, k, v, the output and the log-sum-exp of each score row
    scores, softmax, values = core
    local = b * s * n_kv * d
    lse = ctx.stat("attn.lse", b * n_h, s)
    qkv_saves = (Access(qkv, b * s * n_h * d), Access(k, local), Access(v, local))
    return [
        *ops,
        replace(scores, saves=qkv_saves),
        softmax,
        replace(values, saves=(read(out), read(lse))),
    ]


def _core(ctx: Ctx, q: Tensor, k: Tensor, v: Tensor, out: Tensor) -> list[Op]:
    """softmax(q·kᵀ/√d)·v over t keys (k, v: the KV cache in inference)."""
    d, n_h, n_kv = ctx.d, ctx.n_h, ctx.n_kv
    eager = not ctx.flash
    scores = ctx.act("attn.scores", b * n_h, s, t)  # [b·n_h, s, t], on chip with flash
    n_scores = b * n_h * s * t
    probs = scores
    dropout = []
    if eager and ctx.dropout:  # dropout on the probabilities (kept, and its mask, for backward)
        probs = ctx.act("attn.probs", b * n_h, s, t)
        dropout = [dropout_op("attn_dropout", Group.ATTENTION, ctx, scores, probs, n_scores)]
    return [
        # [s, d] @ [d, t] per (sequence, head): q·kᵀ
        matmul(
            "attn_scores",
            Group.ATTENTION,
            q,
            k,
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
            fn=Fn.SOFTMAX,
            saves=(read(scores, n_scores),) if eager else (),  # backward needs the output
        ),
        *dropout,
        # [s, t] @ [t, d] per (sequence, head): probabilities · v
        matmul(
            "attn_values",
            Group.ATTENTION,
            probs,
            v,
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


def dropout_op(name: str, group: Group, ctx: Ctx, x: Tensor, y: Tensor, n) -> Op:
    """y = x·mask/(1 − p) over n elements; the one-byte mask is kept for backward."""
    mask = ctx.mask(f"{name}.mask", n)
    return elementwise(
        name,
        group,
        n,
        DROPOUT_FLOPS_PER_ELEMENT,
        reads=(read(x, n),),
        writes=(read(y, n), read(mask)),
        fn=Fn.DROPOUT,
        saves=(read(mask),),
    )


def kv_elements_per_token(ctx: Ctx) -> int:
    """K and V elements one token adds to one layer's cache on this device: 2·n_kv·d."""
    return mul(2, ctx.n_kv, ctx.d).value()
