"""What starts and ends a tensor-parallel region, and the residual add after it.

A sub-block (attention, MLP) is one tensor-parallel region (Megatron-LM, Shoeybi et al. 2019):
its column-parallel products read the whole input, its row-parallel product leaves partial sums
on every device. At its end the partial sums are all-reduced, then added to the residual stream.
A sequential block does this twice per layer (after attention, after the MLP); a parallel block
(GPT-J, Falcon-7B) sums both branches first, so it needs one all-reduce and one add of three
tensors per layer — half the collectives.

    residual   x + Σ branches: `branches` adds per element of [rows, h]; reads 1 + branches
               tensors, writes one

Training (ctx.training) names the region's entry too, so that its backward can be derived:
Megatron's `f` operator (identity forward, all-reduce of the input gradient backward) is an
op that costs nothing forward (`Fn.TO_TP`). With sequence parallelism (Korthikanti et al.
2022, §4.2.2) the residual stream is split over the sequence between regions: the entry
all-gathers the b·s/tp rows of each device into b·s, the exit reduce-scatters the partial sums
back into b·s/tp rows — the same wire bytes as the all-reduce, with the norms, dropouts and
residual adds on 1/tp of the rows. With dropout, each branch is dropped out before the add.
"""

from __future__ import annotations

from dataclasses import replace

from perfest.layers.attention import dropout_op
from perfest.layers.context import Ctx, Fusion
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
    read,
)
from perfest.symbols import ZERO, b, mul, s


def region_entry(prefix: str, ctx: Ctx, x: Tensor) -> tuple[list[Op], Tensor]:
    """The ops entering a tensor-parallel region with input `x`, and the tensor the region's
    column-parallel products read (x itself, or x gathered over the sequence)."""
    if not (ctx.training and ctx.shard.split):
        return [], x
    if ctx.sequence_parallel:
        full = ctx.act(f"{x.name}.full", b * s, ctx.h)
        return [collective(f"{prefix}_allgather", CollectiveKind.ALL_GATHER, Axis.TP,
                           ctx.shard.tp, full)], full  # fmt: skip
    marker = elementwise(f"{prefix}_to_tp", Group.COMM, ZERO, 0, (Access(x, ZERO),), (),
                         kernels=0, fn=Fn.TO_TP)  # fmt: skip
    return [marker], x


def block_output_ops(
    prefix: str, ctx: Ctx, x: Tensor, branches: tuple[Tensor, ...], y: Tensor | None = None
) -> list[Op]:
    """End a region: reduce the first branch's partial sums over tp, add the branches to x
    (written to y, default x: in place)."""
    rows = ctx.rows
    n = mul(rows, ctx.h)  # elements of this device's rows of the residual stream
    y = x if y is None else y
    ops = []
    if ctx.shard.split:  # the row-parallel products left partial sums on every device
        kind = CollectiveKind.REDUCE_SCATTER if ctx.sequence_parallel else CollectiveKind.ALL_REDUCE
        name = "reducescatter" if ctx.sequence_parallel else "allreduce"
        ops.append(collective(f"{prefix}_{name}", kind, Axis.TP, ctx.shard.tp, branches[0]))
    if ctx.dropout:
        dropped = []
        for branch in branches:
            out = ctx.act(f"{branch.name}.dropped", rows, ctx.h)
            ops.append(dropout_op(f"{prefix}_dropout", Group.RESIDUAL, ctx, branch, out, n))
            dropped.append(out)
        branches = tuple(dropped)
    reads = [read(x, n), *(read(branch, n) for branch in branches)]
    writes, kernels = [read(y, n)], 1
    extra = len(branches) - 1
    if ctx.fusion is Fusion.NONE and extra:  # eager: one binary add per branch, through memory
        kernels += extra
        reads.append(read(y, n * extra))
        writes.append(read(y, n * extra))
    ops.append(elementwise(f"{prefix}_residual", Group.RESIDUAL, n, len(branches), tuple(reads),
                           tuple(writes), kernels=kernels, fn=Fn.RESIDUAL))  # fmt: skip
    return ops


def save_local(ops: list[Op], gathered: Tensor, local: Tensor) -> list[Op]:
    """With sequence parallelism a column-parallel product keeps its input's local rows, not
    the gathered input (Megatron saves the shard and gathers it again for the weight
    gradient); without it the two are the same tensor and nothing changes."""
    if gathered is local:
        return ops
    keep = Access(local, local.elements)
    return [
        replace(op, saves=tuple(keep if a.tensor == gathered else a for a in op.saves))
        if any(a.tensor == gathered for a in op.saves)
        else op
        for op in ops
    ]
