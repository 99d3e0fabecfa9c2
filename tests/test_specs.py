"""Spec validation: each bad field is named in one line."""

from __future__ import annotations

import pytest

from perfest.errors import SpecError
from perfest.specs import HardwareSpec, ModelConfig, Workload, build

BASE = dict(
    name="m", vocab_size=100, hidden_size=64, num_layers=2, num_heads=8, intermediate_size=128
)


def bad(cls, **fields):
    with pytest.raises(SpecError) as info:
        build(cls, fields)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_heads_must_divide_hidden():
    assert bad(ModelConfig, **{**BASE, "num_heads": 6}).startswith("num_heads: 6 heads do not")


def test_head_dim_may_differ_from_hidden_over_heads():
    m = ModelConfig(**{**BASE, "num_heads": 6, "head_dim": 32})
    assert (m.d, m.q_dim) == (32, 192)


def test_kv_heads_must_divide_heads():
    assert bad(ModelConfig, **{**BASE, "num_kv_heads": 3}).startswith("num_kv_heads: 3 kv heads")


def test_sizes_must_be_positive():
    assert bad(ModelConfig, **{**BASE, "num_layers": 0}).startswith("num_layers: ")
    assert bad(Workload, batch=0).startswith("batch: ")
    assert bad(
        HardwareSpec, name="x", fp32_tflops=1, memory_gb=1, memory_bandwidth_gb_s=-5
    ).startswith("memory_bandwidth_gb_s: ")


def test_unknown_choice_is_named():
    assert bad(ModelConfig, **{**BASE, "mlp": "moe"}).startswith("mlp: ")


def test_int4_is_a_weight_format_only():
    assert "use --weight-dtype int4" in bad(Workload, dtype="int4")


def test_units_are_converted_once():
    hw = HardwareSpec(
        name="x", fp32_tflops=10, bf16_tflops=100, memory_gb=80, memory_bandwidth_gb_s=2000
    )
    assert hw.peak_flops("bf16") == 100e12 and hw.memory_bandwidth == 2e12
    assert hw.memory_bytes == 80e9 and hw.ridge_point("bf16") == 50


def test_derived_sizes_follow_the_math_names():
    m = ModelConfig(**{**BASE, "num_kv_heads": 2})
    assert (m.h, m.L, m.n_h, m.n_kv, m.d, m.i, m.V) == (64, 2, 8, 2, 8, 128, 100)
    assert m.kv_dim == 16 and m.attention_kind == "GQA (4 q/kv)"
