"""Shared fixtures of the training tests: a classic GPT block small enough to work by hand."""

from __future__ import annotations

import pytest

from perfest.specs import ModelConfig


@pytest.fixture
def gpt() -> ModelConfig:
    """Korthikanti et al.'s block: LayerNorm, biases, MHA, a 4h GELU MLP; h = 1024, a = 16."""
    return ModelConfig(
        name="gpt-block",
        vocab_size=1000,
        hidden_size=1024,
        num_layers=4,
        num_heads=16,
        intermediate_size=4096,
        mlp="classic",
        activation="gelu",
        norm="layernorm",
        position="learned",
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        tied_embeddings=True,
        max_position_embeddings=4096,
    )
