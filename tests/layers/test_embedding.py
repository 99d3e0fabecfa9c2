"""Embedding, final norm and LM head worked by hand at b = 2, s = 3 (bf16)."""

from __future__ import annotations

from perfest.layers.embedding import embedding_ops, head_ops, token_table
from perfest.ops import Kind, Role
from perfest.symbols import b, s
from tests.layers.conftest import cost

P = {"b": 2, "s": 3, "s_logits": 1}


def embed(ctx, model, **w):
    c = ctx(model, **w)
    return {op.name: op for op in embedding_ops(c, token_table(c), c.act("x", b * s, c.h))}


def head(ctx, model, **w):
    c = ctx(model, **w)
    return {op.name: op for op in head_ops(c, token_table(c), c.act("x", b * s, c.h))}


def test_token_embedding_gathers_rows(ctx, gated):
    # b·s = 6 rows of h = 64 in bf16 (768 B) and 6 int64 ids (48 B); writes 768 B; no FLOPs
    op = embed(ctx, gated)["embed"]
    assert cost(op, **P) == (0, 768 + 48, 768) and op.kind is Kind.MEMORY


def test_learned_positions_add_a_second_table(ctx, classic):
    # 6·64 = 384 adds; reads token and position rows (768 B each) and the ids (48 B)
    op = embed(ctx, classic)["embed"]
    assert cost(op, **P) == (384, 768 + 768 + 48, 768)
    assert {w.name for w in op.weights} == {"embed.tokens", "embed.positions"}


def test_lm_head_over_the_last_position(ctx, gated):
    o = head(ctx, gated)
    # final norm over all b·s = 6 rows: 384 elements · 4 FLOPs
    assert cost(o["final_norm"], **P)[0] == 1_536
    # [b·s_logits, h] @ [h, V] = [2, 64] @ [64, 512]: 131,072 FLOPs; reads 256 + 65,536 B;
    # writes 2·512·2 = 2,048 B of logits
    assert cost(o["lm_head"], **P) == (131_072, 256 + 65_536, 2_048)
    assert cost(o["lm_head"], **{**P, "s_logits": 3})[0] == 3 * 131_072  # logits="all"


def test_a_tied_head_reads_the_embedding_table(ctx, classic, gated):
    c = ctx(classic)
    table = token_table(c)
    (lm_head,) = (op for op in head_ops(c, table, c.act("x", b * s, c.h)) if op.gemm)
    assert lm_head.gemm.b is table and table.role is Role.WEIGHT
    untied = next(op for op in head(ctx, gated).values() if op.gemm)
    assert untied.gemm.b.name == "lm_head.weight"


def test_tensor_parallel_splits_the_vocabulary_and_gathers_logits(ctx, gated):
    o, e = head(ctx, gated, tp=2), embed(ctx, gated, tp=2)
    assert o["lm_head"].gemm.n.value() == 256  # 512 / 2 rows of the table per device
    # all-gather of the full logits, 2·1·512·2 = 2,048 B: each device sends half
    assert o["logits_allgather"].collective.wire_bytes.value(P) == 1_024
    # the embedding's partial rows (768 B) are all-reduced: 2·(2 − 1)/2·768 = 768 B
    assert e["embed_allreduce"].collective.wire_bytes.value(P) == 768
