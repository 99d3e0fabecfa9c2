"""`perfest validate --train` runs a real training step of a tiny reference (structure only:
its accuracy is a benchmark, benchmarks/bench_train_cpu.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from perfest.cli import cli
from perfest.specs import HardwareSpec

pytestmark = pytest.mark.torch


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "cpu.yaml"
    cpu = HardwareSpec(name="cpu", fp32_tflops=0.1, vector_tflops=0.01, memory_gb=8,
                       memory_bandwidth_gb_s=10, tile_m_min=1, tile_m_max=1, tile_n=1,
                       kernel_launch_us=10)  # fmt: skip
    from perfest.validate.calibrate import write_spec

    write_spec(cpu, path)
    return str(path)


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("name: tiny\nvocab_size: 128\nhidden_size: 32\nnum_layers: 2\n"
                    "num_heads: 4\nnum_kv_heads: 2\nintermediate_size: 64\n")  # fmt: skip
    return str(path)


def test_validate_train_times_each_phase(spec, tiny):
    args = ["validate", "-m", tiny, "--gpu", spec, "--train", "-b", "2", "-i", "16",
            "--repeats", "2", "--warmup", "1", "--json"]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [p["phase"] for p in data["phases"]] == ["forward", "backward", "optimizer", "step"]
    for p in data["phases"]:
        assert p["predicted_s"] > 0 and p["measured_s"] > 0
    step = data["phases"][-1]
    assert step["measured_s"] == pytest.approx(sum(p["measured_s"] for p in data["phases"][:3]))


def test_validate_train_refuses_an_optimizer_torch_lacks(spec, tiny):
    r = CliRunner().invoke(cli, ["validate", "-m", tiny, "--gpu", spec, "--train",
                                 "--optimizer", "lion", "-i", "8"])  # fmt: skip
    assert r.exit_code == 2 and r.stderr.startswith("error: optimizer: torch.optim has no lion")


def test_validate_train_times_an_encoder(spec, tmp_path):
    path = tmp_path / "tiny-bert.yaml"
    path.write_text("name: tiny-bert\narchitecture: encoder\nvocab_size: 128\nhidden_size: 32\n"
                    "num_layers: 2\nnum_heads: 4\nintermediate_size: 64\nmlp: classic\n"
                    "activation: gelu\nnorm: layernorm\nnorm_position: post\n"
                    "position: learned\nembedding_norm: true\ntype_vocab_size: 2\nhead: pooler\n"
                    "qkv_bias: true\nout_bias: true\nmlp_bias: true\nlm_head_bias: true\n"
                    "tied_embeddings: true\nmax_position_embeddings: 64\n")  # fmt: skip
    args = ["validate", "-m", str(path), "--gpu", spec, "--train", "-b", "2", "-i", "16",
            "--repeats", "2", "--warmup", "1", "--json"]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    phases = json.loads(r.stdout)["phases"]
    assert all(p["predicted_s"] > 0 and p["measured_s"] > 0 for p in phases)
