"""Hugging Face config.json files (field values as published) → the published parameter totals."""

from __future__ import annotations

import json

import pytest

import perfest
from perfest.errors import PerfestError
from perfest.hf import model_from_hf_config

CONFIGS = {
    # openai-community/gpt2
    "gpt2": (
        {
            "model_type": "gpt2",
            "vocab_size": 50257,
            "n_embd": 768,
            "n_layer": 12,
            "n_head": 12,
            "n_positions": 1024,
            "n_inner": None,
            "activation_function": "gelu_new",
        },
        124_439_808,
    ),
    # EleutherAI/gpt-j-6b (the Hugging Face module's count; see tests/published_params.py)
    "gptj": (
        {
            "model_type": "gptj",
            "vocab_size": 50400,
            "n_embd": 4096,
            "n_layer": 28,
            "n_head": 16,
            "rotary_dim": 64,
            "n_positions": 2048,
            "n_inner": None,
            "activation_function": "gelu_new",
            "tie_word_embeddings": False,
        },
        6_050_882_784,
    ),
    # tiiuae/falcon-7b
    "falcon": (
        {
            "model_type": "falcon",
            "vocab_size": 65024,
            "hidden_size": 4544,
            "num_hidden_layers": 32,
            "num_attention_heads": 71,
            "multi_query": True,
            "parallel_attn": True,
            "bias": False,
            "alibi": False,
            "new_decoder_architecture": False,
        },
        6_921_720_704,
    ),
    # google/gemma-7b
    "gemma": (
        {
            "model_type": "gemma",
            "vocab_size": 256000,
            "hidden_size": 3072,
            "intermediate_size": 24576,
            "num_hidden_layers": 28,
            "num_attention_heads": 16,
            "num_key_value_heads": 16,
            "head_dim": 256,
            "hidden_act": "gelu",
            "max_position_embeddings": 8192,
        },
        8_537_680_896,
    ),
    # Qwen/Qwen2-7B
    "qwen2": (
        {
            "model_type": "qwen2",
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
        },
        7_615_616_512,
    ),
    # microsoft/Phi-3-mini-4k-instruct
    "phi3": (
        {
            "model_type": "phi3",
            "vocab_size": 32064,
            "hidden_size": 3072,
            "intermediate_size": 8192,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
        },
        3_821_079_552,
    ),
    # mistralai/Mistral-7B-v0.1
    "mistral": (
        {
            "model_type": "mistral",
            "vocab_size": 32000,
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
        },
        7_241_732_096,
    ),
}


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_config_json_gives_the_published_total(family, tmp_path):
    config, total = CONFIGS[family]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert perfest.count_parameters(perfest.load_model(str(path))) == total


def test_family_structure_is_read():
    gptj = model_from_hf_config(CONFIGS["gptj"][0])
    assert gptj.parallel_block and gptj.rope_dim == 64 and gptj.lm_head_bias
    falcon = model_from_hf_config(CONFIGS["falcon"][0])
    assert falcon.n_kv == 1 and falcon.parallel_block and falcon.tied_embeddings
    assert model_from_hf_config(CONFIGS["qwen2"][0]).qkv_bias
    assert model_from_hf_config(CONFIGS["gemma"][0]).d == 256


def test_missing_field_is_named(tmp_path):
    config = dict(CONFIGS["mistral"][0])
    del config["hidden_size"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(PerfestError, match="missing field for mistral: hidden_size"):
        perfest.load_model(str(path))


def test_broken_json_names_the_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "model_type": "llama",\n  oops\n}')
    with pytest.raises(PerfestError, match=r"config\.json:3: invalid JSON"):
        perfest.load_model(str(path))


# Mixtures of experts, latent attention, windows: config.json fields as published (the fields
# that shape the model; tokenizer and rope-scaling fields left out) → the published totals.
MOE_CONFIGS = {
    # mistralai/Mixtral-8x7B-v0.1
    "mixtral": (
        {
            "model_type": "mixtral",
            "vocab_size": 32000,
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "num_local_experts": 8,
            "num_experts_per_tok": 2,
            "hidden_act": "silu",
            "max_position_embeddings": 32768,
            "sliding_window": None,
            "tie_word_embeddings": False,
        },
        46_702_792_704,
    ),
    # Qwen/Qwen1.5-MoE-A2.7B (KerasHub qwen1.5_moe_2.7b_en: 14,315,784,192)
    "qwen2_moe": (
        {
            "model_type": "qwen2_moe",
            "vocab_size": 151936,
            "hidden_size": 2048,
            "intermediate_size": 5632,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "num_key_value_heads": 16,
            "num_experts": 60,
            "num_experts_per_tok": 4,
            "moe_intermediate_size": 1408,
            "shared_expert_intermediate_size": 5632,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "use_sliding_window": False,
            "sliding_window": 32768,
            "tie_word_embeddings": False,
        },
        14_315_784_192,
    ),
    # Qwen/Qwen3-30B-A3B
    "qwen3_moe": (
        {
            "model_type": "qwen3_moe",
            "vocab_size": 151936,
            "hidden_size": 2048,
            "intermediate_size": 6144,
            "num_hidden_layers": 48,
            "num_attention_heads": 32,
            "num_key_value_heads": 4,
            "head_dim": 128,
            "num_experts": 128,
            "num_experts_per_tok": 8,
            "moe_intermediate_size": 768,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "attention_bias": False,
            "max_position_embeddings": 40960,
            "tie_word_embeddings": False,
        },
        30_532_122_624,
    ),
    # deepseek-ai/DeepSeek-V2-Lite
    "deepseek_v2": (
        {
            "model_type": "deepseek_v2",
            "vocab_size": 102400,
            "hidden_size": 2048,
            "intermediate_size": 10944,
            "num_hidden_layers": 27,
            "num_attention_heads": 16,
            "num_key_value_heads": 16,
            "q_lora_rank": None,
            "kv_lora_rank": 512,
            "qk_nope_head_dim": 128,
            "qk_rope_head_dim": 64,
            "v_head_dim": 128,
            "moe_intermediate_size": 1408,
            "n_routed_experts": 64,
            "n_shared_experts": 2,
            "num_experts_per_tok": 6,
            "first_k_dense_replace": 1,
            "moe_layer_freq": 1,
            "scoring_func": "softmax",
            "topk_method": "greedy",
            "max_position_embeddings": 163840,
            "tie_word_embeddings": False,
        },
        15_706_484_224,
    ),
    # deepseek-ai/DeepSeek-V3 (main model; see tests/published_params.py)
    "deepseek_v3": (
        {
            "model_type": "deepseek_v3",
            "vocab_size": 129280,
            "hidden_size": 7168,
            "intermediate_size": 18432,
            "num_hidden_layers": 61,
            "num_attention_heads": 128,
            "num_key_value_heads": 128,
            "q_lora_rank": 1536,
            "kv_lora_rank": 512,
            "qk_nope_head_dim": 128,
            "qk_rope_head_dim": 64,
            "v_head_dim": 128,
            "moe_intermediate_size": 2048,
            "n_routed_experts": 256,
            "n_shared_experts": 1,
            "num_experts_per_tok": 8,
            "first_k_dense_replace": 3,
            "moe_layer_freq": 1,
            "scoring_func": "sigmoid",
            "topk_method": "noaux_tc",
            "num_nextn_predict_layers": 1,
            "max_position_embeddings": 163840,
            "tie_word_embeddings": False,
        },
        671_026_419_200,
    ),
    # openai/gpt-oss-20b
    "gpt_oss": (
        {
            "model_type": "gpt_oss",
            "vocab_size": 201088,
            "hidden_size": 2880,
            "intermediate_size": 2880,
            "num_hidden_layers": 24,
            "num_attention_heads": 64,
            "num_key_value_heads": 8,
            "head_dim": 64,
            "num_local_experts": 32,
            "num_experts_per_tok": 4,
            "experts_per_token": 4,
            "sliding_window": 128,
            "layer_types": ["sliding_attention", "full_attention"] * 12,
            "attention_bias": True,
            "max_position_embeddings": 131072,
            "tie_word_embeddings": False,
            "quantization_config": {"quant_method": "mxfp4"},
        },
        20_914_757_184,
    ),
}


@pytest.mark.parametrize("family", sorted(MOE_CONFIGS))
def test_moe_config_json_gives_the_published_total(family, tmp_path):
    config, total = MOE_CONFIGS[family]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert perfest.count_parameters(perfest.load_model(str(path))) == total


def test_moe_structure_is_read():
    v3 = model_from_hf_config(MOE_CONFIGS["deepseek_v3"][0])
    assert (v3.first_dense_layers, v3.router_scoring, v3.router_bias, v3.mla) == (
        3, "sigmoid", True, True)  # fmt: skip
    oss = model_from_hf_config(MOE_CONFIGS["gpt_oss"][0])
    assert (oss.global_attention_every, oss.expert_weight_dtype, oss.attention_sinks) == (
        2, "mxfp4", True)  # fmt: skip
    assert model_from_hf_config(MOE_CONFIGS["qwen2_moe"][0]).shared_expert_gate
    assert model_from_hf_config(MOE_CONFIGS["qwen3_moe"][0]).qk_norm
    # Mistral-7B-v0.1's window is read
    assert model_from_hf_config({**CONFIGS["mistral"][0], "sliding_window": 4096}).sliding_window


@pytest.mark.parametrize(
    "family, change, message",
    [
        ("qwen2_moe", {"mlp_only_layers": [0, 3]}, "mlp_only_layers: per-layer dense lists"),
        ("qwen2_moe", {"use_sliding_window": True}, "use_sliding_window: Qwen's per-layer"),
        ("deepseek_v3", {"moe_layer_freq": 2}, "moe_layer_freq: MoE on every n-th layer"),
        ("gpt_oss", {"layer_types": ["full_attention"] + ["sliding_attention"] * 23},
         "layer_types: only every n-th layer global"),
        ("mixtral", {"num_experts_per_tok": 9}, "experts_per_token: top-9 of 8 experts"),
    ],
)  # fmt: skip
def test_moe_layouts_perfest_cannot_express_are_refused(family, change, message):
    with pytest.raises(PerfestError, match=message):
        model_from_hf_config({**MOE_CONFIGS[family][0], **change})
