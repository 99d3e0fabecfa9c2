"""Layer builders, one module per layer family; each returns the ops of one layer on one device.

embedding  token (+ position) embedding; final norm and LM head
attention  projections, RoPE, KV-cache write, scores, softmax, ·V, output (sliding windows)
mla        multi-head latent attention (DeepSeek-V2/V3), naive and absorbed forms
mlp        classic or gated MLP
moe        router, routed experts, shared experts, expert-parallel dispatch and combine
norm       LayerNorm, RMSNorm
residual   tensor-parallel all-reduce and residual add that end a sub-block
"""

from __future__ import annotations

from perfest.layers.attention import attention_ops
from perfest.layers.context import Ctx
from perfest.layers.mla import mla_ops
from perfest.layers.mlp import mlp_ops
from perfest.layers.moe import moe_ops
from perfest.layers.norm import norm_op
from perfest.layers.residual import block_output_ops
from perfest.ops import Op
from perfest.symbols import b, s

__all__ = ["Ctx", "decoder_block"]


def decoder_block(ctx: Ctx, moe: bool = False, window: bool = False) -> list[Op]:
    """One decoder block. Sequential: x + attn(norm(x)), then x + mlp(norm(x)).
    Parallel (GPT-J, Falcon-7B): x + attn(norm(x)) + mlp(norm(x)) with one shared norm.
    `moe`: the MLP is a mixture of experts (its branches: routed, and shared if any);
    `window`: attention within the model's sliding window."""
    rows = (b * s, ctx.h)
    x = ctx.act("x", *rows)  # the residual stream
    attn_in, attn_out = ctx.act("attn.in", *rows), ctx.act("attn.y", *rows)
    mlp_out = ctx.act("mlp.y", *rows)
    if ctx.model.mla:
        attention = mla_ops(ctx, attn_in, attn_out)
    else:
        attention = attention_ops(ctx, attn_in, attn_out, window)
    if ctx.model.parallel_block:
        return [
            norm_op("attn_norm", ctx, x, attn_in),
            *attention,
            *mlp_ops(ctx, attn_in, mlp_out),
            *block_output_ops("block", ctx, x, (attn_out, mlp_out)),
        ]
    mlp_in = ctx.act("mlp.in", *rows)
    if moe:
        mlp, branches = moe_ops(ctx, mlp_in, mlp_out)
    else:
        mlp, branches = mlp_ops(ctx, mlp_in, mlp_out), (mlp_out,)
    return [
        norm_op("attn_norm", ctx, x, attn_in),
        *attention,
        *block_output_ops("attn", ctx, x, (attn_out,)),
        norm_op("mlp_norm", ctx, x, mlp_in),
        *mlp,
        *block_output_ops("mlp", ctx, x, branches),
    ]
