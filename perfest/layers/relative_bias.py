"""T5's relative position bias (Raffel et al. 2020, §2.1): one table per stack, its bias added
to every layer's attention scores.

    position_bias  once per stack — T5's first layer computes it and hands it to the others:
                   bucket each of the s·t (query, key) offsets, gather the bucket's n_h values
                   FLOPs  s·t·(14 bidirectional, 12 causal)
                   bytes  read the [buckets, n_h] table, write the bias [n_h, s, t]
    attn_bias      per layer: scores + bias                b·n_h·s·t adds
                   reads the bias once, n_h·s·t (one copy serves the batch, as a kv head's K
                   serves its query heads); eager: its own kernel, reading and writing the
                   b·n_h·s·t scores; flash: inside the fused kernel (memory-efficient attention
                   takes an additive bias), no bytes of scores, no launch

Bucket FLOPs, from T5's `_relative_position_bucket` (Hugging Face transformers), per pair:
    offset key − query                                              1
    bidirectional: sign half (compare, multiply, add), |offset|     4   (causal: −min(·, 0): 2)
    is_small (compare)                                              1
    log-spaced bucket: divide, log, divide, multiply, add           5
    clamp to the last bucket (min), where(is_small, …), add         3
                                                    bidirectional 14, causal 12
computed in one fused kernel (eager PyTorch also moves a few [s, t] integer tensors through
memory: not counted). A decode step needs the bias of its s = 1 query over t keys; Hugging
Face computes the whole [t, t] and slices the last row, perfest counts what is needed.
Under tensor parallelism n_h is the device's share of the heads (and of the table's columns).
"""

from __future__ import annotations

from perfest.layers.context import Ctx
from perfest.ops import Group, Op, Tensor, elementwise, read
from perfest.symbols import b, s, t

#: FLOPs per (query, key) pair to find its bucket (module docstring).
BUCKET_FLOPS = {"bidirectional": 14, "causal": 12}


def bias_tensor(ctx: Ctx) -> Tensor:
    """The bias [n_h, s, t] of one pass, shared by every layer of the stack and the batch."""
    return ctx.act("position_bias", ctx.n_h, s, t)


def position_bias_op(ctx: Ctx, bias: Tensor, causal: bool) -> Op:
    """Bucket the s·t offsets and gather each bucket's n_h values from the stack's table."""
    buckets = ctx.model.relative_attention_num_buckets
    table = ctx.param("position_bias.table", buckets, ctx.n_h)  # [buckets, n_h]
    per_pair = BUCKET_FLOPS["causal" if causal else "bidirectional"]
    return elementwise(
        "position_bias",
        Group.ATTENTION,
        s * t,
        per_pair,
        reads=(read(table),),
        writes=(read(bias),),
    )


def bias_add_op(ctx: Ctx, bias: Tensor, scores: Tensor) -> Op:
    """scores [b·n_h, s, t] += bias [n_h, s, t] (broadcast over the batch)."""
    n = b * ctx.n_h * s * t
    eager = not ctx.flash
    return elementwise(
        "attn_bias",
        Group.ATTENTION,
        n,
        1,
        reads=(read(bias), *((read(scores, n),) if eager else ())),
        writes=(read(scores, n),) if eager else (),
        kernels=1 if eager else 0,
    )
