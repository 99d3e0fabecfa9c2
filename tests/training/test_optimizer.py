"""The optimizer step's kernels by hand: states, bytes and FLOPs per parameter."""

from __future__ import annotations

import pytest

from perfest.roofline import Rates
from perfest.training.optimizer import (
    STATES,
    optimizer_cost,
    optimizer_ops,
    state_bytes_per_parameter,
)


def cost(op):
    return op.flops.value(), op.bytes_read.value(), op.bytes_written.value()


def test_adamw_under_mixed_precision_by_hand():
    # 1,000 parameters, fp32 gradients, all on this device
    zero, norm, clip, update = optimizer_ops("adamw", "bf16", "fp32", True, 1_000, 1_000)
    assert cost(zero) == (0, 0, 4_000)  # memset of the fp32 gradients
    assert cost(norm) == (2_000, 4_000, 0)  # Σ g²: square and add, read once
    assert cost(clip) == (1_000, 4_000, 4_000)  # g ·= c
    # 15 FLOPs each; reads g 4, master 4, m 4, v 4 → 16 B; writes master, m, v and the bf16
    # weight → 14 B
    assert cost(update) == (15_000, 16_000, 14_000)


@pytest.mark.parametrize("name, states, flops", [("sgd", 0, 2), ("momentum", 1, 4),
                                                  ("rmsprop", 1, 9), ("adam", 2, 14),
                                                  ("lion", 1, 11)])  # fmt: skip
def test_fp32_training_updates_the_weights_in_place(name, states, flops):
    *_, update = optimizer_ops(name, "fp32", "fp32", False, 10, 10)
    # reads g and w (4 B each) and the states; writes w and the states
    assert cost(update) == (flops * 10, (2 + states) * 40, (1 + states) * 40)
    assert STATES[name] == states
    assert state_bytes_per_parameter(name, False) == (0.0, 4.0 * states)


def test_zero_shards_the_update_and_the_norm():
    # ZeRO-1 over 4 ranks: 1,000 gradients held, the norm, clip and update on 250
    zero, norm, clip, update = optimizer_ops("adam", "bf16", "fp32", True, 1_000, 250)
    assert zero.bytes_written.value() == 4_000
    assert norm.bytes_read.value() == clip.bytes_written.value() == 1_000
    assert update.flops.value() == 14 * 250


def test_the_cost_line_is_the_plan_of_the_kernels():
    # time = a·grads + c·shard + launches, from the plan at one element of each
    r = Rates(matmul_flops=1e12, attention_flops=1e12, vector_flops=1e11, bandwidth=1e12,
              compute_eff=1.0, memory_eff=1.0, launch_s=1e-6, compute_units=1)  # fmt: skip
    c = optimizer_cost("adamw", "bf16", "fp32", True, False, r)
    # per gradient: zero 4 B, norm 4 B + 2 FLOPs, clip 8 B + 1 FLOP; per shard: 30 B + 15 FLOPs
    assert c.per_grad_s == pytest.approx(16 / 1e12 + 3 / 1e11)
    assert c.per_shard_s == pytest.approx(30 / 1e12 + 15 / 1e11)
    assert c.launch_s == pytest.approx(4e-6)
    assert c.time_s(1e9, 1e9) == pytest.approx(1e9 * (c.per_grad_s + c.per_shard_s) + 4e-6)
