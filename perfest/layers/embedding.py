"""Token (and learned position) embeddings in, final norm and LM head out.

    embed    gather b·s rows of [V, h] (+ add b·s rows of [max_pos, h] for learned positions)
    lm_head  [b·s_logits, h] @ [h, V]    2·b·s_logits·h·V

Under tensor parallelism both tables are split over the vocabulary (Megatron's
VocabParallelEmbedding): the embedding output is all-reduced and the logits all-gathered.
"""

from __future__ import annotations

from perfest.cost import Op, collective, matmul, vector
from perfest.layers.norm import norm_op, norm_params
from perfest.layers.pass_shape import Pass
from perfest.specs import ModelConfig


def embedding_ops(model: ModelConfig, p: Pass) -> list[Op]:
    n = p.b * p.s * model.h  # elements of the [b·s, h] output
    tables = 2 if model.position == "learned" else 1
    ops = [
        vector(
            "embed",
            "embedding",
            n,
            tables - 1,  # one add per element for positions
            read=n * p.emb * tables + p.b * p.s * 8,  # table rows, int64 token ids
            written=n * p.act,
        ),
    ]
    if p.tp > 1:
        ops.append(collective("embed_allreduce", "all-reduce", p.tp, n * p.act))
    return ops


def head_ops(model: ModelConfig, p: Pass) -> list[Op]:
    """Final norm over all b·s positions, then the LM head over b·s_logits of them."""
    rows = p.b * p.s_logits
    ops = [
        norm_op("final_norm", model, p),
        # [b·s_logits, h] @ [h, V]
        matmul(
            "lm_head",
            "lm_head",
            rows,
            model.h,
            p.V(model),
            a_size=p.act,
            b_size=p.emb,
            c_size=p.act,
            bias=model.lm_head_bias,
        ),
    ]
    if p.tp > 1:
        ops.append(collective("logits_allgather", "all-gather", p.tp, rows * model.V * p.act))
    return ops


def embedding_params(model: ModelConfig) -> int:
    """V·h token table, plus max_pos·h for learned positions."""
    positions = model.max_position_embeddings * model.h if model.position == "learned" else 0
    return model.V * model.h + positions


def head_params(model: ModelConfig) -> int:
    """Final norm, plus V·h (and V bias) for an untied LM head."""
    head = 0 if model.tied_embeddings else model.V * model.h
    return norm_params(model) + head + (model.V if model.lm_head_bias else 0)
