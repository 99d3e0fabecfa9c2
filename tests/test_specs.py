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


# Mixtures of experts and attention variants: each inconsistency is one line naming the field.
MOE = dict(BASE, num_experts=8, experts_per_token=2)
MLA = dict(BASE, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(MOE, experts_per_token=9), "experts_per_token: top-9 of 8 experts: top-k cannot"),
        (dict(MOE, experts_per_token=None), "experts_per_token: a mixture of experts needs"),
        (dict(BASE, experts_per_token=2), "experts_per_token: only a mixture of experts"),
        (dict(BASE, shared_experts=1), "shared_experts: only a mixture of experts has it"),
        (dict(MOE, first_dense_layers=2), "first_dense_layers: 2 dense layers leave none"),
        (dict(MOE, num_experts=0), "num_experts: must be greater than 0 (got 0)"),
        (dict(BASE, sliding_window=0), "sliding_window: a window of 0 tokens attends to nothing"),
        (dict(BASE, global_attention_every=2), "global_attention_every: alternating attention"),
        (dict(MLA, kv_lora_rank=128), "kv_lora_rank: 128 does not compress the keys and values"),
        (dict(MLA, q_lora_rank=96), "q_lora_rank: 96 does not compress the queries"),
        (dict(MLA, v_head_dim=None), "v_head_dim: latent attention (kv_lora_rank) needs"),
        (dict(MLA, qk_rope_head_dim=3), "qk_rope_head_dim: 3 is odd"),
        (dict(MLA, num_kv_heads=2), "num_kv_heads: latent attention has one latent per token"),
        (dict(BASE, q_lora_rank=8), "q_lora_rank: only multi-head latent attention has it"),
    ],
)
def test_moe_and_attention_variant_fields_are_checked(fields, message):
    assert bad(ModelConfig, **fields).startswith(message)


def test_layer_kinds_follow_the_conventions():
    # first 1 dense, then every 2nd layer after it MoE (l − 1 + 1 ≡ 0 mod 2: layers 2, 4; with
    # no dense layers this is Qwen's decoder_sparse_step, (l + 1) % 2 == 0); every 2nd layer
    # global (gpt-oss's layer_types: sliding, full, …)
    m = ModelConfig(**dict(BASE, num_layers=5, num_experts=4, experts_per_token=1,
                           first_dense_layers=1, moe_layer_frequency=2, sliding_window=8,
                           global_attention_every=2))  # fmt: skip
    assert [moe for moe, _ in m.layer_kinds()] == [False, False, True, False, True]
    assert [window for _, window in m.layer_kinds()] == [True, False, True, False, True]


def test_mxfp4_is_a_weight_format_of_4_25_bits():
    from perfest.layers.context import Dtypes

    assert bad(Workload, dtype="mxfp4").startswith("dtype: mxfp4 is a weight format")
    # 4-bit values + an 8-bit scale per 32: (32·4 + 8)/32 = 4.25 bits = 0.53125 B per weight
    assert Dtypes.of(Workload(weight_dtype="mxfp4")).weight_size == 4.25 / 8
