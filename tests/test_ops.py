"""Ops from their operands: FLOPs and bytes derived from roles, shapes and dtypes, and the
backward products derived from a forward product. Each case worked by hand."""

from __future__ import annotations

import pytest

from perfest.ops import (
    Axis,
    CollectiveKind,
    Group,
    Kind,
    Role,
    Tensor,
    collective,
    matmul,
    matmul_backward,
)
from perfest.symbols import Sym, b, expr, s

H, I = Sym("h", 64), Sym("i", 256)


def tensor(name, *shape, role=Role.ACTIVATION, size=2.0, dtype="bf16"):
    return Tensor(name, role, tuple(expr(x) for x in shape), dtype, size)


def linear(bias=False, w_size=2.0, w_dtype="bf16"):
    """[b·s, h] @ [h, i] with h = 64, i = 256, bf16 activations."""
    x, y = tensor("x", b * s, H), tensor("y", b * s, I)
    w = tensor("w", H, I, role=Role.WEIGHT, size=w_size, dtype=w_dtype)
    bias_t = tensor("bias", I, role=Role.WEIGHT) if bias else None
    return matmul("up", Group.MLP, x, w, y, m=b * s, k=H, n=I, bias=bias_t)


POINT = {"b": 2, "s": 3}


def test_linear_layer_flops_and_bytes_from_its_operands():
    # m = b·s = 6: 2·6·64·256 = 196,608 FLOPs (+ 6·256 = 1,536 bias adds);
    # reads x 6·64·2 = 768 B, w 64·256·2 = 32,768 B, bias 256·2 = 512 B; writes y 6·256·2 = 3,072 B
    op = linear(bias=True)
    assert op.kind is Kind.MATMUL and op.gemm.flops.text() == "2·b·s·h·i"
    assert op.flops.value(POINT) == 196_608 + 1_536
    assert op.bytes_read.value(POINT) == 768 + 32_768 + 512
    assert op.bytes_written.value(POINT) == 3_072
    assert [t.name for t in op.weights] == ["w", "bias"]
    assert not op.activation_product and op.dequant.value(POINT) == 0


def test_weights_narrower_than_activations_are_unpacked_in_the_kernel():
    # int4 weights under bf16 activations: every weight element (64·256 = 16,384) is unpacked
    op = linear(w_size=0.5, w_dtype="int4")
    assert op.dequant.value(POINT) == 16_384
    assert op.bytes_read.value(POINT) == 768 + 16_384 * 0.5


def test_a_product_of_two_activations_uses_the_attention_rate():
    q, k = tensor("q", 3, 8), tensor("k", 8, 5, role=Role.KV_CACHE)
    op = matmul("scores", Group.ATTENTION, q, k, tensor("p", 3, 5), m=3, k=8, n=5)
    assert op.activation_product and op.weights == ()


def test_grouped_query_products_read_each_kv_head_once():
    # 16 products [3, 8] @ [8, 5] sharing 4 distinct K: read Q 16·3·8·2 = 768 B, K 4·8·5·2 = 320 B
    q, k = tensor("q", 16, 3, 8), tensor("k", 4, 8, 5, role=Role.KV_CACHE)
    op = matmul("s", Group.ATTENTION, q, k, tensor("p", 16, 3, 5), m=3, k=8, n=5, batch=16,
                b_batch=4, write_c=False)  # fmt: skip
    assert op.flops.value() == 2 * 3 * 8 * 5 * 16 == 3_840
    assert (op.bytes_read.value(), op.bytes_written.value()) == (768 + 320, 0)


def test_a_collective_moves_its_wire_bytes_both_ways():
    # all-reduce of a 768 B buffer over 2 devices: 2·(2 − 1)/2·768 = 768 B sent, 768 B received
    op = collective("ar", CollectiveKind.ALL_REDUCE, Axis.TP, 2, tensor("x", 384))
    assert op.collective.wire_bytes.value() == 768
    assert op.bytes_read.value() == op.bytes_written.value() == 768
    assert op.flops.value() == 0 and op.kind is Kind.COMM


def test_linear_backward_is_twice_the_forward_flops():
    # dX = dY·Wᵀ: [6, 256] @ [256, 64] and dW = Xᵀ·dY: [64, 6] @ [6, 256], 196,608 FLOPs each
    op = linear()
    dgrad, wgrad = matmul_backward(op)
    assert dgrad.flops.value(POINT) == wgrad.flops.value(POINT) == 196_608
    total = sum(x.flops.value(POINT) for x in (dgrad, wgrad))
    assert total == 2 * op.flops.value(POINT)
    # dgrad reads dY 6·256·2 + W 64·256·2 = 3,072 + 32,768 B, writes dX 6·64·2 = 768 B
    assert (dgrad.bytes_read.value(POINT), dgrad.bytes_written.value(POINT)) == (35_840, 768)
    # wgrad reads X 768 B + dY 3,072 B, writes dW 64·256·2 = 32,768 B
    assert (wgrad.bytes_read.value(POINT), wgrad.bytes_written.value(POINT)) == (3_840, 32_768)
    assert dgrad.weights == op.weights and wgrad.writes[0].tensor.role is Role.GRADIENT


def test_backward_of_a_biased_layer_reduces_the_bias_gradient():
    *_, bias_grad = matmul_backward(linear(bias=True))
    # db = Σ_rows dY: 6·256 = 1,536 adds, reads dY 3,072 B, writes db 256·2 = 512 B
    assert bias_grad.flops.value(POINT) == 1_536
    assert (bias_grad.bytes_read.value(POINT), bias_grad.bytes_written.value(POINT)) == (
        3_072,
        512,
    )


def test_grouped_query_backward_accumulates_into_the_shared_kv_heads():
    q, k = tensor("q", 16, 3, 8), tensor("k", 4, 8, 5, role=Role.KV_CACHE)
    op = matmul("s", Group.ATTENTION, q, k, tensor("p", 16, 3, 5), m=3, k=8, n=5, batch=16,
                b_batch=4)  # fmt: skip
    d_q, d_k = matmul_backward(op)
    assert d_q.writes[0].elements.value() == 16 * 3 * 8  # one dQ per product
    assert d_k.writes[0].elements.value() == 4 * 8 * 5  # dK summed over each group


def test_a_product_saves_its_activation_operands_for_backward():
    assert [a.tensor.name for a in linear().saves] == ["x"]  # the weight is kept anyway
    with pytest.raises(TypeError, match="not a matrix product"):
        matmul_backward(collective("ar", CollectiveKind.ALL_REDUCE, Axis.TP, 2, tensor("x", 4)))
