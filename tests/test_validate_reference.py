"""The PyTorch reference against perfest: parameter counts, FLOPs (FlopCounterMode), behaviour."""

from __future__ import annotations

import pytest

import perfest
from perfest.errors import UnsupportedError
from perfest.parameters import count_parameters

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from perfest.validate.flops import check_flops  # noqa: E402
from perfest.validate.reference import build_reference, parameter_count  # noqa: E402

#: the decoders (encoders and encoder-decoders: tests/test_validate_encoders.py)
DECODERS = [n for n in perfest.list_models() if perfest.load_model(n).architecture == "decoder"]


@pytest.mark.parametrize("name", DECODERS)
def test_catalogued_model_parameters_and_flops_match(name):
    """Full size on the meta device: nothing is allocated, so the 405B model is as cheap."""
    model = perfest.load_model(name)
    net = build_reference(model, "bf16", "meta")
    assert parameter_count(net) == count_parameters(model)
    for check in check_flops(model, net=net, batch=2, input_len=8, output_len=4, dtype="bf16"):
        assert check.match, (check.phase, [r for r in check.rows if not r.match])


@pytest.mark.parametrize("logits", ["last", "all"])
@pytest.mark.parametrize("attention", ["flash", "eager"])
def test_flops_match_for_every_logits_and_attention_mode(gated, logits, attention):
    checks = check_flops(gated, batch=3, input_len=6, output_len=5, logits=logits,
                         attention=attention, dtype="fp32")  # fmt: skip
    assert all(check.match for check in checks)


def test_prefill_flops_by_hand(classic):
    # tiny-classic, b = 1, s = 4, logits last; h = 64, i = 256, V = 1000, 2 layers, d = 16
    # qkv  2·4·64·192 = 98,304 per layer;  out 2·4·64·64 = 32,768
    # core 2 · (2·1·4·4·16·4 heads) = 4,096;  mlp 2 · 2·4·64·256 = 262,144
    # lm_head (last position) 2·1·64·1000 = 128,000
    prefill, _ = check_flops(classic, batch=1, input_len=4, output_len=2, dtype="fp32")
    assert prefill.torch_total == 2 * (98_304 + 32_768 + 4_096 + 262_144) + 128_000
    assert prefill.match


def test_decode_continues_prefill_exactly(gated):
    """The KV cache and causal mask are right: prefill of s − 1 tokens then one decode step
    gives the logits that a prefill of all s tokens gives for its last position."""
    net = build_reference(gated, "fp32", "cpu", attention="flash")
    ids = torch.randint(0, gated.V, (2, 7))
    whole = net(ids, net.new_cache(2, 7))
    cache = net.new_cache(2, 7)
    net(ids[:, :6], cache)
    step = net(ids[:, 6:], cache)
    torch.testing.assert_close(step, whole, rtol=1e-4, atol=1e-4)


def test_eager_and_flash_attention_agree(classic):
    ids = torch.randint(0, classic.V, (1, 5))
    flash = build_reference(classic, "fp32", "cpu", attention="flash")
    eager = build_reference(classic, "fp32", "cpu", attention="eager")
    out_flash = flash(ids, flash.new_cache(1, 5), logits="all")
    out_eager = eager(ids, eager.new_cache(1, 5), logits="all")
    assert out_flash.shape == (1, 5, classic.V)
    torch.testing.assert_close(out_flash, out_eager, rtol=1e-4, atol=1e-4)


def test_k_layer_reference_has_k_blocks(gated):
    assert len(build_reference(gated, "fp32", "meta", layers=1).blocks) == 1


def test_quantized_dtype_is_rejected_in_one_line(gated):
    with pytest.raises(UnsupportedError, match="dtype: the PyTorch reference runs in"):
        build_reference(gated, "int4")


def test_odd_rotary_dim_cannot_be_built(gated):
    odd = gated.model_copy(update={"rotary_dim": 3})
    with pytest.raises(UnsupportedError, match="rotary_dim 3"):
        build_reference(odd)


# Mixtures of experts, latent attention, windows (perfest.validate.reference_moe).
TINY_MLA_MOE = perfest.ModelConfig(
    name="tiny-mla-moe", vocab_size=300, hidden_size=64, num_layers=3, num_heads=4,
    intermediate_size=96, num_experts=8, experts_per_token=2, expert_intermediate_size=32,
    shared_experts=1, first_dense_layers=1, router_scoring="sigmoid", router_bias=True,
    q_lora_rank=24, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8,
)  # fmt: skip
TINY_WINDOW = perfest.ModelConfig(
    name="tiny-window", vocab_size=300, hidden_size=64, num_layers=2, num_heads=8,
    num_kv_heads=2, intermediate_size=96, sliding_window=3, global_attention_every=2,
    attention_sinks=True, qk_norm=True, num_experts=4, experts_per_token=2, mlp_bias=True,
    router_bias=True, qkv_bias=True, shared_experts=1, shared_expert_gate=True,
)  # fmt: skip


@pytest.mark.parametrize("attention", ["flash", "eager"])
def test_naive_and_absorbed_latent_attention_agree(attention):
    """Folding W_UK into the query and W_UV into the output is exact: both forms give the
    same logits, step by step from the cache (an independent check of the absorbed algebra
    perfest costs for decode)."""
    net = build_reference(TINY_MLA_MOE, "fp32", "cpu", attention=attention)
    ids = torch.randint(0, 300, (2, 7))
    steps = {}
    for form in ("naive", "absorbed"):
        net.set_mla_form(form)
        cache = net.new_cache(2, 7)
        net(ids[:, :6], cache)
        steps[form] = net(ids[:, 6:], cache)
    torch.testing.assert_close(steps["naive"], steps["absorbed"], rtol=1e-4, atol=1e-5)
    whole = net(ids, net.new_cache(2, 7))
    torch.testing.assert_close(steps["absorbed"], whole, rtol=1e-4, atol=1e-5)


def test_windowed_moe_decode_continues_prefill():
    """The window (3 keys), sinks, QK-norm, expert biases and the gated shared expert: a
    decode step past the window gives the logits of a whole prefill's last position."""
    net = build_reference(TINY_WINDOW, "fp32", "cpu")
    ids = torch.randint(0, 300, (2, 9))
    whole = net(ids, net.new_cache(2, 9))
    cache = net.new_cache(2, 9)
    net(ids[:, :8], cache)
    torch.testing.assert_close(net(ids[:, 8:], cache), whole, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", [TINY_MLA_MOE, TINY_WINDOW])
def test_variant_parameters_and_flops_match(model):
    net = build_reference(model, "fp32", "meta")
    assert parameter_count(net) == count_parameters(model)
    # output 20: the decode step's context 2 + 10 = 12 is past the 3-token window
    for check in check_flops(model, net=net, batch=3, input_len=2, output_len=20, dtype="fp32"):
        assert check.match, (check.phase, [r for r in check.rows if not r.match])


def test_gpt_oss_decode_past_its_window_matches():
    """gpt-oss-20b at context 8 + 200 = 208: its windowed layers attend to 128 keys."""
    model = perfest.load_model("gpt-oss-20b")
    net = build_reference(model, "bf16", "meta")
    prefill, decode = check_flops(model, net=net, batch=2, input_len=8, output_len=400)
    assert prefill.match and decode.match


def test_round_robin_routing_spreads_assignments_evenly():
    from perfest.validate.reference_moe import round_robin

    # 5 tokens · top-2 of 4 experts: assignments 0…9 → experts 0,1,2,3,0,1,2,3,0,1: experts 0
    # and 1 get 3 rows, 2 and 3 get 2; token j's slots go to 2j mod 4 and 2j + 1 mod 4
    groups = round_robin(5, 2, 4)
    assert groups == (((0, 1), ((0, 2, 4), (0, 2, 4))), ((2, 3), ((1, 3), (1, 3))))
