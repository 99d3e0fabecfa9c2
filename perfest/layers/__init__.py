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
from perfest.layers.moe_training import moe_training_ops
from perfest.layers.norm import norm_op
from perfest.layers.residual import block_output_ops, region_entry
from perfest.layers.residual import save_local as _save_local
from perfest.ops import Op
from perfest.symbols import b, s

__all__ = ["Ctx", "decoder_block"]


def decoder_block(ctx: Ctx, moe: bool = False, window: bool = False) -> list[Op]:
    """One decoder block. Sequential: x + attn(norm(x)), then x + mlp(norm(x)).
    Parallel (GPT-J, Falcon-7B): x + attn(norm(x)) + mlp(norm(x)) with one shared norm.
    `moe`: the MLP is a mixture of experts (its branches: routed, and shared if any);
    `window`: attention within the model's sliding window.

    The residual stream between the two sub-blocks is its own tensor (x.mid), so that what
    each op saves for backward names the value it really keeps."""
    rows = (ctx.rows, ctx.h)  # b·s (b·s/tp with sequence parallelism)
    x = ctx.act("x", *rows)  # the residual stream
    attn_in = ctx.act("attn.in", *rows)
    attn_out, mlp_out = ctx.act("attn.y", b * s, ctx.h), ctx.act("mlp.y", b * s, ctx.h)
    attn_entry, attn_x = region_entry("attn", ctx, attn_in)
    if ctx.model.mla:
        attention = mla_ops(ctx, attn_x, attn_out)
    else:
        attention = attention_ops(ctx, attn_x, attn_out, window)
    if ctx.model.parallel_block:
        ops = [
            norm_op("attn_norm", ctx, x, attn_in),
            *attn_entry,
            *attention,
            *mlp_ops(ctx, attn_x, mlp_out),
            *block_output_ops("block", ctx, x, (attn_out, mlp_out)),
        ]
        return _save_local(ops, attn_x, attn_in)
    x_mid, mlp_in = ctx.act("x.mid", *rows), ctx.act("mlp.in", *rows)
    mlp_entry, mlp_x = region_entry("mlp", ctx, mlp_in)
    if moe and ctx.training:  # tokens move by all-to-all (perfest.layers.moe_training)
        mlp, branches = moe_training_ops(ctx, mlp_in, mlp_x, mlp_out)
    elif moe:
        mlp, branches = moe_ops(ctx, mlp_x, mlp_out)
    else:
        mlp, branches = mlp_ops(ctx, mlp_x, mlp_out), (mlp_out,)
    mlp_exit = block_output_ops("mlp", ctx, x_mid, branches, x)
    if moe and ctx.training and not ctx.model.i_shared:  # the routed output is whole on
        mlp_entry = []  # this device's rows: no tensor-parallel region to enter or end
        mlp_exit = [op for op in mlp_exit if op.collective is None]
    ops = [
        norm_op("attn_norm", ctx, x, attn_in),
        *attn_entry,
        *attention,
        *block_output_ops("attn", ctx, x, (attn_out,), x_mid),
        norm_op("mlp_norm", ctx, x_mid, mlp_in),
        *mlp_entry,
        *mlp,
        *mlp_exit,
    ]
    return _save_local(_save_local(ops, attn_x, attn_in), mlp_x, mlp_in)
