"""The MLP worked by hand at b·s = 6 rows: the classic one (conftest `classic`: h = 64,
i = 256, GELU, biases) and the gated one (`gated`: h = 64, i = 160, SiLU), bf16."""

from __future__ import annotations

from perfest.layers.mlp import mlp_ops
from perfest.ops import Kind
from perfest.symbols import b, s
from tests.layers.conftest import cost

P = {"b": 2, "s": 3}


def ops(ctx, model, **w):
    c = ctx(model, **w)
    return {op.name: op for op in mlp_ops(c, c.act("x", b * s, c.h), c.act("y", b * s, c.h))}


def test_classic_mlp(ctx, classic):
    o = ops(ctx, classic)
    assert list(o) == ["mlp_up", "mlp_act", "mlp_down"]
    # up: [6, 64] @ [64, 256] + bias: 196,608 + 1,536 FLOPs; reads 768 + 32,768 + 512 B
    assert cost(o["mlp_up"], **P) == (198_144, 34_048, 3_072)
    # GELU on 6·256 = 1,536 elements, 8 FLOPs each; reads and writes 3,072 B
    assert cost(o["mlp_act"], **P) == (12_288, 3_072, 3_072)
    # down: [6, 256] @ [256, 64] + bias: 196,608 + 384 FLOPs; reads 3,072 + 32,768 + 128 B
    assert cost(o["mlp_down"], **P) == (196_992, 35_968, 768)


def test_classic_ffn_is_16_b_s_h_squared(ctx, classic):
    # i = 4h: 2·(2·b·s·h·4h) = 16·b·s·h² matmul FLOPs = 16·6·64² = 393,216
    o = ops(ctx, classic)
    assert sum(op.gemm.flops.value(P) for op in o.values() if op.gemm) == 16 * 6 * 64**2


def test_gated_mlp(ctx, gated):
    o = ops(ctx, gated)
    assert list(o) == ["mlp_gate", "mlp_up", "mlp_act", "mlp_down"]
    # gate and up: [6, 64] @ [64, 160]: 2·6·64·160 = 122,880 FLOPs each
    assert cost(o["mlp_gate"], **P) == cost(o["mlp_up"], **P) == (122_880, 768 + 20_480, 1_920)
    # SiLU(gate)·up on 960 elements: 5 + 1 FLOPs each; reads both (3,840 B), writes 1,920 B
    assert cost(o["mlp_act"], **P) == (5_760, 3_840, 1_920) and o["mlp_act"].kind is Kind.VECTOR
    assert cost(o["mlp_down"], **P) == (122_880, 1_920 + 20_480, 768)


def test_tensor_parallel_splits_the_inner_dimension(ctx, gated):
    # tp = 2: i = 80 per device; down's bias (none here) would stay whole
    o = ops(ctx, gated, tp=2)
    assert o["mlp_up"].gemm.n.value() == 80 and o["mlp_down"].gemm.k.value() == 80
