"""The graph: segments, and the one owner of what a device holds. Memory reads the weights and
KV cache off the ops' own operands, so ops and memory cannot disagree; these tests hold that
at every tensor-parallel degree for every catalogued model, and check one case by hand."""

from __future__ import annotations

import pytest

import perfest
from perfest.graph import build_graph
from perfest.inference import decode_point
from perfest.layers import Ctx
from perfest.ops import Role
from perfest.specs import Workload

TP = (1, 2, 4, 8, 16)


def decoder_graph(name, **w):
    model = perfest.load_model(name)
    return model, build_graph(Ctx.of(model, Workload(**w)))


def test_a_decoder_is_embedding_then_L_blocks_then_head():
    model, graph = decoder_graph("llama-2-7b")
    assert [(seg.name, seg.count) for seg in graph.segments] == [
        ("embedding", 1),
        ("decoder", 32),
        ("head", 1),
    ]
    assert [op.name for op in graph.segments[1].ops][:3] == ["attn_norm", "qkv_proj", "rope"]


#: every catalogued model at every degree in TP that divides its heads
LAYOUTS = [
    (name, tp)
    for name in perfest.list_models()
    if perfest.load_model(name).architecture == "decoder"  # encoders: tests/test_encoders.py
    for tp in TP
    if perfest.load_model(name).n_h % tp == 0
]


@pytest.mark.parametrize("name, tp", LAYOUTS)
def test_memory_weights_are_the_weights_the_ops_read(name, tp):
    model = perfest.load_model(name)
    fusion = ("none", "default", "full")[tp % 3]  # every fusion level on some layouts
    w = Workload(tp=tp, batch=3, input_len=100, output_len=20, fusion=fusion)
    est = perfest.estimate(model, "h100-sxm", w)
    decode = est.decode.rows
    # 1. every weight tensor any op reads, once per layer that holds it, is what memory counts
    held: dict = {}
    for row in decode:
        for access in row.op.reads:
            if access.tensor.role is Role.WEIGHT:
                held[access.tensor] = row.count
    assert est.memory.weights_bytes == sum(n * t.nbytes.value() for t, n in held.items())
    # 2. a decode step reads every matmul weight whole, at the widths its tensor declares: the
    #    op's own access (k·n from its dimensions) and the tensor's shape agree; of a bank of
    #    routed experts it reads the touched ones, e_t of the E_l held
    env = est.decode.plan.env(decode_point(w))
    for row in decode:
        g = row.op.gemm
        if g is not None and g.b.role is Role.WEIGHT:
            read = next(a for a in row.op.reads if a.tensor is g.b)
            share = env["e_t"] / g.b.shape[0].value() if g.b.routed else 1
            assert read.elements.value(env) == pytest.approx(g.b.elements.value() * share)


def test_kv_heads_replicated_past_their_count_are_held_on_every_device():
    # llama-3-8b, tp = 16 (h = 4096, 32 heads of d = 128, 8 kv heads, i = 14336, V = 128256):
    # a device holds 32/16 = 2 query heads and ceil(8/16) = 1 kv head, so per layer
    #   qkv  4096·(2 + 2·1)·128   =  2,097,152     (not 4096·48·128/16 = 1,572,864)
    #   out  2·128·4096           =  1,048,576
    #   mlp  3·4096·14336/16      = 11,010,048
    #   norms 2·4096              =      8,192     (replicated)
    # → 14,163,968 per layer · 32 = 453,246,976, plus the embedding and untied head
    # ceil(128256/16) = 8,016 rows · 4096 each = 32,833,536, and the final norm 4,096:
    # 518,918,144 parameters = 1,037,836,288 B in bf16. The decode step's qkv reads 0.134 GB.
    est = perfest.estimate("llama-3-8b", "h100-sxm", tp=16)
    assert est.memory.weights_bytes == 1_037_836_288
    qkv = next(r for r in est.decode.rows if r.op.name == "qkv_proj")
    assert qkv.bytes_read - 32 * 1 * 4096 * 2 == 2_097_152 * 32 * 2  # weights + the one row x


@pytest.mark.parametrize("tp", TP)
def test_kv_cache_per_token_is_2_L_n_kv_d(tp):
    # llama-3-8b: 2·32·ceil(8/tp)·128·2 B per token (kv heads replicated past 8 devices)
    model, graph = decoder_graph("llama-3-8b", tp=tp)
    assert graph.kv_bytes_per_token() == 2 * 32 * -(-8 // tp) * 128 * 2


def test_a_tied_embedding_is_held_once():
    # GPT-2's LM head reads the token table: one tensor, held once (parameters 124,439,808)
    model, graph = decoder_graph("gpt2")
    weights = graph.tensors(Role.WEIGHT)
    assert sum(1 for t in weights if t.name == "embed.tokens") == 1
    assert graph.parameters() == 124_439_808 == perfest.count_parameters(model)


#: every catalogued mixture of experts under expert-parallel layouts that fit it
EP_LAYOUTS = [
    (name, layout)
    for name in perfest.list_models()
    if perfest.load_model(name).moe
    for layout in ({"tp": 2, "ep": 2}, {"tp": 8, "ep": 4}, {"tp": 8, "ep": 8},
                   {"ep": 8, "dp_attention": True}, {"tp": 2, "ep": 8, "dp_attention": True})
    if perfest.load_model(name).num_experts % layout["ep"] == 0
]  # fmt: skip


@pytest.mark.parametrize("name, layout", EP_LAYOUTS)
def test_memory_weights_are_the_weights_the_ops_read_under_expert_parallelism(name, layout):
    est = perfest.estimate(name, "h200-sxm", batch=3, input_len=100, output_len=20, **layout)
    held = {a.tensor: r.count for r in est.decode.rows for a in r.op.reads
            if a.tensor.role is Role.WEIGHT}  # fmt: skip
    assert est.memory.weights_bytes == sum(n * t.nbytes.value() for t, n in held.items())
    # a device holds E/ep experts of every routed bank
    model = perfest.load_model(name)
    banks = [t for t in held if t.routed and t.name.endswith("weight")]
    assert banks and all(t.shape[0].value() == model.num_experts // layout["ep"] for t in banks)


def test_expert_parallel_weights_by_hand():
    # mixtral-8x7b, tp 8 and ep 8: a device holds 1 of the 8 experts of each layer, whole:
    # 3·4096·14336 = 176,160,768 per layer; attention 1/8 of the heads (4 of 32, and 1 of the
    # 8 kv heads): 4096·(4 + 2·1)·128 + 4·128·4096 = 5,242,880; router 4096·8 = 32,768 and
    # 2 norms 8,192 (replicated) → 181,444,608 · 32 = 5,806,227,456; embedding and head
    # 2·4000·4096 = 32,768,000 and the final norm 4,096: 5,838,999,552 · 2 B = 11,677,999,104
    est = perfest.estimate("mixtral-8x7b", "h100-sxm", tp=8, ep=8)
    assert est.memory.weights_bytes == 11_677_999_104
