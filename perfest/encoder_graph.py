"""The segments of an encoder (BERT) and of an encoder-decoder's two stacks (T5).

    encoder          embedding ×1 → [position_bias ×1] → encoder ×L → head ×1
                     head: [final_norm (pre-norm)] + pooler | masked LM | nothing (`--head`)
    encoder-decoder  encode   embedding ×1 → position_bias ×1 → encoder ×L_enc → encoder.final ×1
                     prefill  embedding ×1 → position_bias ×1 → decoder ×L_dec → head ×1
                     decode   the same, without the cross K/V projection (the cache has it)

The encoder's and the decoder's layer tensors are scoped (`encoder.`, `decoder.`), so the two
stacks hold distinct weights; the token embedding is one tensor, read by both stacks and, when
tied, by the LM head (T5's `shared`). A stack's relative position bias is computed once, in its
own segment, and read by every layer (perfest.layers.relative_bias). `whole_graph` puts both
stacks together: what a device holds, and what the parameter count reads.
"""

from __future__ import annotations

from dataclasses import replace

from perfest.graph import Graph, Segment
from perfest.layers import Ctx
from perfest.layers.context import Fusion, Phase
from perfest.layers.embedding import embedding_ops, head_ops, token_table
from perfest.layers.encoder import cross_decoder_block, encoder_block, encoder_embedding_ops
from perfest.layers.fusion import fuse
from perfest.layers.heads import head_scale_op, mlm_ops, pooler_ops
from perfest.layers.norm import norm_op
from perfest.layers.relative_bias import bias_tensor, position_bias_op
from perfest.ops import Op
from perfest.symbols import b, s


def segment(ctx: Ctx, name: str, ops, count: int) -> Segment:
    """`count` layers of `ops`, their element-wise chains folded into the products under full
    fusion (perfest.layers.fusion), as a decoder's are."""
    return Segment(name, tuple(fuse(ops) if ctx.fusion is Fusion.FULL else ops), count)


def encoder_head(ctx: Ctx) -> str:
    """The head an encoder runs: the workload's `head`, else the model's."""
    chosen = ctx.workload.head if ctx.workload is not None else None
    return chosen or ctx.model.head


def stack_graph(ctx: Ctx) -> Graph:
    """An encoder's graph; an encoder-decoder's encoder (phase ENCODE) or decoder (PREFILL:
    projecting the cross cache; DECODE: reading it)."""
    if ctx.model.architecture == "encoder":
        segments, x, tokens = encoder_segments(ctx)
        head = _head_ops(replace(ctx, scope="encoder."), x, tokens)
        return Graph((*segments, *((segment(ctx, "head", head, 1),) if head else ())))
    if ctx.phase is Phase.ENCODE:
        segments, x, _ = encoder_segments(ctx)
        enc = replace(ctx, scope="encoder.")
        final = norm_op("final_norm", enc, x, enc.act("out", b * s, enc.h))
        return Graph((*segments, segment(ctx, "encoder.final", [final], 1)))
    return Graph(decoder_segments(ctx, project=ctx.phase is not Phase.DECODE))


def whole_graph(ctx: Ctx) -> Graph:
    """Both stacks of an encoder-decoder: every weight a device holds, each once."""
    encoder = stack_graph(replace(ctx, phase=Phase.ENCODE))
    decoder = stack_graph(replace(ctx, phase=Phase.PREFILL))
    return Graph((*encoder.segments, *decoder.segments))


def _bias_segment(ctx: Ctx, causal: bool) -> tuple:
    """(the bias tensor, its segment), or (None, ()) without relative positions."""
    if ctx.model.position != "relative":
        return None, ()
    bias = bias_tensor(ctx)
    return bias, (segment(ctx, "position_bias", [position_bias_op(ctx, bias, causal)], 1),)


def encoder_segments(ctx: Ctx) -> tuple[tuple[Segment, ...], object, object]:
    """(embedding, position bias, encoder layers), the residual stream x and the token table."""
    enc = replace(ctx, scope="encoder.")
    tokens = token_table(ctx)  # unscoped: shared with the decoder and a tied head
    x = enc.act("x", enc.rows, enc.h)
    bias, bias_segment = _bias_segment(enc, causal=False)
    return (
        (
            segment(ctx, "embedding", encoder_embedding_ops(enc, tokens, x), 1),
            *bias_segment,
            segment(ctx, "encoder", encoder_block(enc, bias), ctx.model.L_enc),
        ),
        x,
        tokens,
    )


def _head_ops(ctx: Ctx, x, tokens) -> list[Op]:
    """A pre-norm encoder's final norm, then the head (module docstring)."""
    ops: list[Op] = []
    if ctx.model.norm_position == "pre":
        normed = ctx.act("final_norm.out", ctx.rows, ctx.h)
        ops.append(norm_op("final_norm", ctx, x, normed))
        x = normed
    head = encoder_head(ctx)
    if head == "pooler":
        ops += pooler_ops(ctx, x)
    elif head == "mlm":
        ops += mlm_ops(ctx, x, tokens)
    return ops


def decoder_segments(ctx: Ctx, project: bool) -> tuple[Segment, ...]:
    """An encoder-decoder's decoder: embedding, position bias, L_dec blocks with cross-attention,
    final norm (+ T5's h^-1/2 scale) and LM head."""
    dec = replace(ctx, scope="decoder.")
    tokens = token_table(ctx)
    x = dec.act("x", dec.rows, dec.h)
    bias, bias_segment = _bias_segment(dec, causal=True)
    head = head_ops(dec, tokens, x)
    if ctx.model.head_scale:  # after the final norm (head_ops' first op), before the LM head
        head.insert(1, head_scale_op(dec, head[0].writes[0].tensor))
    return (
        segment(ctx, "embedding", embedding_ops(dec, tokens, x), 1),
        *bias_segment,
        segment(ctx, "decoder", cross_decoder_block(dec, bias, project), ctx.model.L_dec),
        segment(ctx, "head", head, 1),
    )
