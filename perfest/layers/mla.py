"""Multi-head latent attention (DeepSeek-V2/V3): low-rank queries, keys and values from a latent.

Symbols: n_h query heads (the device's share under tp), d_n = qk_nope_head_dim and d_r =
qk_rope_head_dim (a query's and key's dims, d_n + d_r), d_v = v_head_dim, c = kv_lora_rank,
c_q = q_lora_rank (DeepSeek-V3; DeepSeek-V2-Lite projects queries directly).

    q_a_proj   [b·s, h] @ [h, c_q]                 2·b·s·h·c_q      (replicated under tp)
    q_a_norm   RMSNorm over c_q
    q_b_proj   [b·s, c_q] @ [c_q, n_h·(d_n + d_r)]  (or q_proj [b·s, h] @ [h, n_h·(d_n + d_r)])
    kv_a_proj  [b·s, h] @ [h, c + d_r]             the latent and one shared RoPE key (replicated)
    kv_a_norm  RMSNorm over c
    rope       q's d_r dims of every head, the shared key's d_r
    kv_cache_write   c + d_r per token per layer: the cache holds the latent, not K and V

The cache holds c + d_r values per token per layer (576 for DeepSeek-V3, against 2·128·192 =
49,152 for the same heads in plain attention), and every device of a tp group keeps all of
it: the latent is not split by head — which is why DeepSeek serves attention data-parallel.

Two forms compute the same attention (the reference module checks that their outputs agree):

naive (decompress K and V, as in training and the Hugging Face code; the default for prefill)
    kv_b_proj    [b·t, c] @ [c, n_h·(d_n + d_v)]      decompress the context's K_nope and V
    attn_scores  [s, d_n + d_r] @ [d_n + d_r, t], b·n_h times
    attn_values  [s, t] @ [t, d_v], b·n_h times

absorbed (fold the up-projections into the query and the output, as serving engines run decode;
the default for decode)
    q_absorb     [b·s, d_n] @ [d_n, c] per head       q_nope·W_UK: the query in latent space
    attn_scores  [s, c + d_r] @ [c + d_r, t], b·n_h times, every head reading the one latent
    attn_values  [s, t] @ [t, c], b·n_h times
    v_absorb     [b·s, c] @ [c, d_v] per head         ·W_UV: back to the heads' values
then, in both forms,
    out_proj     [b·s, n_h·d_v] @ [n_h·d_v, h]

The naive form re-decompresses all t cached tokens at every step (2·b·t·c·n_h·(d_n + d_v)
FLOPs), cheap next to prefill's products but ruinous for decode; the absorbed form reads only
the latent and pays in attention FLOPs ((c + d_r) + c per score instead of (d_n + d_r) + d_v),
cheap while decode is memory-bound. W_UK and W_UV are the two halves of kv_b's weight, so the
parameters are the same in both forms. The form is chosen per phase (perfest.layers.context:
`--mla auto|naive|absorbed`; auto = naive for prefill, absorbed for decode): the plan builds a
graph for each phase when they differ.

Training (ctx.training) runs the naive form without a cache, as Megatron-Core's and the
Hugging Face training code do: kv_b_proj decompresses this pass's own latents (b·s of them),
K = [K_nope, the shared RoPE key broadcast to every head] and V are activations of the pass
(with context parallelism gathered over the cp ring, as plain attention's are), and the norms
write new tensors so that what backward keeps is counted once per value (the norm's input
and its output are both needed). Flash attention keeps q, k, v, its output and the
log-sum-exp (perfest.layers.attention). The weight gradients of the latent projections,
which are replicated over tp and fed by partial gradients from each rank's heads, need an
all-reduce over tp per step (h·(c + d_r) + h·c_q values): not counted.
"""

from __future__ import annotations

from dataclasses import replace

from perfest.layers.attention import ROPE_FLOPS_PER_ELEMENT, core_ops
from perfest.layers.context import Ctx
from perfest.layers.norm import norm_op
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
from perfest.symbols import Sym, b, s, t


def mla_ops(ctx: Ctx, x: Tensor, y: Tensor) -> list[Op]:
    """x [b·s, h] (normed) → y [b·s, h]; this pass's latents appended to the cache."""
    m = ctx.model
    h, n_h = ctx.h, ctx.n_h
    d_n, d_r = Sym("d_n", m.qk_nope_head_dim), Sym("d_r", m.qk_rope_head_dim)
    d_v, c = Sym("d_v", m.v_head_dim), Sym("c", m.kv_lora_rank)
    rows = b * s
    q_width = n_h * (d_n + d_r)
    q = ctx.act("mla.q", rows, q_width)
    ops = _query(ctx, x, q, q_width)
    latent = ctx.act("mla.kv_a", rows, c + d_r)  # the latent and the shared RoPE key
    ops.append(
        matmul(
            "kv_a_proj",
            Group.ATTENTION,
            x,
            ctx.weight("attn.w_kv_a", h, c + d_r),
            latent,
            m=rows,
            k=h,
            n=c + d_r,
        )  # fmt: skip
    )
    normed = ctx.act("mla.kv_a.normed", rows, c) if ctx.training else latent
    ops.append(norm_op("kv_a_norm", ctx, latent, normed, rows=rows, width=c))
    rotated = rows * (n_h + 1) * d_r  # every head's query and the one shared key
    ops.append(
        elementwise(
            "rope",
            Group.ATTENTION,
            rotated,
            ROPE_FLOPS_PER_ELEMENT,
            reads=(
                read(q, rows * n_h * d_r),
                read(latent, rows * d_r),
                read(ctx.table("rope.cos_sin", s, d_r)),
            ),  # fmt: skip
            writes=(read(q, rows * n_h * d_r), read(latent, rows * d_r)),
            fn=Fn.ROPE,
        )
    )
    heads_out = ctx.act("attn.out", rows, n_h * d_v)
    if ctx.training:
        ops += _training(ctx, q, normed, heads_out, (d_n, d_r, d_v, c))
        ops.append(_out_proj(ctx, heads_out, y))
        return ops
    cache = ctx.kv_cache("attn.latent_cache", b, t, c + d_r)
    new = rows * (c + d_r)
    ops.append(
        elementwise(
            "kv_cache_write",
            Group.ATTENTION,
            new,
            0,
            reads=(read(latent, new),),
            writes=(read(cache, new),),
        )  # fmt: skip
    )
    if ctx.mla_form == "naive":
        ops += _naive(ctx, q, cache, heads_out, (d_n, d_r, d_v, c))
    else:
        ops += _absorbed(ctx, q, cache, heads_out, (d_n, d_r, d_v, c))
    ops.append(_out_proj(ctx, heads_out, y))
    return ops


def _out_proj(ctx: Ctx, heads_out: Tensor, y: Tensor) -> Op:
    """[b·s, n_h·d_v] @ [n_h·d_v, h]"""
    width = ctx.n_h * Sym("d_v", ctx.model.v_head_dim)
    return matmul("out_proj", Group.ATTENTION, heads_out, ctx.weight("attn.w_out", width, ctx.h),
                  y, m=b * s, k=width, n=ctx.h)  # fmt: skip


def _query(ctx: Ctx, x: Tensor, q: Tensor, q_width) -> list[Op]:
    """The queries: through the c_q bottleneck (and its norm), or one projection."""
    m, h, rows = ctx.model, ctx.h, b * s
    if m.q_lora_rank is None:
        return [matmul("q_proj", Group.ATTENTION, x, ctx.weight("attn.w_q", h, q_width), q,
                       m=rows, k=h, n=q_width)]  # fmt: skip
    c_q = Sym("c_q", m.q_lora_rank)
    q_a = ctx.act("mla.q_a", rows, c_q)
    normed = ctx.act("mla.q_a.normed", rows, c_q) if ctx.training else q_a
    return [
        matmul(
            "q_a_proj",
            Group.ATTENTION,
            x,
            ctx.weight("attn.w_q_a", h, c_q),
            q_a,
            m=rows,
            k=h,
            n=c_q,
        ),  # fmt: skip
        norm_op("q_a_norm", ctx, q_a, normed, rows=rows, width=c_q),
        matmul(
            "q_b_proj",
            Group.ATTENTION,
            normed,
            ctx.weight("attn.w_q_b", c_q, q_width),
            q,
            m=rows,
            k=c_q,
            n=q_width,
        ),  # fmt: skip
    ]


def _naive(ctx: Ctx, q: Tensor, cache: Tensor, out: Tensor, dims: tuple) -> list[Op]:
    """Decompress the context's keys and values from the cache, then plain attention."""
    d_n, d_r, d_v, c = dims
    n_h = ctx.n_h
    kv = ctx.act("mla.kv", b * t, n_h * (d_n + d_v))  # K_nope and V of every cached token
    return [
        # [b·t, c] @ [c, n_h·(d_n + d_v)]: reads the latent part of the cache
        matmul(
            "kv_b_proj",
            Group.ATTENTION,
            cache,
            ctx.weight("attn.w_kv_b", c, n_h * (d_n + d_v)),
            kv,
            m=b * t,
            k=c,
            n=n_h * (d_n + d_v),
        ),  # fmt: skip
        *core_ops(ctx, (q, kv, kv, out), (d_n + d_r, d_v), n_h),
    ]


def _absorbed(ctx: Ctx, q: Tensor, cache: Tensor, out: Tensor, dims: tuple) -> list[Op]:
    """W_UK folded into the query, W_UV into the output: attention over the latent itself."""
    d_n, d_r, d_v, c = dims
    n_h = ctx.n_h
    rows = b * s
    q_latent = ctx.act("mla.q_latent", rows, n_h * (c + d_r))
    o_latent = ctx.act("mla.o_latent", rows, n_h * c)
    return [
        # [b·s, d_n] @ [d_n, c] per head: q_nope·W_UK
        matmul(
            "q_absorb",
            Group.ATTENTION,
            q,
            ctx.weight("attn.w_uk", n_h, d_n, c),
            q_latent,
            m=rows,
            k=d_n,
            n=c,
            batch=n_h,
        ),  # fmt: skip
        # every head attends over the one latent (c + d_r keys, c values) of each sequence
        *core_ops(ctx, (q_latent, cache, cache, o_latent), (c + d_r, c), 1),
        # [b·s, c] @ [c, d_v] per head: ·W_UV
        matmul(
            "v_absorb",
            Group.ATTENTION,
            o_latent,
            ctx.weight("attn.w_uv", n_h, c, d_v),
            out,
            m=rows,
            k=c,
            n=d_v,
            batch=n_h,
        ),  # fmt: skip
    ]


def _training(ctx: Ctx, q: Tensor, latent: Tensor, out: Tensor, dims: tuple) -> list[Op]:
    """The naive form on this pass's latents, no cache (module docstring)."""
    d_n, d_r, d_v, c = dims
    n_h, rows = ctx.n_h, b * s
    kv = ctx.act("mla.kv", rows, n_h * (d_n + d_v))  # this pass's K_nope and V
    k = ctx.act("mla.k", b, t, n_h * (d_n + d_r))  # every head's key: K_nope, the RoPE key
    v = ctx.act("mla.v", b, t, n_h * d_v)
    ops = [
        # [b·s, c] @ [c, n_h·(d_n + d_v)]
        matmul(
            "kv_b_proj",
            Group.ATTENTION,
            latent,
            ctx.weight("attn.w_kv_b", c, n_h * (d_n + d_v)),
            kv,
            m=rows,
            k=c,
            n=n_h * (d_n + d_v),
        ),  # fmt: skip
    ]
    if ctx.cp > 1:  # the ring brings the other cp − 1 chunks of K and V
        ring = ctx.act("mla.kv_ring", b, t, n_h * (d_n + d_r + d_v))
        ops.append(collective("kv_allgather", CollectiveKind.ALL_GATHER, Axis.CP, ctx.cp, ring))
    core = core_ops(ctx, (q, k, v, out), (d_n + d_r, d_v), n_h)
    if not ctx.flash:
        return ops + core
    # flash keeps this device's q, k, v, the output and the log-sum-exp of each score row
    scores, softmax, values = core
    lse = ctx.stat("attn.lse", b * n_h, s)
    local = (Access(q, rows * n_h * (d_n + d_r)), Access(k, rows * n_h * (d_n + d_r)),
             Access(v, rows * n_h * d_v))  # fmt: skip
    return [*ops, replace(scores, saves=local), softmax,
            replace(values, saves=(read(out), read(lse)))]  # fmt: skip
