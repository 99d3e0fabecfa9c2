"""Token (and learned position) embeddings in, final norm and LM head out.

    embed    gather b·s rows of [V, h] (+ add b·s rows of [max_pos, h] for learned positions)
    lm_head  [b·s_logits, h] @ [h, V]    2·b·s_logits·h·V

Under tensor parallelism both tables are split over the vocabulary (Megatron's
VocabParallelEmbedding): the embedding output is all-reduced and the logits all-gathered.
Learned position embeddings are replicated.

Training (ctx.training): the embedding output is reduce-scattered over the sequence with
sequence parallelism; the LM head reads the final norm's output as a tensor-parallel region
(perfest.layers.residual) and its vocabulary-split logits go to the loss as they are (no
all-gather: the cross-entropy is vocabulary-parallel, perfest.training.step).
"""

from __future__ import annotations

from dataclasses import replace

from perfest.layers.context import TOKEN_ID_BYTES, Ctx, Fusion
from perfest.layers.norm import norm_op
from perfest.layers.residual import region_entry
from perfest.ops import (
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
from perfest.symbols import Sym, b, s, s_logits


def token_table(ctx: Ctx) -> Tensor:
    """The [V, h] token embedding (V split under tensor parallelism); the LM head's weight too
    when the model ties them."""
    return ctx.param("embed.tokens", ctx.V, ctx.h)


def embedding_ops(ctx: Ctx, tokens: Tensor, x: Tensor) -> list[Op]:
    n = b * s * ctx.h  # elements of the [b·s, h] output
    ids = ctx.table("embed.token_ids", b, s, itemsize=TOKEN_ID_BYTES)
    reads = [read(tokens, n), read(ids)]  # b·s rows of the table, the token ids
    learned = ctx.model.position == "learned"
    if learned:
        positions = ctx.param("embed.positions", ctx.model.max_position_embeddings, ctx.h)
        reads.insert(1, read(positions, n))
    sequence_split = ctx.sequence_parallel and ctx.shard.split
    out = ctx.act("embed.out", b * s, ctx.h) if sequence_split else x
    writes, kernels = [read(out, n)], 1
    if ctx.fusion is Fusion.NONE and learned:  # eager: arange, a gather per table, the add
        kernels = 4
        reads.append(read(out, 2 * n))
        writes.append(read(out, 2 * n))
    # one add per element for positions
    ops = [elementwise("embed", Group.EMBEDDING, n, 1 if learned else 0, tuple(reads),
                       tuple(writes), fn=Fn.GATHER, kernels=kernels)]  # fmt: skip
    if ctx.fusion is Fusion.NONE and ctx.model.rope_dim:
        ops.append(rope_tables(ctx))
    if sequence_split:  # sum the partial rows and keep this device's b·s/tp of them
        ops.append(collective("embed_reducescatter", CollectiveKind.REDUCE_SCATTER, Axis.TP,
                              ctx.shard.tp, out))  # fmt: skip
    elif ctx.shard.split:  # each device looked up its vocabulary range: sum the partial rows
        ops.append(
            collective("embed_allreduce", CollectiveKind.ALL_REDUCE, Axis.TP, ctx.shard.tp, x)
        )
    return ops


#: Eager PyTorch's RoPE tables per pass (perfest.validate.reference.Rope.tables): positions to
#: float, outer product with the inverse frequencies, concatenation, cos, sin — FLOPs per
#: element of the [s, d_rope] angles: 1 for the outer product, ~8 each for cos and sin
#: (reasoned, as for GELU); plus a conversion of each table when activations are not fp32.
ROPE_TABLE_FLOPS_PER_ELEMENT = 17


def rope_tables(ctx: Ctx) -> Op:
    """cos and sin of the s·d_rope rotation angles, once per pass (eager PyTorch, fusion none)."""
    angles = s * ctx.d_rope
    table = ctx.table("rope.cos_sin", s, ctx.d_rope)
    kernels = 5 if ctx.dt.act == "fp32" else 7
    return elementwise("rope_tables", Group.EMBEDDING, angles, ROPE_TABLE_FLOPS_PER_ELEMENT,
                       (read(table, 3 * angles),), (read(table, 4 * angles),),
                       kernels=kernels)  # fmt: skip


def head_ops(ctx: Ctx, tokens: Tensor, x: Tensor) -> list[Op]:
    """Final norm over all b·s positions, then the LM head over b·s_logits of them."""
    m = ctx.model
    rows = b * s_logits
    normed = ctx.act("final_norm.out", ctx.rows, ctx.h)
    weight = tokens if m.tied_embeddings else ctx.param("lm_head.weight", ctx.h, ctx.V)
    logits = ctx.act("logits", rows, ctx.V)
    entry, head_in = region_entry("head", ctx, normed)
    ops = [
        norm_op("final_norm", ctx, x, normed),
        *entry,
        # [b·s_logits, h] @ [h, V]
        matmul(
            "lm_head",
            Group.LM_HEAD,
            head_in,
            weight,
            logits,
            m=rows,
            k=ctx.h,
            n=ctx.V,
            bias=ctx.bias("lm_head.bias", ctx.V) if m.lm_head_bias else None,
        ),
    ]
    if head_in is not normed:  # sequence parallel: keep the local rows for backward
        ops[-1] = replace(ops[-1], saves=(read(normed),))
    if ctx.shard.split and not ctx.training:  # every device ends with all V logits
        gathered = ctx.act("logits.gathered", rows, Sym("V_full", m.V))
        ops.append(
            collective(
                "logits_allgather", CollectiveKind.ALL_GATHER, Axis.TP, ctx.shard.tp, gathered
            )
        )
    return ops
