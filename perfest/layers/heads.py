"""An encoder's heads (BERT, RoBERTa): the pooler and the masked-LM head (`--head`).

    pooler          the first token of each sequence: [b, h] @ [h, h] + bias   2·b·h²
    pooler_act      tanh over b·h                                               5 per element
    mlm_transform   [b·s_logits, h] @ [h, h] + bias                             2·b·s_logits·h²
    mlm_act         the model's activation (GELU: 8 per element)
    mlm_norm        LayerNorm over h
    mlm_decoder     [b·s_logits, h] @ [h, V] + bias (V adds per row)            2·b·s_logits·h·V

The masked-LM head scores every position, as Hugging Face's BertForMaskedLM does (s_logits =
s in the encode pass). Its decoder weight is the token embedding when the model ties them
(BERT, RoBERTa), with a bias of its own (`lm_head_bias`); the pooler's and the transform's
linear layers have biases when the model's linear layers do (`mlp_bias`). tanh(x) = (e^2x − 1)
/ (e^2x + 1): multiply, exp, subtract, add, divide → 5 FLOPs. Under tensor parallelism the
pooler and the transform are replicated; the decoder is split over the vocabulary, its logits
all-gathered, as a decoder's LM head. Every op here is in group `lm_head` (the model's head).
"""

from __future__ import annotations

from dataclasses import replace

from perfest.layers.context import Ctx
from perfest.layers.mlp import ACTIVATION_FLOPS_PER_ELEMENT
from perfest.layers.norm import norm_op
from perfest.layers.residual import region_entry, save_local
from perfest.ops import (
    Access,
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
from perfest.symbols import Sym, b, mul, s_logits

#: tanh: multiply, exp, subtract, add, divide per element.
TANH_FLOPS_PER_ELEMENT = 5


def _dense(ctx: Ctx, name: str, x: Tensor, y: Tensor, rows) -> Op:
    """[rows, h] @ [h, h] + bias, a replicated linear layer of the head."""
    h = ctx.h
    bias = ctx.bias(f"{name}.bias", h) if ctx.model.mlp_bias else None
    w = ctx.weight(f"{name}.weight", h, h)
    return matmul(name, Group.LM_HEAD, x, w, y, m=rows, k=h, n=h, bias=bias)


def pooler_ops(ctx: Ctx, x: Tensor) -> list[Op]:
    """tanh(x[:, 0] @ W + b): the first token's row of each sequence (BERT's [CLS])."""
    pooled, out = ctx.act("pooler.y", b, ctx.h), ctx.act("pooler.out", b, ctx.h)
    n = mul(b, ctx.h)
    dense = _dense(ctx, "pooler", x, pooled, b)  # reads b rows of x, the first of each sequence
    return [
        dense,
        elementwise(
            "pooler_act",
            Group.LM_HEAD,
            n,
            TANH_FLOPS_PER_ELEMENT,
            reads=(read(pooled),),
            writes=(read(out),),
            fn=Fn.ACTIVATION,
        ),  # fmt: skip
    ]


def mlm_ops(ctx: Ctx, x: Tensor, tokens: Tensor) -> list[Op]:
    """BERT's masked-LM head over b·s_logits positions: transform (dense, activation, norm),
    then the decoder to V logits.

    Training (ctx.training): the head is one tensor-parallel region entered before the
    transform (perfest.layers.residual.region_entry: Megatron's f, or the all-gather of the
    local rows with sequence parallelism); the transform runs replicated over tp on all
    b·s_logits rows and the vocabulary-split logits go to the vocabulary-parallel loss as they
    lie (no all-gather), as a decoder's LM head does in training. Megatron-LM's BertLMHead
    runs the transform on each device's b·s/tp rows with sequence parallelism: perfest's
    replicated transform does 2·b·s·h² FLOPs (h/V of the decoder's, 3 % for BERT) tp times."""
    m = ctx.model
    rows = b * s_logits
    n = mul(rows, ctx.h)
    dense, act, normed = (ctx.act(f"mlm.{name}", rows, ctx.h) for name in ("dense", "act", "norm"))
    weight = tokens if m.tied_embeddings else ctx.param("lm_head.weight", ctx.h, ctx.V)
    logits = ctx.act("logits", rows, ctx.V)
    entry, head_x = region_entry("head", ctx, x)
    ops = [
        *entry,
        _dense(ctx, "mlm_transform", head_x, dense, rows),
        elementwise(
            "mlm_act",
            Group.LM_HEAD,
            n,
            ACTIVATION_FLOPS_PER_ELEMENT[m.activation],
            reads=(read(dense),),
            writes=(read(act),),
            fn=Fn.ACTIVATION,
        ),  # fmt: skip
        replace(norm_op("mlm_norm", ctx, act, normed, rows=rows), group=Group.LM_HEAD),
        # [b·s_logits, h] @ [h, V]
        matmul(
            "mlm_decoder",
            Group.LM_HEAD,
            normed,
            weight,
            logits,
            m=rows,
            k=ctx.h,
            n=ctx.V,
            bias=ctx.bias("lm_head.bias", ctx.V) if m.lm_head_bias else None,
        ),  # fmt: skip
    ]
    if ctx.shard.split and not ctx.training:  # every device ends with all V logits
        gathered = ctx.act("logits.gathered", rows, Sym("V_full", m.V))
        ops.append(collective("logits_allgather", CollectiveKind.ALL_GATHER, Axis.TP,
                              ctx.shard.tp, gathered))  # fmt: skip
    return save_local(ops, head_x, x)  # sequence parallel: the transform keeps the local rows


def head_scale_op(ctx: Ctx, x: Tensor) -> Op:
    """T5 with tied embeddings: the decoder output times h^-1/2 before the LM head, one
    multiply per element of the b·s_logits rows the head reads."""
    n = b * s_logits * ctx.h
    return elementwise("head_scale", Group.LM_HEAD, n, 1, reads=(Access(x, n),),
                       writes=(Access(x, n),))  # fmt: skip
