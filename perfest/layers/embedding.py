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

from perfest.layers.context import TOKEN_ID_BYTES, Ctx
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
    # one add per element for positions
    ops = [
        elementwise(
            "embed",
            Group.EMBEDDING,
            n,
            1 if learned else 0,
            tuple(reads),
            (read(out, n),),
            fn=Fn.GATHER,
        )  # fmt: skip
    ]
    if sequence_split:  # sum the partial rows and keep this device's b·s/tp of them
        ops.append(collective("embed_reducescatter", CollectiveKind.REDUCE_SCATTER, Axis.TP,
                              ctx.shard.tp, out))  # fmt: skip
    elif ctx.shard.split:  # each device looked up its vocabulary range: sum the partial rows
        ops.append(
            collective("embed_allreduce", CollectiveKind.ALL_REDUCE, Axis.TP, ctx.shard.tp, x)
        )
    return ops


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
