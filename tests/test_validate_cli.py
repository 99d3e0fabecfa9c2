"""`perfest validate` and `perfest calibrate` end to end on a tiny model (seconds, on CPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

import perfest
from perfest.cli import cli


@pytest.fixture
def tiny_yaml(gated, tmp_path):
    path = tmp_path / "tiny-gated.yaml"
    path.write_text(yaml.safe_dump(gated.model_dump(mode="json")))
    return str(path)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A quick calibration of this CPU, written where validate looks for the default spec."""
    pytest.importorskip("torch")
    home = tmp_path_factory.mktemp("perfest-home")
    result = CliRunner().invoke(
        cli, ["calibrate", "--quick", "-o", str(home / "calibrated-cpu.yaml")]
    )
    assert result.exit_code == 0, result.output
    return home


def run(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env)


def test_perfest_cli_and_validate_cli_do_not_import_torch():
    code = (
        "import sys, perfest.cli, perfest.validate, perfest.validate.cli; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("command", [["validate", "-m", "gpt2"], ["calibrate"]])
def test_missing_torch_is_one_line_and_exit_2(command, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    result = run(*command)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: PyTorch is not installed; install the extra: pip install 'perfest[torch]'"
    )


@pytest.mark.torch
def test_calibrated_yaml_loads_back_and_estimates(calibrated):
    spec = perfest.load_hardware(str(calibrated / "calibrated-cpu.yaml"))
    assert spec.fp32_tflops > 0 and spec.memory_bandwidth_gb_s > 0 and spec.kernel_launch_us > 0
    assert (spec.tile_m_min, spec.tile_m_max, spec.tile_n) == (1, 1, 1)
    # the CPU's own rates: element-wise work, per-row GEMV time, skinny-GEMM streaming
    assert 0 < spec.vector_tflops and spec.gemv_row_ns >= 0
    assert 0 < spec.gemm_memory_efficiency <= 1
    assert {"measured_at", "host", "torch", "method"} <= set(spec.calibration)
    path = str(calibrated / "calibrated-cpu.yaml")
    result = run("estimate", "-m", "gpt2", "--gpu", path, "--dtype", "fp32", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hardware"] == "calibrated-cpu"


@pytest.mark.torch
def test_validate_end_to_end_on_a_tiny_model(tiny_yaml, calibrated):
    env = {"PERFEST_HOME": str(calibrated)}  # the default spec: this CPU, calibrated
    result = run("validate", "-m", tiny_yaml, "-b", "2", "-i", "16", "--output-len", "4",
                 "--repeats", "2", "--warmup", "1", "--json", env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["hardware"] == "calibrated-cpu" and data["flops_match"]
    assert [(p["phase"], p["mode"]) for p in data["phases"]] == [
        ("prefill", "eager"),
        ("decode", "eager"),
    ]
    for phase in data["phases"]:
        assert phase["measured_s"] > 0 and phase["achieved_flops_s"] > 0
        assert {g["group"] for g in phase["groups"]} >= {"attention", "mlp", "lm_head"}


@pytest.mark.torch
def test_validate_table_with_catalog_spec_and_scaled_layers(tiny_yaml):
    result = run("validate", "-m", tiny_yaml, "--gpu", "h100", "-i", "8", "--output-len", "2",
                 "--layers", "1", "--repeats", "1", "--warmup", "0")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "prefill" in result.stdout and "exact" in result.stdout
    assert "timed 1 of 3 blocks" in result.stderr


@pytest.mark.torch
@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "cuda"], "--device: cuda requested but this PyTorch sees no CUDA device"),
        (["--dtype", "int4"], "'int4' is not one of 'fp32', 'tf32', 'bf16', 'fp16'"),
        (["--dtype", "fp8"], "'fp8' is not one of 'fp32', 'tf32', 'bf16', 'fp16'"),
        (["--tp", "2"], "No such option '--tp'"),
        (["--layers", "0"], "'--layers': 0 is not in the range x>=1"),
        (["--layers", "-1"], "'--layers': -1 is not in the range x>=1"),
        (["-b", "100000000", "-i", "256"], "memory: "),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_yaml, args, message):
    if "cuda" in args and pytest.importorskip("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run("validate", "-m", tiny_yaml, "--gpu", "h100", *args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


@pytest.mark.torch
def test_model_the_reference_cannot_build(gated, tmp_path):
    path = tmp_path / "odd.yaml"
    path.write_text(yaml.safe_dump({**gated.model_dump(mode="json"), "rotary_dim": 3}))
    result = run("validate", "-m", str(path), "--gpu", "h100", "-i", "8", "--output-len", "2")
    assert result.exit_code == 2 and "rotary_dim 3 must be even" in result.stderr
