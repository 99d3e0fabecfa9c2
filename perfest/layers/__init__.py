"""Layer builders, one module per layer family; each returns the ops of one layer on one device.

embedding  token (+ position) embedding; final norm and LM head
attention  projections, RoPE, KV-cache write, scores, softmax, ·V, output
mlp        classic or gated MLP
norm       LayerNorm, RMSNorm
residual   tensor-parallel all-reduce and residual add that end a sub-block
"""

from __future__ import annotations

from perfest.layers.attention import attention_ops
from perfest.layers.context import Ctx
from perfest.layers.mlp import mlp_ops
from perfest.layers.norm import norm_op
from perfest.layers.residual import block_output_ops
from perfest.ops import Op
from perfest.symbols import b, s

__all__ = ["Ctx", "decoder_block"]


def decoder_block(ctx: Ctx) -> list[Op]:
    """One decoder block. Sequential: x + attn(norm(x)), then x + mlp(norm(x)).
    Parallel (GPT-J, Falcon-7B): x + attn(norm(x)) + mlp(norm(x)) with one shared norm."""
    rows = (b * s, ctx.h)
    x = ctx.act("x", *rows)  # the residual stream
    attn_in, attn_out = ctx.act("attn.in", *rows), ctx.act("attn.y", *rows)
    mlp_out = ctx.act("mlp.y", *rows)
    if ctx.model.parallel_block:
        return [
            norm_op("attn_norm", ctx, x, attn_in),
            *attention_ops(ctx, attn_in, attn_out),
            *mlp_ops(ctx, attn_in, mlp_out),
            *block_output_ops("block", ctx, x, (attn_out, mlp_out)),
        ]
    mlp_in = ctx.act("mlp.in", *rows)
    return [
        norm_op("attn_norm", ctx, x, attn_in),
        *attention_ops(ctx, attn_in, attn_out),
        *block_output_ops("attn", ctx, x, (attn_out,)),
        norm_op("mlp_norm", ctx, x, mlp_in),
        *mlp_ops(ctx, mlp_in, mlp_out),
        *block_output_ops("mlp", ctx, x, (mlp_out,)),
    ]
