"""What ends a sub-block: the tensor-parallel all-reduce of its output, then the residual add.

A sequential block does this twice per layer (after attention, after the MLP); a parallel block
(GPT-J, Falcon-7B) sums both branches first, so it needs one all-reduce and one add of three
tensors per layer — half the collectives.

    residual   x + Σ branches: `branches` adds per element of [b·s, h]; reads 1 + branches
               tensors, writes one
"""

from __future__ import annotations

from perfest.layers.context import Ctx
from perfest.ops import Axis, CollectiveKind, Group, Op, Tensor, collective, elementwise, read
from perfest.symbols import b, s


def block_output_ops(prefix: str, ctx: Ctx, x: Tensor, branches: tuple[Tensor, ...]) -> list[Op]:
    n = b * s * ctx.h  # elements of the [b·s, h] residual stream
    ops = []
    if ctx.shard.split:  # the row-parallel products left partial sums on every device
        ops.append(
            collective(
                f"{prefix}_allreduce", CollectiveKind.ALL_REDUCE, Axis.TP, ctx.shard.tp, branches[0]
            )
        )
    ops.append(
        elementwise(
            f"{prefix}_residual",
            Group.RESIDUAL,
            n,
            len(branches),
            reads=(read(x, n), *(read(branch, n) for branch in branches)),
            writes=(read(x, n),),
        )
    )
    return ops
