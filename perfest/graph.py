"""A model as a sequence of segments, each a stack of identical layers with its count.

    decoder-only     embedding ×1 → decoder ×L → head ×1
    encoder          embedding ×1 → encoder ×L → head ×1 (pooler, masked LM or none)
    encoder-decoder  encode: embedding → position_bias → encoder ×L_enc → encoder.final;
                     prefill and decode: embedding → position_bias → decoder ×L_dec → head
                     (perfest.encoder_graph)

Later architectures are more segments, not new code paths: dense-first-then-MoE layers, an
encoder stack and a decoder stack, alternating local and global attention. A segment's ops are
costed once and multiplied by its count. A decoder's layers are grouped by kind — dense or
mixture-of-experts, windowed or global attention (ModelConfig.layer_kinds) — into one segment
per kind, in order of first appearance; interleaved layers (gpt-oss's alternating windows)
become two segments, since every cost is a sum over layers and the order does not change it.

    DeepSeek-V3    embedding ×1 → decoder.dense ×3 → decoder.moe ×58 → head ×1
    gpt-oss        embedding ×1 → decoder.window ×L/2 → decoder.global ×L/2 → head ×1

The graph is also the one owner of what a device holds: its weight tensors (summed here for
memory and, at tp = 1, for the parameter count) and its KV-cache tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from perfest.layers import Ctx, decoder_block
from perfest.layers.context import Fusion
from perfest.layers.embedding import embedding_ops, head_ops, token_table
from perfest.layers.fusion import fuse
from perfest.ops import Op, Role, Tensor
from perfest.symbols import Derived, Expr, derived_in


@dataclass(frozen=True, slots=True)
class Segment:
    """`count` identical layers; `ops` are one layer's."""

    name: str
    ops: tuple[Op, ...]
    count: int


@dataclass(frozen=True, slots=True)
class Graph:
    """The segments of one forward pass on one device, in execution order."""

    segments: tuple[Segment, ...]

    def ops(self) -> Iterator[tuple[Segment, Op]]:
        for segment in self.segments:
            for op in segment.ops:
                yield segment, op

    def tensors(self, role: Role) -> dict[Tensor, int]:
        """Distinct tensors of `role`, each with the number of copies a device holds (a
        segment's count; a tensor shared by two segments, such as a tied embedding, once)."""
        found: dict[Tensor, int] = {}
        for segment in self.segments:
            seen = {
                access.tensor
                for op in segment.ops
                for access in (*op.reads, *op.writes)
                if access.tensor.role is role
            }
            for tensor in seen:
                found.setdefault(tensor, segment.count)
        return found

    def weight_bytes(self) -> float:
        """Bytes of every weight a device holds."""
        return sum(n * tensor.nbytes.value() for tensor, n in self.tensors(Role.WEIGHT).items())

    def parameters(self) -> int:
        """Weight elements on this device (the model's parameter count at tp = 1)."""
        return sum(
            n * int(tensor.elements.value()) for tensor, n in self.tensors(Role.WEIGHT).items()
        )

    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes one token of one sequence adds on this device, all layers (within
        the sliding window of a windowed layer)."""
        return self.kv_bytes(1)

    def kv_bytes(self, context: int, encoder: int | None = None) -> float:
        """KV-cache bytes of one sequence of `context` tokens on this device, all layers: a
        windowed layer keeps min(context, window) of them. An encoder-decoder's cross-attention
        cache holds `encoder` tokens (default `context`: per token, both caches grow alike)."""
        s_enc = context if encoder is None else encoder
        env = {"b": 1, "s": 1, "t": context, "s_logits": 1, "s_enc": s_enc}
        return sum(
            n * tensor.nbytes.value(env) for tensor, n in self.tensors(Role.KV_CACHE).items()
        )

    @property
    def derived(self) -> tuple[Derived, ...]:
        """The derived symbols the ops are written in (perfest.symbols), each once."""
        return derived_in(expr for _, op in self.ops() for expr in op_exprs(op))


def op_exprs(op: Op) -> Iterator[Expr]:
    """Every expression an op is written in."""
    yield op.flops
    yield op.dequant
    for access in (*op.reads, *op.writes):
        yield access.elements
        yield from access.tensor.shape
    if op.gemm is not None:
        g = op.gemm
        yield from (g.m, g.k, g.n, g.batch, g.b_batch)
    if op.collective is not None:
        yield op.collective.message


def build_graph(ctx: Ctx) -> Graph:
    """The segments of `ctx.model`: a decoder-only transformer here; an encoder or an
    encoder-decoder's stack for `ctx.phase` in perfest.encoder_graph."""
    if ctx.model.architecture != "decoder":
        from perfest.encoder_graph import stack_graph

        return stack_graph(ctx)
    tokens = token_table(ctx)
    x = ctx.act("x", ctx.rows, ctx.h)  # the residual stream
    kinds = ctx.model.layer_kinds()
    counts: dict[tuple[bool, bool], int] = {}
    for kind in kinds:  # in order of first appearance
        counts[kind] = counts.get(kind, 0) + 1
    decoders = []
    for kind, n in counts.items():
        name = _segment_name(kind, counts)
        scoped = replace(ctx, scope=f"{name}.") if len(counts) > 1 else ctx
        decoders.append(Segment(name, _fused(ctx, decoder_block(scoped, *kind)), n))
    return Graph(
        (
            Segment("embedding", _fused(ctx, embedding_ops(ctx, tokens, x)), 1),
            *decoders,
            Segment("head", _fused(ctx, head_ops(ctx, tokens, x)), 1),
        )
    )


def model_graph(ctx: Ctx) -> Graph:
    """Every weight the model holds: its graph, or an encoder-decoder's two stacks together
    (their shared embedding once)."""
    if ctx.model.architecture == "encoder-decoder":
        from perfest.encoder_graph import whole_graph

        return whole_graph(ctx)
    return build_graph(ctx)


def _fused(ctx: Ctx, ops: list[Op]) -> tuple[Op, ...]:
    """A segment's ops, with every element-wise chain folded into a product under full fusion
    (perfest.layers.fusion)."""
    return tuple(fuse(ops)) if ctx.fusion is Fusion.FULL else tuple(ops)


def _segment_name(kind: tuple[bool, bool], counts: dict) -> str:
    """ "decoder", with .dense/.moe and .window/.global where the model mixes them."""
    moe, window = kind
    parts = ["decoder"]
    if len({k[0] for k in counts}) > 1:
        parts.append("moe" if moe else "dense")
    if len({k[1] for k in counts}) > 1:
        parts.append("window" if window else "global")
    return ".".join(parts)
