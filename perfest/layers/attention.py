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

Sliding windows (Mistral-7B-v0.1: 4096; gpt-oss: 128 on every other layer): a windowed layer
attends to, and keeps in its cache, the last w keys only, so its context is t_w = min(t, w), a
derived symbol (perfest.symbols) — not a polynomial in t. Prefill of s > w tokens is counted as
s·w scores per head: the full-band convention of the s×t count above, with a sliding-window
kernel skipping the tiles outside the band.
Attention sinks (gpt-oss): a learned logit per head joins each softmax's denominator — one more
exp and add per row of s·t scores, negligible and not counted; their n_h parameters are read.
QK-norm (Qwen3): RMSNorm over each head's q and k before RoPE, 4 FLOPs per element (as norms).

Training (ctx.training): no KV cache: K and V are activations of the pass, and with context
parallelism (cp > 1) each device's s = S/cp queries attend to the t = S keys gathered from the
ring of cp devices (`kv_allgather`: the ring exchange moves the same (cp − 1)/cp of K and V).
What backward needs (`saves`): eager attention keeps q, k, v and the s×t probabilities (the
products' operands); flash attention keeps q, k, v, its output and the fp32 log-sum-exp of each
score row (b·n_h·s), and recomputes the scores in backward (FlashAttention-2, Dao 2023).
"""

from __future__ import annotations

from dataclasses import replace

from perfest.layers.context import Ctx, Fusion
from perfest.layers.norm import NORM_FLOPS_PER_ELEMENT
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
from perfest.symbols import Derived, Expr, b, mul, s, t

#: RoPE: x·cos + rotate(x)·sin → 2 multiplies and 1 add per rotated element.
ROPE_FLOPS_PER_ELEMENT = 3
#: Softmax: max, subtract, exp, sum, divide per score.
SOFTMAX_FLOPS_PER_ELEMENT = 5
#: Dropout: compare a random number with p, scale the kept values (Srivastava et al. 2014).
DROPOUT_FLOPS_PER_ELEMENT = 2


def window_context(window: int) -> Derived:
    """t_w = min(t, w): the keys a query of a layer with a sliding window of w attends to."""
    return Derived("t_w", lambda b, s, t, s_logits: min(t, window), f"min(t, {window})")


def attention_ops(ctx: Ctx, x: Tensor, y: Tensor, window: bool = False) -> list[Op]:
    """x [b·s, h] (normed) → y [b·s, h], this pass's keys and values appended to the cache.
    `window`: the layer attends within the model's sliding window (context t_w)."""
    m = ctx.model
    d, n_h, n_kv = ctx.d, ctx.n_h, ctx.n_kv
    context = window_context(m.sliding_window) if window else t
    width = (n_h + 2 * n_kv) * d
    qkv = ctx.act("qkv", b * s, width)
    ops = [qkv_proj_op(ctx, x, qkv)]
    if m.qk_norm:  # RMSNorm over each head's q and k: γ_q, γ_k of d each
        normed = b * s * (n_h + n_kv) * d
        gammas = (read(ctx.param("attn.q_norm.γ", d)), read(ctx.param("attn.k_norm.γ", d)))
        ops.append(
            elementwise(
                "qk_norm",
                Group.ATTENTION,
                normed,
                NORM_FLOPS_PER_ELEMENT["rmsnorm"],
                reads=(read(qkv, normed), *gammas),
                writes=(read(qkv, normed),),
                fn=Fn.NORM,
                saves=(read(qkv, normed),),
            )
        )
    if m.rope_dim:
        ops.append(rope_op(ctx, qkv))
    out = ctx.act("attn.out", b * s, n_h * d)
    sinks = ctx.param("attn.sinks", n_h) if m.attention_sinks else None
    if ctx.training:
        ops += _training_core(ctx, qkv, out, context, sinks)
    else:
        cache = ctx.kv_cache("attn.kv_cache", b, context, 2 * n_kv * d)  # K, V of t (t_w) tokens
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
                kernels=2 if ctx.fusion is Fusion.NONE else 1,  # eager: K and V apart
            )
        )
        kv, kv_heads = cache, n_kv
        if ctx.fusion is Fusion.NONE and not ctx.flash and m.n_kv != m.n_h:
            repeat, kv = repeat_kv(ctx, cache, context)
            ops.append(repeat)
            kv_heads = n_h
        ops += core_ops(ctx, (qkv, kv, kv, out), (d, d), kv_heads, context, sinks)
    ops.append(out_proj_op(ctx, out, y))
    return ops


def qkv_proj_op(ctx: Ctx, x: Tensor, qkv: Tensor) -> Op:
    """[b·s, h] @ [h, (n_h + 2·n_kv)·d] → q, k, v (with the model's bias)."""
    width = (ctx.n_h + 2 * ctx.n_kv) * ctx.d
    bias = ctx.bias("attn.b_qkv", width) if ctx.model.qkv_bias else None
    return matmul("qkv_proj", Group.ATTENTION, x, ctx.weight("attn.w_qkv", ctx.h, width), qkv,
                  m=b * s, k=ctx.h, n=width, bias=bias)  # fmt: skip


def out_proj_op(ctx: Ctx, out: Tensor, y: Tensor, prefix: str = "") -> Op:
    """[b·s, n_h·d] @ [n_h·d, h] (with the model's bias, replicated: row-parallel). `prefix`:
    "cross_" for an encoder-decoder's cross-attention (its own weights, cross.w_out)."""
    scope = "cross." if prefix else "attn."
    width = ctx.n_h * ctx.d
    bias = ctx.bias(f"{scope}b_out", ctx.h) if ctx.model.out_bias else None
    return matmul(f"{prefix}out_proj", Group.ATTENTION, out, ctx.weight(f"{scope}w_out", width,
                  ctx.h), y, m=b * s, k=width, n=ctx.h, bias=bias)  # fmt: skip


#: Eager PyTorch's RoPE per rotated tensor (perfest.validate.reference.Rope): negate half,
#: concatenate, ·cos, ·sin, add — (elements read, elements written, FLOPs) per rotated element.
EAGER_ROPE_KERNELS = ((0.5, 0.5, 0.5), (1, 1, 0), (1, 1, 1), (1, 1, 1), (2, 1, 1))


def rope_op(ctx: Ctx, qkv: Tensor) -> Op:
    """Rotate q and k: b·s·(n_h + n_kv)·d_rope elements, 3 FLOPs each (x·cos + rotate(x)·sin),
    reading them and the [s, d_rope] cos/sin table. Eager PyTorch (fusion none) runs it as five
    kernels per tensor (EAGER_ROPE_KERNELS), q and k apart: 3.5 FLOPs, 5.5 reads and 4.5
    writes per element, and the table read twice (·cos and ·sin, for q and for k)."""
    rotated = b * s * (ctx.n_h + ctx.n_kv) * ctx.d_rope  # q and k, d_rope dims per head
    cos_sin = ctx.table("rope.cos_sin", s, ctx.d_rope)
    if ctx.fusion is not Fusion.NONE:
        return elementwise("rope", Group.ATTENTION, rotated, ROPE_FLOPS_PER_ELEMENT,
                           reads=(read(qkv, rotated), read(cos_sin)),  # x, cos/sin [s, d_rope]
                           writes=(read(qkv, rotated),), fn=Fn.ROPE)  # fmt: skip
    r_in, r_out, flops = (sum(k[j] for k in EAGER_ROPE_KERNELS) for j in range(3))
    reads = (read(qkv, rotated * r_in), read(cos_sin, s * ctx.d_rope * 4))
    return elementwise("rope", Group.ATTENTION, rotated, flops, reads,
                       (read(qkv, rotated * r_out),), kernels=2 * len(EAGER_ROPE_KERNELS),
                       fn=Fn.ROPE)  # fmt: skip


def repeat_kv(ctx: Ctx, cache: Tensor, context: Expr) -> tuple[Op, Tensor]:
    """Eager PyTorch's grouped-query attention (fusion none, eager): K and V copied to every
    query head (repeat_interleave), b·n_h·t·2·d elements written, so the products read n_h
    heads of them."""
    d, n_h, n_kv = ctx.d, ctx.n_h, ctx.n_kv
    repeated = ctx.act("attn.kv_repeated", b * n_h, context, 2 * d)
    n = b * n_h * context * 2 * d
    op = elementwise("attn_repeat_kv", Group.ATTENTION, n, 0,
                     (read(cache, b * n_kv * context * 2 * d),), (read(repeated, n),),
                     kernels=2, fn=Fn.COPY)  # fmt: skip
    return op, repeated


def _training_core(
    ctx: Ctx, qkv: Tensor, out: Tensor, context: Expr = t, sinks: Tensor | None = None
) -> list[Op]:
    """The core without a KV cache; with cp > 1, K and V gathered over the context ring."""
    d, n_h, n_kv = ctx.d, ctx.n_h, ctx.n_kv
    k, v = (ctx.act(f"attn.{name}", b, t, n_kv * d) for name in ("k", "v"))
    ops = []
    if ctx.cp > 1:  # the ring brings the other cp − 1 chunks of K and V
        kv = ctx.act("attn.kv", b, t, 2 * n_kv * d)
        ops.append(collective("kv_allgather", CollectiveKind.ALL_GATHER, Axis.CP, ctx.cp, kv))
    core = core_ops(ctx, (qkv, k, v, out), (d, d), n_kv, context, sinks)
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


def core_ops(
    ctx: Ctx,
    operands: tuple[Tensor, Tensor, Tensor, Tensor],
    dims: tuple[Expr, Expr],
    kv_heads: Expr | int,
    context: Expr = t,
    sinks: Tensor | None = None,
) -> list[Op]:
    """softmax(q·kᵀ/√d_k)·v over `context` keys, for the device's n_h query heads.

    operands (q, keys, values, out) — keys and values the KV cache in inference, activations in
    training; dims (d_k, d_v); `kv_heads` distinct key and value operands per sequence (n_kv
    for GQA; 1 when every head reads one shared latent, as absorbed latent attention does).
    `sinks`: a learned logit per head (read by the softmax).
    """
    q, keys, values, out = operands
    d_k, d_v = dims
    n_h = ctx.n_h
    eager = not ctx.flash
    scores = ctx.act("attn.scores", b * n_h, s, context)  # [b·n_h, s, t], on chip with flash
    n_scores = b * n_h * s * context
    softmax_reads = (read(scores, n_scores),) if eager else ()
    probs = scores
    dropout, scale = [], []
    if eager and ctx.fusion is Fusion.NONE:  # eager PyTorch scales the scores apart: / √d
        scale = [elementwise("attn_scale", Group.ATTENTION, n_scores, 1,
                             (read(scores, n_scores),), (read(scores, n_scores),))]  # fmt: skip
    if eager and ctx.dropout:  # dropout on the probabilities (kept, and its mask, for backward)
        probs = ctx.act("attn.probs", b * n_h, s, context)
        dropout = [dropout_op("attn_dropout", Group.ATTENTION, ctx, scores, probs, n_scores)]
    return [
        # [s, d_k] @ [d_k, t] per (sequence, head): q·kᵀ
        matmul(
            "attn_scores",
            Group.ATTENTION,
            q,
            keys,
            scores,
            m=s,
            k=d_k,
            n=context,
            batch=b * n_h,
            b_batch=b * kv_heads,
            write_c=eager,
        ),
        *scale,
        elementwise(
            "attn_softmax",
            Group.ATTENTION,
            n_scores,
            SOFTMAX_FLOPS_PER_ELEMENT,
            reads=softmax_reads + ((read(sinks),) if sinks is not None else ()),
            writes=(read(scores, n_scores),) if eager else (),
            kernels=1 if eager else 0,
            fn=Fn.SOFTMAX,
            saves=(read(scores, n_scores),) if eager else (),  # backward needs the output
        ),
        *dropout,
        # [s, t] @ [t, d_v] per (sequence, head): probabilities · v
        matmul(
            "attn_values",
            Group.ATTENTION,
            probs,
            values,
            out,
            m=s,
            k=context,
            n=d_v,
            batch=b * n_h,
            b_batch=b * kv_heads,
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
