"""Every shipped YAML loads; names resolve; bad files fail with file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import perfest
from perfest.errors import SpecError, SpecFileError, UnknownNameError

ROOT = Path(__file__).resolve().parent.parent
ISSUE_MODELS = [
    "gpt2",
    "gpt2-medium",
    "gpt2-large",
    "gpt2-xl",
    "gpt3-175b",
    "llama-2-7b",
    "llama-2-13b",
    "llama-2-70b",
    "llama-3-8b",
    "llama-3-70b",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.1-405b",
    "mistral-7b",
    "qwen2-7b",
    "gemma-7b",
    "phi-3-mini",
    "falcon-7b",
    "gpt-j-6b",
]
ISSUE_HARDWARE = [
    "a100-40gb-sxm",
    "a100-80gb-sxm",
    "a100-80gb-pcie",
    "h100-sxm",
    "h100-pcie",
    "h200-sxm",
    "b200",
    "l40s",
    "l4",
    "rtx-4090",
    "mi300x",
    "tpu-v5e",
    "tpu-v4",
]


def test_catalog_holds_every_required_id():
    assert set(ISSUE_MODELS) <= set(perfest.list_models())
    assert set(ISSUE_HARDWARE) <= set(perfest.list_hardware())


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "models").glob("*.yaml")))
def test_model_file_loads_and_cites_its_source(name):
    model = perfest.load_model(name)
    assert model.name == name
    text = (ROOT / "models" / f"{name}.yaml").read_text()
    assert "Source:" in text and model.source


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "hardware").glob("*.yaml")))
def test_hardware_file_loads_and_cites_its_source(name):
    hw = perfest.load_hardware(name)
    assert hw.name == name
    assert "Source:" in (ROOT / "hardware" / f"{name}.yaml").read_text() and hw.source
    # dense peaks only: a matmul dtype is never slower than fp32 nor sparsity-doubled past fp8
    assert hw.bf16_tflops is None or hw.bf16_tflops >= hw.fp32_tflops


def test_aliases_resolve_case_insensitively():
    assert perfest.load_hardware("H100").name == "h100-sxm"
    assert perfest.load_model("GPT2-Small").name == "gpt2"


def test_unknown_name_lists_closest():
    with pytest.raises(UnknownNameError, match="closest: llama-2-7b"):
        perfest.load_model("llama-2-7")


def test_yaml_path_loads(tmp_path):
    path = tmp_path / "mine.yaml"
    data = yaml.safe_load((ROOT / "hardware" / "h100-sxm.yaml").read_text())
    data["memory_gb"] = 96
    path.write_text(yaml.safe_dump(data))
    assert perfest.load_hardware(str(path)).memory_gb == 96


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nhidden_size: 64\n  oops: [\n")
    with pytest.raises(SpecFileError, match=r"broken\.yaml:3: invalid YAML"):
        perfest.load_model(str(path))


def test_unknown_field_and_missing_field_are_named(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        "vocab_size: 10\nhidden_size: 8\nnum_layers: 1\nnum_heads: 2\n"
        "intermediate_size: 16\ncolour: red\n"
    )
    with pytest.raises(SpecError, match="colour: unknown field"):
        perfest.load_model(str(path))
    path.write_text("vocab_size: 10\nhidden_size: 8\nnum_layers: 1\nnum_heads: 2\n")
    with pytest.raises(SpecError, match="intermediate_size: required field is missing"):
        perfest.load_model(str(path))


def test_yaml_is_not_executed(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(SpecFileError):
        perfest.load_model(str(path))


def test_hf_config_json(tmp_path):
    config = {
        "model_type": "llama",
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    model = perfest.load_model(str(path))
    assert perfest.count_parameters(model) == 6_738_415_616  # Llama-2-7B's published total


def test_hf_unknown_model_type(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "mamba"}))
    with pytest.raises(perfest.PerfestError, match="model_type: 'mamba' is not supported"):
        perfest.load_model(str(path))
