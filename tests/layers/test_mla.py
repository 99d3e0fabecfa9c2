"""Multi-head latent attention worked by hand on a tiny model (h = 64, n_h = 4, d_n = 8,
d_r = 4, d_v = 8, c = kv_lora_rank 16, c_q = q_lora_rank 24, bf16) at b = 2 sequences adding
s = 3 tokens to a context of t = 5."""

from __future__ import annotations

import pytest

from perfest.graph import build_graph
from perfest.layers import Ctx
from perfest.layers.context import Phase
from perfest.layers.mla import mla_ops
from perfest.specs import ModelConfig, Workload
from perfest.symbols import b, s
from tests.layers.conftest import cost

P = {"b": 2, "s": 3, "t": 5}


@pytest.fixture
def mla() -> ModelConfig:
    return ModelConfig(name="tiny-mla", vocab_size=512, hidden_size=64, num_layers=2,
                       num_heads=4, intermediate_size=96, q_lora_rank=24, kv_lora_rank=16,
                       qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8)  # fmt: skip


def ops(model, form, **w):
    c = Ctx.of(model, Workload(mla=form, **w))
    return {op.name: op for op in mla_ops(c, c.act("x", b * s, c.h), c.act("y", b * s, c.h))}


def flops(op):
    return cost(op, **P)[0]


def test_projections(mla):
    o = ops(mla, "naive")
    assert flops(o["q_a_proj"]) == 2 * 6 * 64 * 24  # [6, 64] @ [64, 24] = 18,432
    assert flops(o["q_b_proj"]) == 2 * 6 * 24 * 48  # [6, 24] @ [24, n_h·(8 + 4) = 48]
    assert flops(o["kv_a_proj"]) == 2 * 6 * 64 * 20  # the latent and the RoPE key: 16 + 4
    assert flops(o["out_proj"]) == 2 * 6 * 32 * 64  # [6, n_h·d_v = 32] @ [32, 64] = 24,576


def test_the_cache_holds_the_latent_and_the_rope_key(mla):
    # 6 tokens · (c + d_r) = 6·20 = 120 values, 240 B in bf16 (not 2·n_h·d = 96 per token)
    assert cost(ops(mla, "naive")["kv_cache_write"], **P) == (0, 240, 240)
    graph = build_graph(Ctx.of(mla, Workload()))
    assert graph.kv_bytes_per_token() == 2 * 20 * 2  # 2 layers · 20 values · 2 B


def test_naive_decompresses_the_context(mla):
    o = ops(mla, "naive")
    # kv_b over the context's b·t = 10 latents: [10, 16] @ [16, n_h·(d_n + d_v) = 64]
    assert flops(o["kv_b_proj"]) == 2 * 10 * 16 * 64  # 20,480
    # scores 2·b·n_h·s·t·(d_n + d_r) = 2·2·4·3·5·12 = 2,880; values ·d_v: 1,920
    assert (flops(o["attn_scores"]), flops(o["attn_values"])) == (2_880, 1_920)


def test_absorbed_attends_over_the_latent(mla):
    o = ops(mla, "absorbed")
    assert "kv_b_proj" not in o
    # q_nope·W_UK per head: [6, 8] @ [8, 16], 4 heads: 2·6·8·16·4 = 6,144
    assert flops(o["q_absorb"]) == 6_144
    # scores over c + d_r = 20 dims: 2·2·4·3·5·20 = 4,800; values over c = 16: 3,840
    assert (flops(o["attn_scores"]), flops(o["attn_values"])) == (4_800, 3_840)
    # every head reads its sequence's one latent: K read once per sequence, 2·5·20·2 = 400 B
    k_read = next(a for a in o["attn_scores"].reads if a.tensor is o["attn_scores"].gemm.b)
    assert k_read.nbytes.value(P) == 400
    assert flops(o["v_absorb"]) == 6_144  # [6, 16] @ [16, 8] per head


def test_both_forms_hold_the_same_parameters(mla):
    # W_UK and W_UV are kv_b's two halves: 4·8·16 + 4·16·8 = 1,024 = 16·64
    counts = {}
    for form in ("naive", "absorbed"):
        graph = build_graph(Ctx.of(mla, Workload(mla=form)))
        counts[form] = graph.parameters()
    assert counts["naive"] == counts["absorbed"]


def test_auto_is_naive_for_prefill_and_absorbed_for_decode(mla):
    w = Workload()
    assert Ctx.of(mla, w, Phase.PREFILL).mla_form == "naive"
    assert Ctx.of(mla, w, Phase.DECODE).mla_form == "absorbed"
    assert Ctx.of(mla, Workload(mla="naive"), Phase.DECODE).mla_form == "naive"


def test_tensor_parallel_splits_heads_and_replicates_the_latent(mla):
    o = ops(mla, "absorbed", tp=2)
    assert o["q_absorb"].gemm.batch.value() == 2  # 2 of the 4 heads per device
    assert o["kv_a_proj"].gemm.n.value() == 20  # the latent projection is whole on each
    graph = build_graph(Ctx.of(mla, Workload(tp=2)))
    assert graph.kv_bytes_per_token() == 2 * 20 * 2  # and so is the cache
