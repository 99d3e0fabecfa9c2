"""Self-attention, op by op, worked by hand on the tiny GQA model (conftest `gated`: h = 64,
n_h = 8, n_kv = 2, d = 8, bf16) at b = 2 sequences adding s = 3 tokens to a context of t = 5."""

from __future__ import annotations

import pytest

from perfest.layers.attention import attention_ops
from perfest.ops import Group, Kind, Role
from perfest.symbols import b, s
from tests.layers.conftest import cost

P = {"b": 2, "s": 3, "t": 5}


def ops(ctx, model, **w):
    c = ctx(model, **w)
    return {op.name: op for op in attention_ops(c, c.act("x", b * s, c.h), c.act("y", b * s, c.h))}


def test_qkv_projection(ctx, gated):
    # [b·s, h] @ [h, (n_h + 2·n_kv)·d] = [6, 64] @ [64, 96]: 2·6·64·96 = 73,728 FLOPs;
    # reads x 6·64·2 = 768 B and W 64·96·2 = 12,288 B, writes 6·96·2 = 1,152 B
    op = ops(ctx, gated)["qkv_proj"]
    assert op.gemm.n.text() == "(n_h + 2·n_kv)·d"
    assert cost(op, **P) == (73_728, 768 + 12_288, 1_152)


def test_rope_rotates_q_and_k_and_reads_its_table(ctx, gated):
    # b·s·(n_h + n_kv)·d_rope = 6·10·8 = 480 elements, 3 FLOPs each = 1,440;
    # reads them (960 B) and the cos/sin table s·d_rope·2 = 48 B, writes 960 B
    op = ops(ctx, gated)["rope"]
    assert op.kind is Kind.VECTOR
    assert cost(op, **P) == (1_440, 960 + 48, 960)


def test_kv_cache_write_converts_to_the_cache_dtype(ctx, gated):
    # b·s·2·n_kv·d = 6·2·2·8 = 192 new K and V values: read in bf16 (384 B), written in the
    # KV dtype: bf16 384 B, fp8 192 B
    assert cost(ops(ctx, gated)["kv_cache_write"], **P) == (0, 384, 384)
    op = ops(ctx, gated, kv_dtype="fp8")["kv_cache_write"]
    assert cost(op, **P) == (0, 384, 192)
    assert op.writes[0].tensor.role is Role.KV_CACHE and op.kind is Kind.MEMORY


def test_flash_attention_keeps_scores_on_chip(ctx, gated):
    o = ops(ctx, gated)
    # q·kᵀ: [3, 8] @ [8, 5] for b·n_h = 16 products: 2·3·8·5·16 = 3,840 FLOPs; reads Q
    # 16·3·8·2 = 768 B and K once per kv head, b·n_kv = 4: 4·8·5·2 = 320 B; scores stay on chip
    assert cost(o["attn_scores"], **P) == (3_840, 768 + 320, 0)
    # softmax over 16·3·5 = 240 scores, 5 FLOPs each, fused: no bytes, no launch
    assert cost(o["attn_softmax"], **P) == (1_200, 0, 0) and o["attn_softmax"].kernels == 0
    # ·V: [3, 5] @ [5, 8] per product: 3,840 FLOPs; reads V 320 B; writes 16·3·8·2 = 768 B
    assert cost(o["attn_values"], **P) == (3_840, 320, 768) and o["attn_values"].kernels == 0
    assert o["attn_scores"].activation_product and o["attn_scores"].group is Group.ATTENTION


def test_eager_attention_moves_scores_and_probabilities(ctx, gated):
    o = ops(ctx, gated, attention="eager")
    scores = 16 * 3 * 5 * 2  # [b·n_h, s, t] in bf16 = 480 B
    assert cost(o["attn_scores"], **P) == (3_840, 1_088, scores)
    assert cost(o["attn_softmax"], **P) == (1_200, scores, scores)
    assert cost(o["attn_values"], **P) == (3_840, scores + 320, 768)
    assert o["attn_softmax"].kernels == o["attn_values"].kernels == 1


def test_output_projection(ctx, gated):
    # [b·s, n_h·d] @ [n_h·d, h] = [6, 64] @ [64, 64]: 49,152 FLOPs; reads 768 + 8,192 B,
    # writes 768 B
    assert cost(ops(ctx, gated)["out_proj"], **P) == (49_152, 768 + 8_192, 768)


def test_biases_are_read_once_and_added_per_output(ctx, classic):
    # classic: h = 64, 4 heads of d = 16 (MHA): qkv [6, 64] @ [64, 192] + bias [192]:
    # 2·6·64·192 + 6·192 = 147,456 + 1,152 FLOPs; bias 192·2 = 384 B read
    op = ops(ctx, classic)["qkv_proj"]
    assert cost(op, **P) == (147_456 + 1_152, 768 + 24_576 + 384, 6 * 192 * 2)


def test_tensor_parallel_splits_heads_and_replicates_kv_heads(ctx, gated):
    # tp = 4: 8/4 = 2 query heads, ceil(2/4) = 1 kv head per device: qkv n = (2 + 2)·8 = 32
    op = ops(ctx, gated, tp=4)["qkv_proj"]
    assert op.gemm.n.value() == 32 and op.weights[0].elements.value() == 64 * 32
    assert "rope" in ops(ctx, gated) and "rope" not in ops(ctx, _no_rope(gated))


def _no_rope(model):
    return model.model_copy(update={"position": "learned"})


@pytest.mark.parametrize("t", [1, 5, 4096])
def test_attention_flops_are_4_b_n_h_s_t_d(ctx, gated, t):
    # scores and ·V together: 2·2·b·n_h·s·t·d (dense, the FlopCounterMode convention)
    o = ops(ctx, gated)
    point = {"b": 2, "s": 3, "t": t}
    total = o["attn_scores"].flops.value(point) + o["attn_values"].flops.value(point)
    assert total == 4 * 2 * 8 * 3 * t * 8


def test_a_sliding_window_caps_the_context(ctx, gated):
    # window 4 at t = 5: each query attends to t_w = min(5, 4) = 4 keys:
    # q·kᵀ 2·3·8·4·16 = 3,072 FLOPs (5 keys: 3,840); K read b·n_kv·4·8·2 = 256 B
    windowed = gated.model_copy(update={"sliding_window": 4})
    c = ctx(windowed)
    o = {op.name: op for op in attention_ops(c, c.act("x", b * s, c.h), c.act("y", b * s, c.h),
                                             window=True)}  # fmt: skip
    env = {**P, "s_logits": 1}
    assert cost(o["attn_scores"], **env) == (3_072, 768 + 256, 0)
    assert o["attn_scores"].gemm.n.text() == "t_w"
    # within the window the context is t itself
    assert cost(o["attn_scores"], **{**env, "t": 3})[0] == 2 * 3 * 8 * 3 * 16


def test_qk_norm_and_sinks(ctx, gated):
    # QK-norm: RMSNorm (4 FLOPs) over q and k, b·s·(n_h + n_kv)·d = 6·10·8 = 480 elements:
    # 1,920 FLOPs; reads them (960 B) and γ_q, γ_k (2·8·2 = 32 B). Sinks: n_h = 8 logits read
    variant = gated.model_copy(update={"qk_norm": True, "attention_sinks": True})
    o = ops(ctx, variant)
    assert cost(o["qk_norm"], **P) == (1_920, 960 + 32, 960)
    assert cost(o["attn_softmax"], **P) == (1_200, 16, 0)
