"""The end of a sub-block: all-reduce under tensor parallelism, then the residual add."""

from __future__ import annotations

from perfest.layers.residual import block_output_ops
from perfest.ops import Kind
from perfest.symbols import b, s
from tests.layers.conftest import cost

P = {"b": 2, "s": 3}


def ops(ctx, model, branches=1, **w):
    c = ctx(model, **w)
    rows = (b * s, c.h)
    outs = tuple(c.act(f"y{k}", *rows) for k in range(branches))
    return block_output_ops("attn", c, c.act("x", *rows), outs)


def test_sequential_block_adds_one_branch(ctx, gated):
    # x + y over 6·64 = 384 elements: 384 adds, reads 2·768 B, writes 768 B
    (op,) = ops(ctx, gated)
    assert op.name == "attn_residual" and cost(op, **P) == (384, 1_536, 768)


def test_parallel_block_adds_two_branches_at_once(ctx, gated):
    # x + attn + mlp: 2 adds per element, reads 3 tensors
    (op,) = ops(ctx, gated, branches=2)
    assert cost(op, **P) == (768, 2_304, 768)


def test_tensor_parallel_all_reduces_the_branch_first(ctx, gated):
    allreduce, residual = ops(ctx, gated, tp=2)
    assert allreduce.kind is Kind.COMM and residual.kind is Kind.VECTOR
    # the [6, 64] bf16 branch, 768 B: a 2-device ring all-reduce sends 2·(1/2)·768 B
    assert allreduce.collective.message.value(P) == 768
    assert allreduce.collective.wire_bytes.value(P) == 768
