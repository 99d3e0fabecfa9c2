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


@pytest.mark.parametrize("name", perfest.list_models())
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
