"""Token (and learned position) embeddings in, final norm and LM head out.

    embed    gather b·s rows of [V, h] (+ add b·s rows of [max_pos, h] for learned positions)
    lm_head  [b·s_logits, h] @ [h, V]    2·b·s_logits·h·V

Under tensor parallelism both tables are split over the vocabulary (Megatron's
VocabParallelEmbedding): the embedding output is all-reduced and the logits all-gathered.
Learned position embeddings are replicated.
"""

from __future__ import annotations

from perfest.layers.context import TOKEN_ID_BYTES, Ctx
from perfest.layers.norm import norm_op
from perfest.ops import (
    Axis,
    CollectiveKind,
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
    # one add per element for positions
    ops = [
        elementwise("embed", Group.EMBEDDING, n, 1 if learned else 0, tuple(reads), (read(x, n),))
    ]
    if ctx.shard.split:  # each device looked up its vocabulary range: sum the partial rows
        ops.append(
            collective("embed_allreduce", CollectiveKind.ALL_REDUCE, Axis.TP, ctx.shard.tp, x)
        )
    return ops


def head_ops(ctx: Ctx, tokens: Tensor, x: Tensor) -> list[Op]:
    """Final norm over all b·s positions, then the LM head over b·s_logits of them."""
    m = ctx.model
    rows = b * s_logits
    normed = ctx.act("final_norm.out", b * s, ctx.h)
    weight = tokens if m.tied_embeddings else ctx.param("lm_head.weight", ctx.h, ctx.V)
    logits = ctx.act("logits", rows, ctx.V)
    ops = [
        norm_op("final_norm", ctx, x, normed),
        # [b·s_logits, h] @ [h, V]
        matmul(
            "lm_head",
            Group.LM_HEAD,
            normed,
            weight,
            logits,
            m=rows,
            k=ctx.h,
            n=ctx.V,
            bias=ctx.bias("lm_head.bias", ctx.V) if m.lm_head_bias else None,
        ),
    ]
    if ctx.shard.split:  # every device ends with all V logits
        gathered = ctx.act("logits.gathered", rows, Sym("V_full", m.V))
        ops.append(
            collective(
                "logits_allgather", CollectiveKind.ALL_GATHER, Axis.TP, ctx.shard.tp, gathered
            )
        )
    return ops
