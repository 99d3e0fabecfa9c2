"""The CLI through click's CliRunner: output forms, and one line + exit 2 for bad input."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from perfest.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_estimate_default_runs():
    r = run("estimate", "--model", "llama-2-7b", "--gpu", "a100-80gb-sxm")
    assert r.exit_code == 0, r.output
    for text in ("time to first token", "time per output token", "memory per device", "decode"):
        assert text in r.output


def test_estimate_layers_table():
    r = run("estimate", "-m", "gpt2", "-g", "l4", "--layers")
    assert r.exit_code == 0 and "qkv_proj" in r.output and "lm_head" in r.output


def test_estimate_json_is_the_library_dict():
    r = run("estimate", "-m", "llama-3-8b", "-g", "h100-sxm", "-b", "8", "--json")
    data = json.loads(r.output)
    assert data["parameters"] == 8_030_261_248
    assert data["workload"]["batch"] == 8
    assert data["decode"]["layers"][0]["name"] == "embed"
    assert data["generation"]["tpot_s"] > 0


def test_estimate_csv_has_a_row_per_op_and_phase():
    r = run("estimate", "-m", "gpt2", "-g", "h100", "--csv")
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert {row["phase"] for row in rows} == {"prefill", "decode"}
    assert any(row["name"] == "mlp_up" and row["count"] == "12" for row in rows)


@pytest.mark.parametrize(
    "args, message",
    [
        (["-m", "llama-2-7x", "-g", "h100"], "--model: unknown model 'llama-2-7x'; closest: "),
        (["-m", "gpt2", "-g", "h10"], "--gpu: unknown device 'h10'; closest: h100"),
        (["-m", "gpt2", "-g", "h100", "-b", "0"], "--batch: "),
        (["-m", "gpt2", "-g", "h100", "-b", "x"], "'--batch'"),
        (["-m", "gpt2", "-g", "h100", "--input-len", "-3"], "--input-len: "),
        (["-m", "llama-2-7b", "-g", "h100", "--tp", "3"], "--tp: 3 does not divide"),
        (["-m", "gpt2", "-g", "a100", "--dtype", "fp8"], "--dtype: a100-80gb-sxm has no fp8"),
        (["-m", "llama-2-70b", "-g", "l4"], "memory: needs"),
        (["-m", "gpt2"], "Missing option '--gpu'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    r = CliRunner().invoke(cli, ["estimate", *args])
    assert r.exit_code == 2
    errors = [line for line in r.stderr.splitlines() if line]
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0]
    assert "Traceback" not in r.output


def test_malformed_model_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "vocab_size: 10\nhidden_size: 10\nnum_layers: 1\nnum_heads: 3\nintermediate_size: 40\n"
    )
    r = run("estimate", "-m", str(bad), "-g", "h100")
    assert r.exit_code == 2
    assert "num_heads: 3 heads do not divide hidden_size 10" in r.stderr


def test_list_and_show():
    r = run("list", "models")
    assert r.exit_code == 0 and "llama-3.1-405b" in r.output
    r = run("list", "hardware", "--json")
    assert any(d["name"] == "mi300x" for d in json.loads(r.output))
    r = run("show", "model", "gemma-7b")
    assert "8,537,680,896" in r.output and "256" in r.output
    r = run("show", "hardware", "h200-sxm", "--json")
    assert json.loads(r.output)["memory_bandwidth_gb_s"] == 4800


def test_cli_start_imports_nothing_heavy():
    code = (
        "import sys, perfest.cli; print(sorted(m for m in ('torch', 'matplotlib', 'numpy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "args, message",
    [
        (["-m", "mixtral-8x7b", "-g", "h100", "--tp", "8", "--ep", "3"],
         "--ep: 3 does not divide the 8 experts of mixtral-8x7b"),
        (["-m", "mixtral-8x7b", "-g", "h100", "--tp", "2", "--ep", "4"],
         "--ep: 4 does not divide tp 2"),
        (["-m", "mixtral-8x7b", "-g", "h100", "--tp", "4", "--ep", "2", "--dp-attention"],
         "--ep: 2 is not a multiple of tp 4"),
        (["-m", "llama-2-7b", "-g", "h100", "--tp", "2", "--ep", "2"],
         "--ep: llama-2-7b has no experts"),
        (["-m", "mixtral-8x7b", "-g", "h100", "--tp", "2", "--experts-touched", "9"],
         "--experts-touched: 9 exceeds the 8 experts"),
        (["-m", "llama-2-7b", "-g", "h100", "--mla", "absorbed"],
         "--mla: llama-2-7b has no latent attention"),
    ],
)  # fmt: skip
def test_bad_expert_layouts_are_one_line_and_exit_2(args, message):
    test_bad_input_is_one_line_and_exit_2(args, message)


@pytest.mark.parametrize(
    "fields, message",
    [
        ("num_experts: 4\nexperts_per_token: 6\n", "experts_per_token: top-6 of 4 experts"),
        ("sliding_window: 0\n", "sliding_window: a window of 0 tokens attends to nothing"),
        ("kv_lora_rank: 600\nqk_nope_head_dim: 8\nqk_rope_head_dim: 4\nv_head_dim: 8\n",
         "kv_lora_rank: 600 does not compress"),
    ],
)  # fmt: skip
def test_bad_variant_model_file_is_one_line_and_exit_2(tmp_path, fields, message):
    path = tmp_path / "m.yaml"
    base = "vocab_size: 100\nhidden_size: 64\nnum_layers: 2\nnum_heads: 8\n"
    path.write_text(base + "intermediate_size: 128\n" + fields)
    test_bad_input_is_one_line_and_exit_2(["-m", str(path), "-g", "h100"], message)


def test_show_model_reports_active_parameters():
    r = run("show", "model", "qwen3-30b-a3b")
    assert r.exit_code == 0 and "active parameters" in r.output and "3,353,032,704" in r.output
    data = json.loads(run("show", "model", "qwen3-30b-a3b", "--json").output)
    assert (data["parameters"], data["active_parameters"]) == (30_532_122_624, 3_353_032_704)
