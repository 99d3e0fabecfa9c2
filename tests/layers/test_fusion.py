"""Fusion levels: the same products and weights, less memory traffic and fewer launches as more
element-wise work is fused; the fused ops worked by hand."""

from __future__ import annotations

import pytest

import perfest
from perfest.layers import decoder_block
from perfest.layers.context import Fusion
from perfest.layers.fusion import fuse
from perfest.ops import Role
from tests.layers.conftest import cost

MODELS = ["gpt2", "llama-2-7b", "gpt-j-6b", "falcon-7b", "qwen2-7b", "llama-3-8b", "mistral-7b",
          "mixtral-8x7b", "qwen3-30b-a3b", "gpt-oss-20b", "deepseek-v2-lite"]  # fmt: skip
POINT = {"b": 2, "s": 3, "t": 5}


@pytest.mark.parametrize(
    "model, tp", [(m, tp) for m in MODELS for tp in (1, 2) if perfest.load_model(m).n_h % tp == 0]
)
def test_fusion_keeps_products_and_weights_and_cuts_traffic(model, tp):
    m = perfest.load_model(model)
    est = {
        f: perfest.estimate(m, "h100-sxm", batch=4, input_len=300, tp=tp, fusion=f) for f in Fusion
    }
    none, default, full = (est[f] for f in (Fusion.NONE, Fusion.DEFAULT, Fusion.FULL))
    for phase in ("prefill", "decode"):
        p = [e.phase(phase) for e in (none, default, full)]
        # (derived sizes, e_t·m_e = b·s·k/ep, round in the last place)
        assert p[0].matmul_flops == pytest.approx(p[1].matmul_flops, rel=1e-12)
        assert p[2].matmul_flops == pytest.approx(p[1].matmul_flops, rel=1e-12)
        assert p[0].bytes >= p[1].bytes > p[2].bytes
        assert p[0].overhead_s >= p[1].overhead_s > p[2].overhead_s
        assert p[0].time_s >= p[1].time_s > p[2].time_s
    assert none.memory.weights_bytes == default.memory.weights_bytes == full.memory.weights_bytes


def test_eager_splits_the_gated_activation_and_rope(ctx, gated):
    ops = {op.name: op for op in decoder_block(ctx(gated, fusion="none"))}
    # SiLU(gate) and ·up apart: 960 elements: SiLU 5 FLOPs, reads and writes 1,920 B; the
    # multiply 1 FLOP, reads 3,840 B, writes 1,920 B (b = 2, s = 3, i = 160, bf16)
    assert cost(ops["mlp_act"], **POINT) == (4_800, 1_920, 1_920)
    assert cost(ops["mlp_gate_mul"], **POINT) == (960, 3_840, 1_920)
    # RoPE as five kernels per tensor, q and k apart: 480 rotated elements, 3.5 FLOPs each;
    # reads 5.5·480·2 B + the [3, 8] cos/sin table 4 times (192 B); writes 4.5·480·2 B
    assert cost(ops["rope"], **POINT) == (1_680, 5_280 + 192, 4_320)
    assert ops["rope"].kernels == 10 and ops["kv_cache_write"].kernels == 2


def test_eager_attention_repeats_grouped_kv_and_scales_apart(ctx, gated):
    ops = {op.name: op for op in decoder_block(ctx(gated, fusion="none", attention="eager"))}
    # K and V of 2 kv heads copied to 8 query heads: b·n_h·t·2·d = 2·8·5·2·8 = 1,280 elements
    # written (2,560 B), the 2·2·5·16 = 320 cached read (640 B); the scale: 1 FLOP per score,
    # b·n_h·s·t = 2·8·3·5 = 240 of them, read and written (480 B each way)
    assert cost(ops["attn_repeat_kv"], **POINT) == (0, 640, 2_560)
    assert cost(ops["attn_scale"], **POINT) == (240, 480, 480)
    assert ops["attn_scores"].gemm.b_batch.value(POINT) == 16  # one operand per query head


def test_fully_fused_qkv_and_mlp_by_hand(ctx, gated):
    ops = {op.name: op for op in fuse(decoder_block(ctx(gated, fusion="full")))}
    qkv = ops["qkv_proj"]
    # b·s = 6 rows: the product 2·6·64·96 = 73,728 FLOPs, RMSNorm 4·6·64 = 1,536 in the
    # prologue, RoPE 3·6·(8 + 2)·8 = 1,440 in the epilogue; reads x 6·64·2 = 768 B,
    # W 64·96·2 = 12,288 B, γ 128 B, the cos/sin table 3·8·2 = 48 B; writes q, k, v
    # 6·96·2 = 1,152 B (the core reads q from it) and this pass's K, V into the cache
    # 6·2·2·8·2 = 384 B
    assert cost(qkv, **POINT) == (73_728 + 1_536 + 1_440, 768 + 12_288 + 128 + 48, 1_152 + 384)
    assert [w.tensor.role for w in qkv.writes] == [Role.ACTIVATION, Role.KV_CACHE]
    up = ops["mlp_gate_up"]
    # gate and up as one [6, 64] @ [64, 320] product: 2·6·64·320 = 245,760 FLOPs, the norm
    # 1,536 in its prologue, SiLU and the multiply 6·6·160 = 5,760 in its epilogue; reads x
    # 768 B, both weights 2·64·160·2 = 40,960 B and γ 128 B; writes act(gate)·up 1,920 B
    assert cost(up, **POINT) == (245_760 + 1_536 + 5_760, 768 + 40_960 + 128, 1_920)
    assert up.gemm.n.value() == 320
    down = ops["mlp_down"]
    # the residual add in the epilogue: + 6·64 = 384 FLOPs, reads x.mid 768 B, writes x
    assert cost(down, **POINT) == (2 * 6 * 160 * 64 + 384, 1_920 + 20_480 + 768, 768)


def test_full_fusion_leaves_only_products_and_attention(ctx, gated):
    names = [op.name for op in fuse(decoder_block(ctx(gated, fusion="full")))]
    assert names == ["qkv_proj", "attn_scores", "attn_softmax", "attn_values", "out_proj",
                     "mlp_gate_up", "mlp_down"]  # fmt: skip


def test_a_norm_that_experts_gather_from_stays_a_kernel(ctx):
    # the routed experts read their rows of the normed input by index: the norm's output must
    # reach memory, so it is not folded into the router's prologue
    c = ctx(perfest.load_model("mixtral-8x7b"), fusion="full")
    names = [op.name for op in fuse(decoder_block(c, True))]
    assert names[names.index("out_proj") + 1 :] == ["mlp_norm", "router", "expert_gate_up",
                                                    "expert_down"]  # fmt: skip


def test_fusing_twice_changes_nothing(ctx, gated):
    once = fuse(decoder_block(ctx(gated, fusion="full")))
    assert fuse(once) == once
