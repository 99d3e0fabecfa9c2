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
