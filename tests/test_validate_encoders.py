"""The PyTorch references of encoders and encoder-decoders against perfest: parameter counts,
FLOPs (FlopCounterMode, meta device) per phase, behaviour on the CPU, `perfest validate`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import perfest
from perfest.cli import cli
from perfest.graph import model_graph
from perfest.layers import Ctx
from perfest.specs import ModelConfig, Workload

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from perfest.validate.flops import check_flops  # noqa: E402
from perfest.validate.reference import parameter_count  # noqa: E402
from perfest.validate.reference_encoder import (  # noqa: E402
    build_encoder_reference,
    relative_bucket,
)

STACKS = [n for n in perfest.list_models() if perfest.load_model(n).architecture != "decoder"]


@pytest.mark.parametrize("name", STACKS)
def test_catalogued_parameters_and_flops_match_per_phase(name):
    """Full size on the meta device; every phase perfest reports, flash and eager."""
    model = perfest.load_model(name)
    net = build_encoder_reference(model, "bf16", "meta")
    assert parameter_count(net) == perfest.count_parameters(model)
    phases = {"encoder": ["encode"], "encoder-decoder": ["encode", "prefill", "decode"]}
    for attention in ("flash", "eager"):
        checks = check_flops(model, batch=2, input_len=8, output_len=6, dtype="bf16",
                             attention=attention)  # fmt: skip
        assert [c.phase for c in checks] == phases[model.architecture]
        for check in checks:
            assert check.match, (check.phase, [r for r in check.rows if not r.match])


@pytest.mark.parametrize("head", ["pooler", "mlm", "none"])
def test_every_head_counts_alike(head):
    model = perfest.load_model("bert-base-uncased")
    net = build_encoder_reference(model, "bf16", "meta", head=head)
    ours = model_graph(Ctx.of(model, Workload(head=head))).parameters()
    assert parameter_count(net) == ours
    (check,) = check_flops(model, batch=3, input_len=16, head=head, dtype="bf16")
    assert check.match
    rows = {row.ops for row in check.rows}
    assert {"pooler": {"pooler"}, "mlm": {"mlm_transform", "mlm_decoder"}, "none": set()}[
        head
    ] == rows & {"pooler", "mlm_transform", "mlm_decoder"}


def test_encode_flops_by_hand():
    # bert-base, b = 1, s = 16, pooler: per layer qkv 2·16·768·2304 = 56,623,104, out
    # 18,874,368, mlp 2 · 75,497,472, attention 2 · 2·12·16·16·64 = 786,432 → 227,278,848;
    # × 12 = 2,727,346,176, + pooler 2·1·768·768 = 1,179,648
    (check,) = check_flops(perfest.load_model("bert-base-uncased"), batch=1, input_len=16)
    assert check.torch_total == check.perfest_total == 2_727_346_176 + 1_179_648


def test_cross_kv_projection_is_counted_once():
    """t5-base, b = 2, s_enc = 8: prefill projects 2·2·8·768·1536 = 37,748,736 FLOPs per
    layer of cross keys and values; the decode step reads the cache instead."""
    encode, prefill, decode = check_flops(perfest.load_model("t5-base"), batch=2, input_len=8,
                                          output_len=6)  # fmt: skip
    kv = {c.phase: next((r.torch for r in c.rows if r.ops == "cross_kv_proj"), 0)
          for c in (prefill, decode)}  # fmt: skip
    assert kv == {"prefill": 12 * 37_748_736, "decode": 0}


def tiny(architecture: str, **fields) -> ModelConfig:
    base = dict(name=f"tiny-{architecture}", architecture=architecture, vocab_size=97,
                hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)  # fmt: skip
    if architecture == "encoder":
        base.update(mlp="classic", activation="gelu", norm="layernorm", norm_position="post",
                    position="learned", embedding_norm=True, type_vocab_size=2, head="pooler",
                    qkv_bias=True, out_bias=True, mlp_bias=True, lm_head_bias=True,
                    tied_embeddings=True, max_position_embeddings=64)  # fmt: skip
    else:
        base.update(mlp="gated", activation="gelu_tanh", norm="rmsnorm", position="relative",
                    tied_embeddings=True, head_scale=True, num_decoder_layers=3)  # fmt: skip
    return ModelConfig(**{**base, **fields})


@pytest.mark.parametrize("head", ["pooler", "mlm"])
def test_tiny_encoder_runs_on_cpu_flash_and_eager_alike(head):
    model = tiny("encoder")
    ids = torch.randint(0, model.V, (2, 10))
    out = {}
    for attention in ("flash", "eager"):
        net = build_encoder_reference(model, "fp32", "cpu", attention=attention, head=head)
        out[attention] = net(ids)
    assert out["flash"].shape == ((2, 32) if head == "pooler" else (2, 10, 97))
    assert torch.allclose(out["flash"], out["eager"], atol=1e-5)


def test_t5_decoder_with_caches_equals_the_whole_sequence_at_once():
    """The cached step (self cache + cross cache, projected once) gives the logits a pass over
    the whole decoder input gives: the reference's caches are what perfest costs."""
    model = tiny("encoder-decoder")
    net = build_encoder_reference(model, "fp32", "cpu", attention="eager")
    ids, target = torch.randint(0, model.V, (2, 7)), torch.randint(0, model.V, (2, 5))
    encoded = net.encode(ids)
    whole = net(target, net.new_cache(2, 5, 7), encoded)
    cache = net.new_cache(2, 5, 7)
    net(target[:, :1], cache, encoded)
    for step in range(1, 5):
        last = net(target[:, step : step + 1], cache)
    assert torch.allclose(last, whole, atol=1e-5)


def test_relative_buckets_by_hand():
    # 32 buckets, bidirectional: 16 per sign, exact below 8, log-spaced up to 128
    offsets = torch.tensor([-200, -9, -1, 0, 1, 7, 8, 127])
    assert relative_bucket(offsets, True, 32).tolist() == [15, 8, 1, 0, 17, 23, 24, 31]
    # causal: only the past, 32 buckets, exact below 16
    assert relative_bucket(-torch.tensor([0, 1, 15, 16, 500]), False, 32).tolist() == [
        0, 1, 15, 16, 31,
    ]  # fmt: skip


def test_validate_times_an_encoder(tmp_path):
    import yaml

    model = tiny("encoder", hidden_size=64, num_heads=4, intermediate_size=256)
    path = tmp_path / "tiny-encoder.yaml"
    path.write_text(yaml.safe_dump(model.model_dump(mode="json")))
    args = ["validate", "-m", str(path), "-g", "l4", "-b", "2", "-i", "16", "--repeats", "2",
            "--warmup", "1", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [p["phase"] for p in data["phases"]] == ["encode"] and data["flops_match"]
    groups = {g["group"] for g in data["phases"][0]["groups"]}
    assert {"embedding", "attention", "mlp", "norm", "lm_head"} <= groups
    assert "output_len" not in data["workload"]


def test_validate_refuses_to_time_an_encoder_decoder():
    result = CliRunner().invoke(cli, ["validate", "-m", "t5-base", "-g", "l4", "--layers", "1"])
    assert result.exit_code == 2
    assert "t5-base: validate times encoders and decoders" in result.stderr
