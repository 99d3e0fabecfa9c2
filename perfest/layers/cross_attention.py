"""Cross-attention of an encoder-decoder's decoder (T5): queries from the decoder, keys and
values from the encoder's output, projected once and cached.

    cross_q_proj    [b·s, h] @ [h, n_h·d]                    2·b·s·h·n_h·d
    cross_kv_proj   [b·s_enc, h] @ [h, 2·n_kv·d]             2·b·s_enc·h·2·n_kv·d
                    the decoder's first pass only (prefill): it writes the cross KV cache
                    [b, s_enc, 2·n_kv·d], which every later step reads instead
    cross_scores    [s, d] @ [d, s_enc], b·n_h times         2·b·n_h·s·s_enc·d
    cross_softmax                                            5·b·n_h·s·s_enc
    cross_values    [s, s_enc] @ [s_enc, d], b·n_h times     2·b·n_h·s·s_enc·d
    cross_out_proj  [b·s, n_h·d] @ [n_h·d, h]                2·b·s·n_h·d·h

s_enc is the encoder's input length (a free symbol of the pass, perfest.symbols). No mask and
no position bias: every decoder token sees the whole input (T5's cross-attention has no
relative bias; Hugging Face adds a zero tensor in its place, not counted). The cross cache holds
2·L_dec·s_enc·n_kv·d values per sequence for the whole generation. With `flash` the scores stay
on chip, as in self-attention (perfest.layers.attention.core_ops, which these ops reuse).
"""

from __future__ import annotations

from dataclasses import replace

from perfest.layers.attention import core_ops, out_proj_op
from perfest.layers.context import Ctx
from perfest.ops import Group, Op, Tensor, matmul
from perfest.symbols import b, s, s_enc


def cross_attention_ops(ctx: Ctx, x: Tensor, y: Tensor, project: bool) -> list[Op]:
    """x [b·s, h] (normed) → y [b·s, h]; `project`: this pass projects the encoder output's
    keys and values into the cross cache (the decoder's first pass)."""
    m = ctx.model
    h, d, n_h, n_kv = ctx.h, ctx.d, ctx.n_h, ctx.n_kv

    def bias(name: str, n) -> Tensor | None:
        return ctx.bias(f"cross.{name}", n) if m.qkv_bias else None

    q = ctx.act("cross.q", b * s, n_h * d)
    cache = ctx.kv_cache("cross.kv_cache", b, s_enc, 2 * n_kv * d)  # K, V of s_enc tokens
    ops = [
        # [b·s, h] @ [h, n_h·d]
        matmul(
            "cross_q_proj",
            Group.ATTENTION,
            x,
            ctx.weight("cross.w_q", h, n_h * d),
            q,
            m=b * s,
            k=h,
            n=n_h * d,
            bias=bias("b_q", n_h * d),
        ),  # fmt: skip
    ]
    if project:
        encoded = ctx.act("encoder.out", b * s_enc, h)
        ops.append(
            # [b·s_enc, h] @ [h, 2·n_kv·d], written straight into the cross cache
            matmul(
                "cross_kv_proj",
                Group.ATTENTION,
                encoded,
                ctx.weight("cross.w_kv", h, 2 * n_kv * d),
                cache,
                m=b * s_enc,
                k=h,
                n=2 * n_kv * d,
                bias=bias("b_kv", 2 * n_kv * d),
            )  # fmt: skip
        )
    out = ctx.act("cross.out", b * s, n_h * d)
    core = core_ops(replace(ctx, scope=ctx.scope + "cross."), (q, cache, cache, out), (d, d),
                    n_kv, context=s_enc)  # fmt: skip
    ops += [replace(op, name=op.name.replace("attn_", "cross_", 1)) for op in core]
    ops.append(out_proj_op(ctx, out, y, prefix="cross_"))
    return ops
