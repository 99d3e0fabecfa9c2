"""Encoder layers worked by hand: a BERT-Base layer at b = 1, s = 128; BERT's embeddings and
heads; T5's cross-attention K/V projection (once, in prefill) and relative position bias."""

from __future__ import annotations

import perfest
from perfest.graph import build_graph
from perfest.layers import Ctx
from perfest.layers.context import Phase
from perfest.ops import Group, Kind, Role
from perfest.specs import Workload
from tests.layers.conftest import cost

BERT = perfest.load_model("bert-base-uncased")
T5 = perfest.load_model("t5-base")
P = {"b": 1, "s": 128, "t": 128, "s_logits": 128, "s_enc": 128}


def segment(model, name, phase=Phase.PREFILL, **w):
    graph = build_graph(Ctx.of(model, Workload(**w), phase))
    return next(seg for seg in graph.segments if seg.name == name)


def ops(model, name, phase=Phase.PREFILL, **w):
    return {op.name: op for op in segment(model, name, phase, **w).ops}


def test_bert_base_layer_flops_by_hand():
    """One BERT-Base encoder layer, b = 1, s = 128 (h = 768, i = 3072, 12 heads of 64)."""
    o = ops(BERT, "encoder")
    flops = {name: op.flops.value(P) for name, op in o.items()}
    # qkv   2·128·768·2304 = 452,984,832 + bias 128·2304 = 294,912
    assert flops["qkv_proj"] == 452_984_832 + 294_912
    # q·kᵀ and p·v: 2·12·128·128·64 = 25,165,824 each (bidirectional: all 128 keys, no mask)
    assert flops["attn_scores"] == flops["attn_values"] == 25_165_824
    # softmax 5·12·128·128 = 983,040
    assert flops["attn_softmax"] == 983_040
    # out   2·128·768·768 = 150,994,944 + bias 128·768 = 98,304
    assert flops["out_proj"] == 150_994_944 + 98_304
    # up and down 2·128·768·3072 = 603,979,776 each, + bias 393,216 (up) and 98,304 (down)
    assert flops["mlp_up"] == 603_979_776 + 393_216
    assert flops["mlp_down"] == 603_979_776 + 98_304
    # GELU 8·128·3072 = 3,145,728; LayerNorms 7·128·768 = 688,128; residual adds 98,304
    assert flops["mlp_act"] == 3_145_728
    assert flops["attn_norm"] == flops["mlp_norm"] == 688_128
    assert flops["attn_residual"] == flops["mlp_residual"] == 98_304
    # matmuls: 452,984,832 + 2·25,165,824 + 150,994,944 + 2·603,979,776 = 1,862,270,976,
    # the classic block's 24·b·s·h²·(1 + s/(6h)) = 1,811,939,328 · (1 + 128/4608)
    matmuls = sum(op.gemm.flops.value(P) for op in o.values() if op.gemm is not None)
    assert matmuls == 1_862_270_976 == 24 * 128 * 768**2 * (6 * 768 + 128) // (6 * 768)


def test_bert_layer_is_post_norm_without_a_kv_cache():
    names = [op.name for op in segment(BERT, "encoder").ops]
    assert names == [
        "qkv_proj", "attn_scores", "attn_softmax", "attn_values", "out_proj", "attn_residual",
        "attn_norm", "mlp_up", "mlp_act", "mlp_down", "mlp_residual", "mlp_norm",
    ]  # fmt: skip
    graph = build_graph(Ctx.of(BERT, Workload()))
    assert not graph.tensors(Role.KV_CACHE) and graph.kv_bytes_per_token() == 0


def test_bert_attention_bytes_by_hand():
    o = ops(BERT, "encoder")
    # qkv (bf16): reads x 128·768·2 = 196,608 B, W 768·2304·2 = 3,538,944 B, bias 4,608 B;
    # writes q, k, v 128·2304·2 = 589,824 B
    assert cost(o["qkv_proj"], **P)[1:] == (196_608 + 3_538_944 + 4_608, 589_824)
    # flash q·kᵀ: reads Q 12·128·64·2 = 196,608 B and K 196,608 B; the scores stay on chip
    assert cost(o["attn_scores"], **P)[1:] == (393_216, 0)
    eager = ops(BERT, "encoder", attention="eager")
    # eager: the 12·128·128 scores written, 393,216 B in bf16
    assert cost(eager["attn_scores"], **P)[1:] == (393_216, 393_216)


def test_bert_embeddings_sum_three_tables_and_norm():
    o = ops(BERT, "embedding")
    # rows of tokens, positions, token types: 3 · 128·768·2 = 589,824 B, ids 2 · 128·8 B;
    # 2 adds per element: 196,608 FLOPs; writes the sum 196,608 B
    assert cost(o["embed"], **P) == (196_608, 589_824 + 2_048, 196_608)
    # LayerNorm 7·98,304 = 688,128 FLOPs, reads the sum and γ, β (2·768·2 B), writes x
    assert cost(o["embed_norm"], **P) == (688_128, 196_608 + 3_072, 196_608)
    assert o["embed_norm"].group is Group.EMBEDDING


def test_pooler_reads_one_row_per_sequence():
    # b = 4: [4, 768] @ [768, 768]: 2·4·768² = 4,718,592 + bias 3,072 FLOPs; reads 4 rows
    # (6,144 B), W 1,179,648 B and the bias 1,536 B; tanh 5·4·768 = 15,360 FLOPs
    o = ops(BERT, "head")
    p = {**P, "b": 4}
    assert cost(o["pooler"], **p) == (4_718_592 + 3_072, 6_144 + 1_179_648 + 1_536, 6_144)
    assert cost(o["pooler_act"], **p)[0] == 15_360


def test_mlm_head_scores_every_position_with_the_tied_table():
    o = ops(BERT, "head", head="mlm")
    assert list(o) == ["mlm_transform", "mlm_act", "mlm_norm", "mlm_decoder"]
    # decoder: 2·128·768·30522 = 6,000,869,376 + bias adds 128·30522 = 3,906,816
    assert o["mlm_decoder"].flops.value(P) == 6_000_869_376 + 3_906_816
    assert o["mlm_decoder"].gemm.b.name == "embed.tokens"  # tied to the word embedding
    assert all(op.group is Group.LM_HEAD for op in o.values())


def test_cross_kv_projection_runs_once_in_prefill():
    # t5-base, b = 2, s_enc = 10: [20, 768] @ [768, 1536] = 2·20·768·1536 = 47,185,920 FLOPs
    # per layer; it writes the cross cache 20·1536·2 = 61,440 B (bf16)
    p = {"b": 2, "s": 1, "t": 1, "s_logits": 1, "s_enc": 10}
    prefill = ops(T5, "decoder", Phase.PREFILL)
    decode = ops(T5, "decoder", Phase.DECODE)
    kv = prefill["cross_kv_proj"]
    assert cost(kv, **p) == (47_185_920, 20 * 768 * 2 + 768 * 1536 * 2, 61_440)
    assert kv.writes[0].tensor.role is Role.KV_CACHE
    assert "cross_kv_proj" not in decode and "cross_q_proj" in decode
    # a decode step reads the cached K once per kv head: 2·12·64·10·2 = 30,720 B (+ its q)
    assert cost(decode["cross_scores"], **p)[1] == 2 * 12 * 64 * 2 + 30_720


def test_cross_cache_memory_by_hand():
    # t5-base: 2·L_dec·s_enc·n_kv·d per sequence = 2·12·512·12·64 = 9,437,184 values
    # = 18,874,368 B in bf16; the self-attention cache holds 1 + 64 tokens: 2·12·65·768·2 B
    est = perfest.estimate("t5-base", "h100-sxm", batch=3, input_len=512, output_len=64)
    assert est.memory.kv_cache_bytes == 3 * (18_874_368 + 2 * 12 * 65 * 768 * 2)


def test_relative_bias_bytes_and_flops_by_hand():
    p = {"b": 2, "s": 10, "t": 10, "s_logits": 10, "s_enc": 10}
    bias = ops(T5, "position_bias", Phase.ENCODE)["position_bias"]
    # 14 FLOPs to bucket each of 10·10 pairs (bidirectional); reads the [32, 12] table
    # (768 B), writes the bias [12, 10, 10] (2,400 B)
    assert cost(bias, **p) == (1_400, 768, 2_400)
    causal = ops(T5, "position_bias", Phase.DECODE)["position_bias"]
    assert cost(causal, **{**p, "s": 1}) == (12 * 10, 768, 240)  # one query over 10 keys
    # each layer adds it to the 2·12·10·10 = 2,400 scores: flash reads the bias once
    add = ops(T5, "encoder", Phase.ENCODE)["attn_bias"]
    assert cost(add, **p) == (2_400, 2_400, 0) and add.kernels == 0
    eager = ops(T5, "encoder", Phase.ENCODE, attention="eager")["attn_bias"]
    assert cost(eager, **p) == (2_400, 2_400 + 4_800, 4_800) and eager.kernels == 1


def test_t5_head_scales_a_tied_head_only():
    head = ops(T5, "head", Phase.DECODE)
    # d_model^-0.5 scale: one multiply per element of b·s_logits·h = 2·1·768
    assert head["head_scale"].flops.value({"b": 2, "s_logits": 1}) == 1_536
    assert head["lm_head"].gemm.b.name == "embed.tokens"
    flan = ops(perfest.load_model("flan-t5-xl"), "head", Phase.DECODE)
    assert "head_scale" not in flan and flan["lm_head"].gemm.b.name == "decoder.lm_head.weight"


def test_t5_has_no_biases_and_rms_norms():
    o = ops(T5, "decoder", Phase.PREFILL)
    assert all(len(op.weights) == 1 for op in o.values() if op.kind is Kind.MATMUL and op.weights)
    # RMS-style: 4 FLOPs per element, γ only (h·2 B)
    assert cost(o["cross_norm"], **{**P, "s": 1})[0] == 4 * 768
