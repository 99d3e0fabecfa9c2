"""Hugging Face config.json files of encoders and encoder-decoders (field values as published)
→ the published parameter totals, and the catalogued YAML of the same model."""

from __future__ import annotations

import json

import pytest

import perfest
from perfest.errors import PerfestError
from perfest.hf import model_from_hf_config

CONFIGS = {
    # google-bert/bert-base-uncased
    "bert-base-uncased": (
        {
            "architectures": ["BertForMaskedLM"],
            "hidden_act": "gelu",
            "hidden_size": 768,
            "intermediate_size": 3072,
            "layer_norm_eps": 1e-12,
            "max_position_embeddings": 512,
            "model_type": "bert",
            "num_attention_heads": 12,
            "num_hidden_layers": 12,
            "position_embedding_type": "absolute",
            "type_vocab_size": 2,
            "vocab_size": 30522,
        },
        109_482_240,
    ),
    # FacebookAI/roberta-large
    "roberta-large": (
        {
            "architectures": ["RobertaForMaskedLM"],
            "hidden_act": "gelu",
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "layer_norm_eps": 1e-05,
            "max_position_embeddings": 514,
            "model_type": "roberta",
            "num_attention_heads": 16,
            "num_hidden_layers": 24,
            "type_vocab_size": 1,
            "vocab_size": 50265,
        },
        355_359_744,
    ),
    # google-t5/t5-base (no feed_forward_proj, no tie_word_embeddings: T5Config's defaults)
    "t5-base": (
        {
            "architectures": ["T5ForConditionalGeneration"],
            "d_ff": 3072,
            "d_kv": 64,
            "d_model": 768,
            "model_type": "t5",
            "n_positions": 512,
            "num_heads": 12,
            "num_layers": 12,
            "relative_attention_num_buckets": 32,
            "vocab_size": 32128,
        },
        222_903_552,
    ),
    # google/flan-t5-xl
    "flan-t5-xl": (
        {
            "architectures": ["T5ForConditionalGeneration"],
            "d_ff": 5120,
            "d_kv": 64,
            "d_model": 2048,
            "dense_act_fn": "gelu_new",
            "feed_forward_proj": "gated-gelu",
            "is_encoder_decoder": True,
            "model_type": "t5",
            "n_positions": 512,
            "num_decoder_layers": 24,
            "num_heads": 32,
            "num_layers": 24,
            "relative_attention_max_distance": 128,
            "relative_attention_num_buckets": 32,
            "tie_word_embeddings": False,
            "vocab_size": 32128,
        },
        2_849_757_184,
    ),
}

#: The fields a catalog YAML and its config.json must agree on (name and source aside).
COMPARED = ("name", "aliases", "display_name", "source")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_json_gives_the_published_total_and_the_catalog_model(name, tmp_path):
    config, total = CONFIGS[name]
    path = tmp_path / name / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(config))
    model = perfest.load_model(str(path))
    assert perfest.count_parameters(model) == total
    catalogued = perfest.load_model(name)
    assert model.model_dump(exclude=set(COMPARED)) == catalogued.model_dump(exclude=set(COMPARED))


@pytest.mark.parametrize(
    "name, change, message",
    [
        ("bert-base-uncased", {"position_embedding_type": "relative_key"},
         "position_embedding_type: 'relative_key' positions are not modelled"),
        ("bert-base-uncased", {"num_attention_heads": 7},
         "num_heads: 7 heads do not divide hidden_size 768"),
        ("t5-base", {"feed_forward_proj": "gated-gelu-x"}, "feed_forward_proj: expected"),
        ("t5-base", {"is_encoder_decoder": False}, "is_encoder_decoder: a T5 encoder alone"),
        ("t5-base", {"d_model": "768"}, "d_model: must be a whole number"),
        ("t5-base", {"num_layers": None}, "missing field for t5: num_layers"),
    ],
)  # fmt: skip
def test_bad_configs_are_one_line(name, change, message):
    config = {**CONFIGS[name][0], **change}
    with pytest.raises(PerfestError, match=message) as info:
        model_from_hf_config(config)
    assert "\n" not in str(info.value)
