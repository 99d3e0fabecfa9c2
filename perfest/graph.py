"""A model as a sequence of segments, each a stack of identical layers with its count.

    decoder-only   embedding ×1 → decoder ×L → head ×1

Later architectures are more segments, not new code paths: dense-first-then-MoE layers, an
encoder stack and a decoder stack, alternating local and global attention (a segment whose
layer is the repeating pair). A segment's ops are costed once and multiplied by its count.

The graph is also the one owner of what a device holds: its weight tensors (summed here for
memory and, at tp = 1, for the parameter count) and its KV-cache tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from perfest.layers import Ctx, decoder_block
from perfest.layers.embedding import embedding_ops, head_ops, token_table
from perfest.ops import Op, Role, Tensor
from perfest.symbols import b, t


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
        """KV-cache bytes one token of one sequence adds on this device, all layers."""
        env = {b.name: 1, t.name: 1}
        return sum(
            n * tensor.nbytes.value(env) for tensor, n in self.tensors(Role.KV_CACHE).items()
        )


def build_graph(ctx: Ctx) -> Graph:
    """The segments of `ctx.model` (a decoder-only transformer)."""
    tokens = token_table(ctx)
    x = ctx.act("x", ctx.rows, ctx.h)  # the residual stream
    return Graph(
        (
            Segment("embedding", tuple(embedding_ops(ctx, tokens, x)), 1),
            Segment("decoder", tuple(decoder_block(ctx)), ctx.model.L),
            Segment("head", tuple(head_ops(ctx, tokens, x)), 1),
        )
    )
