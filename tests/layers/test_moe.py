"""The mixture-of-experts MLP worked by hand on a tiny model (h = 64, E = 8 experts of
i_e = 32, top-2, one shared expert, bf16) at b = 2 sequences of s = 3 tokens: T = 6 tokens,
T·k = 12 token–expert assignments."""

from __future__ import annotations

import pytest

from perfest.layers.context import Phase
from perfest.layers.moe import expected_touched, moe_ops
from perfest.ops import Axis, CollectiveKind
from perfest.plan import Point, time_op
from perfest.roofline import rates
from perfest.specs import ModelConfig, Workload
from perfest.symbols import b, s
from tests.layers.conftest import cost

P = {"b": 2, "s": 3, "t": 5, "s_logits": 1}


@pytest.fixture
def moe() -> ModelConfig:
    return ModelConfig(
        name="tiny-moe", vocab_size=512, hidden_size=64, num_layers=2, num_heads=8,
        num_kv_heads=2, intermediate_size=160, num_experts=8, experts_per_token=2,
        expert_intermediate_size=32, shared_experts=1,
    )  # fmt: skip


def ops(ctx, model, phase=Phase.PREFILL, **w):
    c = ctx(model, **w)
    c = type(c)(c.model, c.shard, c.dt, c.flash, phase, c.workload)
    found, branches = moe_ops(c, c.act("x", b * s, c.h), c.act("y", b * s, c.h))
    return {op.name: op for op in found}, branches


def test_experts_touched_by_hand():
    # E·(1 − (1 − k/E)^T): one token touches exactly its k experts; 6 tokens of top-2 of 8
    # touch 8·(1 − 0.75⁶) = 8·(1 − 0.177978515625) = 6.576171875 on average; many, all 8
    assert expected_touched(8, 2, 1) == 2
    assert expected_touched(8, 2, 6) == 6.576171875
    assert expected_touched(8, 2, 10_000) == 8


def test_router_scores_every_expert(ctx, moe):
    o, _ = ops(ctx, moe)
    # [T, h] @ [h, E] = [6, 64] @ [64, 8]: 2·6·64·8 = 6,144 FLOPs; reads x 768 B and the router
    # 1,024 B, writes 6·8·2 = 96 B
    assert cost(o["router"], **P) == (6_144, 768 + 1_024, 96)
    # softmax (5) + top-k selection (1) per score: 48·6 = 288 FLOPs
    assert cost(o["router_topk"], **P)[0] == 288


def test_expert_products_are_the_assignments_and_read_the_touched_experts(ctx, moe):
    o, branches = ops(ctx, moe)
    g = o["expert_gate"].gemm
    e_t, m_e = g.batch.value(P), g.m.value(P)
    assert e_t == 6.576171875 and m_e * e_t == pytest.approx(12)  # rows: T·k = 12 in all
    flops, read, written = cost(o["expert_gate"], **P)
    # 2·(T·k)·h·i_e = 2·12·64·32 = 49,152 FLOPs, as a dense MLP on 12 rows would
    assert flops == pytest.approx(49_152)
    # reads the 12 rows (12·64·2 = 1,536 B) and the touched experts' weights
    # 64·32·2 B each = 4,096 B · 6.576171875 = 26,936 B; writes 12·32·2 = 768 B
    assert (read, written) == pytest.approx((1_536 + 26_936, 768))
    assert o["expert_gate"].weights[0].routed
    # combine: 2 FLOPs per element of the T·k·h = 768 outputs, writes T·h·2 = 768 B
    assert cost(o["expert_combine"], **P)[0] == 1_536
    # the shared expert is a plain gated MLP of i_shared = 32 on all 6 tokens, a second branch
    assert cost(o["shared_up"], **P)[0] == 2 * 6 * 64 * 32 and len(branches) == 2


def test_a_decode_token_touches_its_k_experts(ctx, moe):
    o, _ = ops(ctx, moe)
    g = o["expert_up"].gemm
    one = {"b": 1, "s": 1, "t": 9, "s_logits": 1}
    assert (g.batch.value(one), g.m.value(one)) == (2, 1)


def test_experts_touched_override_applies_to_decode(ctx, moe):
    # --experts-touched 5: a decode step touches 5 experts (capped by its assignments, b·k)
    decode, _ = ops(ctx, moe, Phase.DECODE, experts_touched=5)
    g = decode["expert_up"].gemm
    assert g.batch.value({"b": 4, "s": 1, "t": 9, "s_logits": 1}) == 5
    assert g.batch.value({"b": 2, "s": 1, "t": 9, "s_logits": 1}) == 4  # 2 tokens · top-2
    prefill, _ = ops(ctx, moe, Phase.PREFILL, experts_touched=5)
    assert prefill["expert_up"].gemm.batch.value(P) == 6.576171875  # prefill: the expectation


def test_a_fractional_expert_product_pays_whole_tiles(moe, device, ctx):
    # m_e = 12/6.576171875 ≈ 1.82 rows per expert → one 16-row tile (Tm = 16) per expert and
    # one 64-column tile (i_e = 32; the narrowest column tile, the cheapest shape): 2·k·Tm·Tn
    # per tile = 2·64·16·64 = 131,072 FLOPs, times e_t = 6.576171875 products = 861,952
    # padded FLOPs at 100 TFLOP/s = 8.62 ns
    o, _ = ops(ctx, moe)
    row = time_op(o["expert_gate"], rates(device, Workload()), Point(2, 3, 5, 1))
    assert row.t_compute == pytest.approx(861_952 / 100e12)


def test_expert_parallelism_holds_E_over_ep_experts(ctx, moe):
    # attention under tp = 4, ep = 4: 2 experts per device, each whole (expert tp = 1); the
    # device's assignments are T·k/ep = 3 and it touches 2·(1 − 0.75⁶) = 1.644 of its 2
    o, _ = ops(ctx, moe, tp=4, ep=4)
    g = o["expert_up"].gemm
    assert g.b.shape[0].value() == 2 and g.n.value() == 32
    assert g.batch.value(P) == pytest.approx(1.64404296875)
    assert g.m.value(P) * g.batch.value(P) == pytest.approx(3)
    assert "expert_dispatch" not in o  # every device has every token: no all-to-all
    # tp = 4, ep = 2: 4 experts per device, each expert's inner dimension split over 2
    o, _ = ops(ctx, moe, tp=4, ep=2)
    assert o["expert_up"].gemm.n.value() == 16 and o["expert_up"].gemm.b.shape[0].value() == 4


def test_dp_attention_dispatches_and_returns_by_all_to_all(ctx, moe):
    # ep = 4 devices, attention tp = 2 in 2 groups: each device sends b·s·k/tp rows of h
    # (b the group's batch) = 2·3·2/2 = 6 rows · 64 · 2 B = 768 B, of which 3/4 leave it
    o, _ = ops(ctx, moe, tp=2, ep=4, dp_attention=True)
    for name in ("expert_dispatch", "expert_return"):
        comm = o[name].collective
        assert (comm.kind, comm.axis, comm.peers) == (CollectiveKind.ALL_TO_ALL, Axis.EP, 4)
        assert comm.message.value(P) == 768 and comm.wire_bytes.value(P) == 576
    assert o["expert_up"].gemm.n.value() == 32  # experts whole under dp_attention
