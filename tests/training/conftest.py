"""Shared fixtures of the training tests: a classic GPT block small enough to work by hand."""

from __future__ import annotations

import pytest

from perfest.specs import ModelConfig


@pytest.fixture
def gpt(classic: ModelConfig) -> ModelConfig:
    """Korthikanti et al.'s block: LayerNorm, biases, MHA, a 4h GELU MLP; h = 1024, a = 16
    (tests/conftest.py's `classic`, scaled up)."""
    return ModelConfig(
        **{
            **classic.model_dump(exclude_defaults=True),
            "name": "gpt-block",
            "hidden_size": 1024,
            "num_layers": 4,
            "num_heads": 16,
            "intermediate_size": 4096,
            "activation": "gelu",
            "max_position_embeddings": 4096,
        }
    )
