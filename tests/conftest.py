"""Shared fixtures: small hand-checkable models and a round-number device."""

from __future__ import annotations

import importlib.util
import os

import pytest
from hypothesis import settings

from perfest.specs import HardwareSpec, ModelConfig

# Hypothesis: locally each run explores new examples; in CI (CI=true) the examples are fixed,
# so a red run always reproduces.
settings.register_profile("perfest", max_examples=150, deadline=None)
settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "perfest")

#: marker → the optional package its tests need (pyproject's extras)
EXTRAS = {"torch": "torch", "plot": "matplotlib"}


def pytest_collection_modifyitems(config, items):
    """Skip the tests of an extra that is not installed, so the plain `[test]` install passes."""
    for marker, package in EXTRAS.items():
        if importlib.util.find_spec(package) is None:
            skip = pytest.mark.skip(reason=f"needs {package} (pip install 'perfest[{marker}]')")
            for item in items:
                if marker in item.keywords:
                    item.add_marker(skip)


@pytest.fixture
def classic() -> ModelConfig:
    """A GPT-2-style model small enough to work out by hand: h = 64, 4 heads, i = 4h."""
    return ModelConfig(
        name="tiny-classic",
        vocab_size=1000,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        intermediate_size=256,
        mlp="classic",
        activation="gelu_tanh",
        norm="layernorm",
        position="learned",
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        tied_embeddings=True,
        max_position_embeddings=128,
    )


@pytest.fixture
def gated() -> ModelConfig:
    """A Llama-style GQA model: h = 64, 8 heads of d = 8, 2 kv heads, i = 160."""
    return ModelConfig(
        name="tiny-gated",
        vocab_size=512,
        hidden_size=64,
        num_layers=3,
        num_heads=8,
        num_kv_heads=2,
        intermediate_size=160,
        max_position_embeddings=256,
    )


@pytest.fixture
def device() -> HardwareSpec:
    """Round numbers: 100 TFLOP/s bf16, 1 TB/s, no efficiency losses, no overheads."""
    return HardwareSpec(
        name="round",
        fp32_tflops=10,
        bf16_tflops=100,
        memory_gb=10,
        memory_bandwidth_gb_s=1000,
        interconnect_bandwidth_gb_s=100,
        compute_efficiency=1.0,
        memory_efficiency=1.0,
    )
