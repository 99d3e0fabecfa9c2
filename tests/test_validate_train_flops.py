"""Training FLOPs against torch's FlopCounterMode on the reference (forward + loss.backward()),
for every catalogued model, op group by op group (the meta device: full sizes, no memory)."""

from __future__ import annotations

import pytest

import perfest

pytestmark = pytest.mark.torch

#: the models a training step is modelled for (mixtures of experts: not yet)
TRAINABLE = [
    n
    for n in perfest.list_models()
    if not perfest.load_model(n).num_experts and perfest.load_model(n).architecture == "decoder"
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
