"""Norms worked by hand over b·s = 6 rows of h = 64 (bf16)."""

from __future__ import annotations

from perfest.layers.norm import norm_op
from perfest.symbols import b, s
from tests.layers.conftest import cost

P = {"b": 2, "s": 3}


def op(ctx, model):
    c = ctx(model)
    return norm_op("n", c, c.act("x", b * s, c.h), c.act("y", b * s, c.h))


def test_rmsnorm(ctx, gated):
    # 6·64 = 384 elements, 4 FLOPs each (square, sum, scale, γ); reads x 768 B and γ 128 B
    assert cost(op(ctx, gated), **P) == (1_536, 768 + 128, 768)


def test_layernorm(ctx, classic):
    # 384 elements, 7 FLOPs each; reads x 768 B, γ and β 128 B each
    n = op(ctx, classic)
    assert cost(n, **P) == (2_688, 768 + 256, 768)
    assert [w.name for w in n.weights] == ["n.γ", "n.β"]


def test_norm_weights_are_whole_on_every_device(ctx, gated):
    c = ctx(gated, tp=4)
    n = norm_op("n", c, c.act("x", b * s, c.h), c.act("y", b * s, c.h))
    assert n.weights[0].elements.value() == 64
