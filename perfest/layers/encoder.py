"""Encoder blocks (BERT, T5's encoder) and an encoder-decoder's decoder block (T5), with BERT's
embeddings. Under tensor parallelism n_h, n_kv and i are the device's shares, as in a decoder.

    encoder, post-norm (BERT)   x₁ = norm(x + attn(x));   x₂ = norm(x₁ + mlp(x₁))
    encoder, pre-norm (T5)      x₁ = x + attn(norm(x));   x₂ = x₁ + mlp(norm(x₁))
    decoder (T5)                x₁ = x + self_attn(norm(x))      causal, over its KV cache
                                x₂ = x₁ + cross_attn(norm(x₁))   over the encoder output
                                x₃ = x₂ + mlp(norm(x₂))

Self-attention, as in a decoder (perfest.layers.attention) with two differences:
    qkv_proj     [b·s, h] @ [h, (n_h + 2·n_kv)·d]   2·b·s·h·(n_h + 2·n_kv)·d
    attn_scores  [s, d] @ [d, t], b·n_h times       2·b·n_h·s·t·d
    attn_bias    + T5's relative position bias      b·n_h·s·t          (relative positions)
    attn_softmax                                    5·b·n_h·s·t
    attn_values  [s, t] @ [t, d], b·n_h times       2·b·n_h·s·t·d
    out_proj     [b·s, n_h·d] @ [n_h·d, h]          2·b·s·n_h·d·h
- an encoder attends bidirectionally: no causal mask, each of the s queries scores all t = s
  keys, which is what the kernels compute (the same full s×t count a decoder's prefill uses);
- an encoder keeps no KV cache: K and V are activations of its one pass, written by qkv_proj
  and read by the products once per kv head (no kv_cache_write).
A decoder's self-attention writes its keys and values to the KV cache and attends over t.

BERT's embeddings (token, learned position and token-type rows summed, then normed):
    embed        gather b·s rows of each table; 2 adds per element of [b·s, h]
    embed_norm   LayerNorm over h (group embedding: it belongs to BERT's embedding module)
    embed_dropout  training with dropout only: the normed rows dropped out (2 per element)
"""

from __future__ import annotations

from dataclasses import replace

from perfest.layers.attention import attention_ops, core_ops, dropout_op, out_proj_op, qkv_proj_op
from perfest.layers.context import TOKEN_ID_BYTES, Ctx
from perfest.layers.cross_attention import cross_attention_ops
from perfest.layers.embedding import embedding_ops
from perfest.layers.mlp import mlp_ops
from perfest.layers.norm import norm_op
from perfest.layers.relative_bias import bias_add_op
from perfest.layers.residual import block_output_ops, region_entry, save_local
from perfest.ops import (
    Axis,
    CollectiveKind,
    Fn,
    Group,
    Op,
    Tensor,
    collective,
    elementwise,
    read,
)
from perfest.symbols import b, mul, s, t


def self_attention_ops(ctx: Ctx, x: Tensor, y: Tensor, cache: bool, bias: Tensor | None) -> list:
    """x [b·s, h] → y [b·s, h]. `cache`: keys and values go to the KV cache and the queries
    attend over its t (a decoder); without, over this pass's own t = s (an encoder).
    `bias`: T5's relative position bias [n_h, s, t], added to the scores."""
    d, n_h, n_kv = ctx.d, ctx.n_h, ctx.n_kv
    width = (n_h + 2 * n_kv) * d
    qkv = ctx.act("qkv", b * s, width)
    ops = [qkv_proj_op(ctx, x, qkv)]
    if cache:
        keys = values = ctx.kv_cache("attn.kv_cache", b, t, 2 * n_kv * d)
        kv_new = b * s * 2 * n_kv * d  # this pass's k and v, appended to the cache
        ops.append(elementwise("kv_cache_write", Group.ATTENTION, kv_new, 0,
                               reads=(read(qkv, kv_new),), writes=(read(keys, kv_new),),
                               fn=Fn.COPY))  # fmt: skip
    else:  # slices of qkv, read by the products
        keys, values = (ctx.act(f"attn.{name}", b, t, n_kv * d) for name in ("k", "v"))
    out = ctx.act("attn.out", b * s, n_h * d)
    core = core_ops(ctx, (qkv, keys, values, out), (d, d), n_kv)
    if bias is not None:  # after the scores (core's first op), before the softmax
        core.insert(1, bias_add_op(ctx, bias, core[0].gemm.c))
    ops += core
    ops.append(out_proj_op(ctx, out, y))
    return ops


def encoder_block(ctx: Ctx, bias: Tensor | None = None) -> list[Op]:
    """One encoder block, post-norm (BERT) or pre-norm (T5), on the residual stream x.

    Training (ctx.training, post-norm): each sub-block is a tensor-parallel region entered
    explicitly (perfest.layers.residual.region_entry: Megatron's f, or the all-gather of the
    local rows with sequence parallelism), and the attention is a decoder's training attention
    (perfest.layers.attention: no cache, K and V activations, flash's saves, the context ring),
    whose full s×t scores are exactly an encoder's bidirectional work."""
    rows = (ctx.rows, ctx.h)
    x = ctx.act("x", *rows)
    attn_y, mlp_y = ctx.act("attn.y", b * s, ctx.h), ctx.act("mlp.y", b * s, ctx.h)
    if ctx.model.norm_position == "post":
        summed, x_mid, summed2 = (ctx.act(f"x.{n}", *rows) for n in ("attn_sum", "mid", "mlp_sum"))
        attn_entry, attn_x = region_entry("attn", ctx, x)
        mlp_entry, mlp_x = region_entry("mlp", ctx, x_mid)
        if ctx.training and bias is None:
            attention = attention_ops(ctx, attn_x, attn_y)
        else:
            attention = self_attention_ops(ctx, attn_x, attn_y, cache=False, bias=bias)
        ops = [
            *attn_entry,
            *attention,
            *block_output_ops("attn", ctx, x, (attn_y,), summed),
            norm_op("attn_norm", ctx, summed, x_mid),
            *mlp_entry,
            *mlp_ops(ctx, mlp_x, mlp_y),
            *block_output_ops("mlp", ctx, x_mid, (mlp_y,), summed2),
            norm_op("mlp_norm", ctx, summed2, x),
        ]
        return save_local(save_local(ops, attn_x, x), mlp_x, x_mid)
    attn_in, x_mid, mlp_in = (ctx.act(n, *rows) for n in ("attn.in", "x.mid", "mlp.in"))
    return [
        norm_op("attn_norm", ctx, x, attn_in),
        *self_attention_ops(ctx, attn_in, attn_y, cache=False, bias=bias),
        *block_output_ops("attn", ctx, x, (attn_y,), x_mid),
        norm_op("mlp_norm", ctx, x_mid, mlp_in),
        *mlp_ops(ctx, mlp_in, mlp_y),
        *block_output_ops("mlp", ctx, x_mid, (mlp_y,), x),
    ]


def cross_decoder_block(ctx: Ctx, bias: Tensor | None, project: bool) -> list[Op]:
    """An encoder-decoder's decoder block (pre-norm): causal self-attention over the KV cache,
    cross-attention over the encoder output (`project`: this pass fills the cross cache), MLP."""
    rows = (ctx.rows, ctx.h)
    x = ctx.act("x", *rows)
    names = ("attn.in", "x.mid", "cross.in", "x.mid2", "mlp.in")
    attn_in, x_mid, cross_in, x_mid2, mlp_in = (ctx.act(n, *rows) for n in names)
    ys = (ctx.act(f"{n}.y", b * s, ctx.h) for n in ("attn", "cross", "mlp"))
    attn_y, cross_y, mlp_y = ys
    return [
        norm_op("attn_norm", ctx, x, attn_in),
        *self_attention_ops(ctx, attn_in, attn_y, cache=True, bias=bias),
        *block_output_ops("attn", ctx, x, (attn_y,), x_mid),
        norm_op("cross_norm", ctx, x_mid, cross_in),
        *cross_attention_ops(ctx, cross_in, cross_y, project),
        *block_output_ops("cross", ctx, x_mid, (cross_y,), x_mid2),
        norm_op("mlp_norm", ctx, x_mid2, mlp_in),
        *mlp_ops(ctx, mlp_in, mlp_y),
        *block_output_ops("mlp", ctx, x_mid2, (mlp_y,), x),
    ]


def encoder_embedding_ops(ctx: Ctx, tokens: Tensor, x: Tensor) -> list[Op]:
    """Token (+ learned position) (+ token-type) rows summed (+ normed) into x. Without token
    types or an embedding norm (T5) this is a decoder's embedding (perfest.layers.embedding)."""
    m = ctx.model
    if not (m.type_vocab_size or m.embedding_norm):
        return embedding_ops(ctx, tokens, x)
    n = b * s * ctx.h  # elements of the [b·s, h] output
    reads = [read(tokens, n), read(ctx.table("embed.token_ids", b, s, itemsize=TOKEN_ID_BYTES))]
    adds = 0
    if m.position == "learned":
        reads.append(read(ctx.param("embed.positions", m.max_position_embeddings, ctx.h), n))
        adds += 1
    if m.type_vocab_size:
        reads.append(read(ctx.param("embed.token_types", m.type_vocab_size, ctx.h), n))
        reads.append(read(ctx.table("embed.type_ids", b, s, itemsize=TOKEN_ID_BYTES)))
        adds += 1
    summed = ctx.act("embed.sum", ctx.rows, ctx.h) if m.embedding_norm else x
    sequence_split = ctx.sequence_parallel and ctx.shard.split  # training only
    out = ctx.act("embed.out", b * s, ctx.h) if sequence_split else summed
    ops = [elementwise("embed", Group.EMBEDDING, n, adds, tuple(reads), (read(out, n),),
                       fn=Fn.GATHER)]  # fmt: skip
    if sequence_split:  # sum the partial rows and keep this device's b·s/tp of them
        ops.append(collective("embed_reducescatter", CollectiveKind.REDUCE_SCATTER, Axis.TP,
                              ctx.shard.tp, out))  # fmt: skip
    elif ctx.shard.split:  # each device looked up its vocabulary range: sum the partial rows
        ops.append(collective("embed_allreduce", CollectiveKind.ALL_REDUCE, Axis.TP,
                              ctx.shard.tp, summed))  # fmt: skip
    if m.embedding_norm:
        normed = ctx.act("embed.normed", ctx.rows, ctx.h) if ctx.dropout else x
        ops.append(replace(norm_op("embed_norm", ctx, summed, normed), group=Group.EMBEDDING))
        if ctx.dropout:  # training with dropout: BERT drops out the normed embeddings too
            ops.append(dropout_op("embed_dropout", Group.EMBEDDING, ctx, normed, x,
                                  mul(ctx.rows, ctx.h)))  # fmt: skip
    return ops
