"""Parameter counts: total = embeddings + L·(attention + MLP + norms) + final norm + LM head.

Tied embeddings are counted once. The tests compare every shipped model's total with the
officially published count, and with the PyTorch reference module's own count.
"""

from __future__ import annotations

from perfest.layers.attention import attention_params
from perfest.layers.embedding import embedding_params, head_params
from perfest.layers.mlp import mlp_params
from perfest.layers.norm import norm_params
from perfest.specs import ModelConfig


def block_params(model: ModelConfig) -> int:
    """One decoder block: attention, MLP, and its norms (one shared norm in a parallel block)."""
    norms = 1 if model.parallel_block else 2
    return attention_params(model) + mlp_params(model) + norms * norm_params(model)


def parameter_breakdown(model: ModelConfig) -> dict[str, int]:
    """Parameters by part; the values sum to `count_parameters(model)`."""
    return {
        "embedding": embedding_params(model),
        "attention": model.L * attention_params(model),
        "mlp": model.L * mlp_params(model),
        "norms": model.L * (block_params(model) - attention_params(model) - mlp_params(model)),
        "head": head_params(model),
    }


def count_parameters(model: ModelConfig) -> int:
    """Total parameters, embeddings and LM head included (tied embeddings once)."""
    return embedding_params(model) + model.L * block_params(model) + head_params(model)
