"""The forward pass as a list of ops, one module per layer family.

`forward(model, p)` returns the ops of one forward pass of shape `p` on one device: the
embedding once, each block op once with `count = L` (the layers are identical, so one is costed
and multiplied), then the final norm and the LM head.
"""

from __future__ import annotations

from functools import lru_cache

from perfest.cost import Op
from perfest.layers.attention import attention_ops
from perfest.layers.embedding import embedding_ops, head_ops
from perfest.layers.mlp import mlp_ops
from perfest.layers.norm import norm_op
from perfest.layers.pass_shape import Pass
from perfest.layers.residual import block_output_ops
from perfest.specs import ModelConfig

__all__ = ["Pass", "forward", "block_ops"]


def block_ops(model: ModelConfig, p: Pass) -> list[Op]:
    """One decoder block. Sequential: x + attn(norm(x)), then x + mlp(norm(x)).
    Parallel (GPT-J, Falcon-7B): x + attn(norm(x)) + mlp(norm(x)) with one shared norm."""
    if model.parallel_block:
        return [
            norm_op("attn_norm", model, p),
            *attention_ops(model, p),
            *mlp_ops(model, p),
            *block_output_ops("block", model, p, branches=2),
        ]
    return [
        norm_op("attn_norm", model, p),
        *attention_ops(model, p),
        *block_output_ops("attn", model, p, branches=1),
        norm_op("mlp_norm", model, p),
        *mlp_ops(model, p),
        *block_output_ops("mlp", model, p, branches=1),
    ]


@lru_cache(maxsize=4096)
def forward(model: ModelConfig, p: Pass) -> tuple[Op, ...]:
    """All ops of one forward pass, block ops carrying count = L (a pure function, cached)."""
    block = block_ops(model, p)
    for op in block:
        # Set on ops this call just made and nobody else holds: the same as op.times(L),
        # without a second object per op (this is the estimator's innermost loop).
        object.__setattr__(op, "count", model.L)
    return (*embedding_ops(model, p), *block, *head_ops(model, p))
