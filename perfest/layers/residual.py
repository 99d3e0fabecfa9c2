"""What ends a sub-block: the tensor-parallel all-reduce of its output, then the residual add.

A sequential block does this twice per layer (after attention, after the MLP); a parallel block
(GPT-J, Falcon-7B) sums both branches first, so it needs one all-reduce and one add of three
tensors per layer — half the collectives.
"""

from __future__ import annotations

from perfest.cost import Op, collective, vector
from perfest.layers.pass_shape import Pass
from perfest.specs import ModelConfig


def block_output_ops(prefix: str, model: ModelConfig, p: Pass, branches: int) -> list[Op]:
    n = p.b * p.s * model.h  # elements of the [b·s, h] residual stream
    ops = []
    if p.tp > 1:
        ops.append(collective(f"{prefix}_allreduce", "all-reduce", p.tp, n * p.act))
    # x + Σ branches: `branches` adds per element, reads 1 + branches tensors, writes one
    ops.append(
        vector(
            f"{prefix}_residual",
            "residual",
            n,
            branches,
            read=n * p.act * (1 + branches),
            written=n * p.act,
        )
    )
    return ops
