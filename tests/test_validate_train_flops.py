"""Training FLOPs against torch's FlopCounterMode on the reference (forward + loss.backward()),
for every catalogued model, op group by op group (the meta device: full sizes, no memory)."""

from __future__ import annotations

import pytest

import perfest

pytestmark = pytest.mark.torch

#: the models a training step is modelled for: decoders and encoders (masked-LM pre-training)
TRAINABLE = [
    n for n in perfest.list_models() if perfest.load_model(n).architecture != "encoder-decoder"
]


@pytest.mark.parametrize("attention", ["flash", "eager"])
@pytest.mark.parametrize("name", TRAINABLE)
def test_backward_flops_equal_flop_counter_mode(name, attention):
    from perfest.validate.train_flops import check_train_flops

    backward, step = check_train_flops(perfest.load_model(name), b=2, s=64, attention=attention)
    for check in (backward, step):
        for row in check.rows:
            assert row.perfest == row.torch, (check.phase, row.ops)
        assert check.perfest_total == check.torch_total, check.phase
        assert check.match


def test_flash_backward_is_five_products_as_torch_counts_sdpa():
    # one layer of Llama-3-8B, b = 2, s = 64: the attention core's products are
    # 2·b·n_h·s·s·d = 2·2·32·64·64·128 = 67,108,864 FLOPs each; 2 forward, 5 backward
    from perfest.validate.train_flops import check_train_flops

    backward, _ = check_train_flops(perfest.load_model("llama-3-8b"), b=2, s=64, layers=1)
    (core,) = [row for row in backward.rows if row.ops == "attention core"]
    assert core.torch == core.perfest == 5 * 67_108_864


def test_a_mixture_of_experts_backward_by_hand():
    # Mixtral-8x7B's first layer, b = 2, s = 64: T = 128 tokens, k = 2 of E = 8 experts,
    # h = 4096, i_e = 14,336. Forward: router 2·128·4096·8 = 8,388,608; experts 3 products of
    # 2·(128·2)·4096·14,336 = 30,064,771,072 each. Backward doubles each product (dX and dW,
    # the router's included: its weights lie on the loss's path)
    from perfest.validate.train_flops import check_train_flops

    backward, step = check_train_flops(perfest.load_model("mixtral-8x7b"), b=2, s=64, layers=1)
    (mlp,) = [row for row in backward.rows if row.ops == "mlp"]
    forward = 8_388_608 + 3 * 30_064_771_072
    assert mlp.torch == mlp.perfest == 2 * forward


def test_every_kind_of_layer_is_checked():
    # DeepSeek-V3's first 3 layers are dense: its first mixture of experts is the 4th; gpt-oss
    # alternates windowed and global layers
    from perfest.validate.train_flops import layers_to_check

    assert layers_to_check(perfest.load_model("deepseek-v3")) == 4
    assert layers_to_check(perfest.load_model("gpt-oss-20b")) == 2
    assert layers_to_check(perfest.load_model("llama-3-8b")) == 2
