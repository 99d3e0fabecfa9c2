"""Phases, memory, tensor parallelism and quantization, with hand-derived cases."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

import perfest
from perfest.errors import SpecError, UnsupportedError
from perfest.results import NoteKind


def test_generation_is_prefill_plus_decode_steps():
    est = perfest.estimate("llama-2-7b", "a100-80gb-sxm", batch=4, input_len=256, output_len=64)
    g = est.generation
    assert g.ttft_s == est.prefill.time_s and g.tpot_s == est.decode.time_s
    assert g.e2e_latency_s == pytest.approx(g.ttft_s + 63 * g.tpot_s)
    assert g.output_tokens_per_s == pytest.approx(4 * 64 / g.e2e_latency_s)
    assert est.decode.context_len == 256 + 32  # the mean step's context


def test_prediction_never_beats_roofline():
    est = perfest.estimate("llama-3-8b", "h100-sxm", batch=16)
    for phase in (est.prefill, est.decode):
        assert phase.time_s >= phase.roofline_time_s
        assert all(r.time_s >= r.roofline_time_s for r in phase.layers)


def test_decode_batch_1_is_memory_bound_and_near_weights_over_bandwidth():
    # A step reads every weight but the embedding table (one row is gathered):
    # (6,738,415,616 − 32,000·4096)·2 B = 13.21 GB at 2.039 TB/s = 6.48 ms, plus a 129-token
    # KV cache (67.6 MB, 0.03 ms): the pure bound of a step.
    est = perfest.estimate("llama-2-7b", "a100-80gb-sxm", batch=1, input_len=128, output_len=2)
    assert est.decode.bound == "memory"
    expected = ((6_738_415_616 - 32_000 * 4096) * 2 + 129 * 524_288) / 2.039e12
    assert est.generation.roofline_tpot_s == pytest.approx(expected, rel=0.01)


def test_large_prefill_is_compute_bound():
    est = perfest.estimate("llama-2-7b", "a100-80gb-sxm", batch=8, input_len=2048)
    assert est.prefill.bound == "compute"


def test_kv_cache_is_half_a_mebibyte_per_token_for_llama2_7b():
    # 2 (K, V) · 32 layers · 32 heads · 128 dims · 2 bytes = 524,288 B per token
    est = perfest.estimate("llama-2-7b", "a100-80gb-sxm", batch=3, input_len=1000, output_len=24)
    assert est.memory.kv_cache_bytes == 3 * 1024 * 524_288


def test_gqa_shrinks_the_kv_cache():
    # Llama-3-8B: 8 kv heads → 2·32·8·128·2 = 131,072 B per token
    est = perfest.estimate("llama-3-8b", "h100-sxm", batch=1, input_len=1000, output_len=24)
    assert est.memory.kv_cache_bytes == 1024 * 131_072


def test_weights_in_bf16_are_two_bytes_per_parameter():
    est = perfest.estimate("mistral-7b", "h100-sxm")
    assert est.memory.weights_bytes == 2 * 7_241_732_096


def test_max_batch_is_the_boundary():
    est = perfest.estimate("llama-2-13b", "a100-40gb-sxm", input_len=2048, output_len=512)
    n = est.memory.max_batch
    assert n > 0
    assert perfest.estimate(
        "llama-2-13b", "a100-40gb-sxm", batch=n, input_len=2048, output_len=512
    ).memory.fits
    too_many = perfest.estimate(
        "llama-2-13b", "a100-40gb-sxm", batch=n + 1, input_len=2048, output_len=512
    )
    assert not too_many.memory.fits and too_many.warnings[0].kind is NoteKind.MEMORY
    assert too_many.warnings[0].text.startswith("memory:")


def test_model_too_big_reports_rather_than_raises():
    est = perfest.estimate("llama-2-70b", "l4")
    assert not est.memory.fits and est.memory.max_batch == 0


def test_tensor_parallel_splits_weights_and_adds_two_all_reduces_per_layer():
    one = perfest.estimate("llama-2-70b", "h100-sxm", batch=8)
    four = perfest.estimate("llama-2-70b", "h100-sxm", batch=8, tp=4)
    # every weight split in 4 but the norms (2·80 + 1)·8192, which each device holds whole
    norms = (2 * 80 + 1) * 8192 * 2
    assert four.memory.weights_bytes == (one.memory.weights_bytes - norms) / 4 + norms
    rows = {r.name: r for r in four.decode.layers}
    assert rows["attn_allreduce"].count == rows["mlp_allreduce"].count == 80
    assert rows["attn_allreduce"].bound == "communication"
    assert four.decode.comm_time_s > 0
    assert four.decode.time_s < one.decode.time_s


def test_parallel_block_needs_one_all_reduce_per_layer():
    est = perfest.estimate("gpt-j-6b", "a100-80gb-sxm", tp=2)
    names = [r.name for r in est.decode.layers]
    assert "block_allreduce" in names and "attn_allreduce" not in names


def test_tp_must_divide_heads():
    with pytest.raises(SpecError, match="tp: 3 does not divide the 32 attention heads"):
        perfest.estimate("llama-2-7b", "h100-sxm", tp=3)


def test_dtype_the_device_lacks():
    with pytest.raises(UnsupportedError, match="no fp8"):
        perfest.estimate("llama-2-7b", "a100-80gb-sxm", dtype="fp8")


def test_fp8_halves_weight_traffic_on_hopper():
    bf16 = perfest.estimate("llama-2-7b", "h100-sxm", batch=1)
    fp8 = perfest.estimate("llama-2-7b", "h100-sxm", batch=1, dtype="fp8")
    assert fp8.memory.weights_bytes == pytest.approx(bf16.memory.weights_bytes / 2)
    assert fp8.decode.time_s < bf16.decode.time_s


def test_int4_weight_only_wins_small_batch_and_loses_edge_at_large_batch():
    def speedup(batch):
        kw = dict(batch=batch, input_len=512, output_len=128)
        base = perfest.estimate("llama-2-7b", "a100-80gb-sxm", **kw).decode.time_s
        quant = perfest.estimate("llama-2-7b", "a100-80gb-sxm", weight_dtype="int4", **kw)
        return base / quant.decode.time_s

    assert speedup(1) > 1.5
    assert speedup(256) < speedup(1)


def test_int4_keeps_embeddings_and_head_in_activation_dtype():
    m = perfest.load_model("llama-2-7b")
    est = perfest.estimate(m, "a100-80gb-sxm", weight_dtype="int4")
    embed_and_head = 2 * m.V * m.h + (2 * m.L + 1) * m.h
    block = perfest.count_parameters(m) - embed_and_head
    # int4 with an fp16 scale and zero per group of 128: 0.5 + 4/128 bytes per weight
    assert est.memory.weights_bytes == block * (0.5 + 4 / 128) + embed_and_head * 2


def test_bad_workload_fields_name_the_field():
    with pytest.raises(SpecError, match="^batch: "):
        perfest.estimate("gpt2", "l4", batch=0)
    with pytest.raises(SpecError, match="^compute_efficiency: "):
        perfest.estimate("gpt2", "l4", compute_efficiency=1.5)
    with pytest.raises(SpecError, match="^colour: unknown field"):
        perfest.estimate("gpt2", "l4", colour="red")


def test_eager_attention_moves_the_score_matrix():
    flash = perfest.estimate("llama-2-7b", "h100-sxm", input_len=2048)
    eager = perfest.estimate("llama-2-7b", "h100-sxm", input_len=2048, attention="eager")
    extra = eager.prefill.bytes - flash.prefill.bytes
    # scores written and read back, probabilities written and read: 4·n_h·s²·2 B per layer ≥
    assert extra >= 4 * 32 * 2048**2 * 2 * 32
    assert eager.prefill.time_s > flash.prefill.time_s


def test_result_is_frozen_and_json_has_the_documented_keys():
    est = perfest.estimate("gpt2", "l4")
    with pytest.raises(FrozenInstanceError):
        est.parameters = 1
    d = est.to_dict()
    assert {"parameters", "memory", "prefill", "decode", "generation"} <= set(d)
    assert {
        "weights_bytes",
        "kv_cache_bytes",
        "activation_bytes",
        "total_bytes",
        "capacity_bytes",
        "fits",
    } <= set(d["memory"])
    for phase in ("prefill", "decode"):
        assert {"flops", "bytes", "intensity", "time_s", "bound", "layers"} <= set(d[phase])
        assert {"name", "flops", "bytes", "intensity", "time_s", "bound"} <= set(
            d[phase]["layers"][0]
        )
    assert {"ttft_s", "tpot_s", "e2e_latency_s", "output_tokens_per_s"} <= set(d["generation"])


def test_small_model_decode_is_launch_bound():
    # GPT-2 small: 135 kernels × 4 µs = 540 µs of launches against ~70 µs of weight reads on an
    # H100, so the launches, not the memory, bound a decode step.
    est = perfest.estimate("gpt2", "h100-sxm", batch=1)
    assert est.decode.bound == "overhead"
    assert est.decode.overhead_s == pytest.approx(135 * 4e-6)
    assert perfest.estimate("llama-2-7b", "h100-sxm", batch=1).decode.bound == "memory"


def test_fp8_is_w8a8_linear_layers_with_16_bit_attention():
    # fp8 runs the weight matmuls at H100's 1,978.9 TFLOP/s, but q·kᵀ and p·v (activation ×
    # activation) at the bf16 989.4 TFLOP/s, as vLLM and TensorRT-LLM do.
    est = perfest.estimate("llama-2-7b", "h100-sxm", dtype="fp8", input_len=4096)
    rows = {r.name: r for r in est.prefill.layers}
    scores, qkv = rows["attn_scores"], rows["qkv_proj"]
    # scores: 2·32 heads·4096·4096·128·32 layers = 4.40 TFLOP → 4.45 ms at bf16 rate
    assert scores.flops == 2 * 32 * 4096 * 4096 * 128 * 32
    assert scores.roofline_time_s == pytest.approx(scores.flops / 989.4e12)
    assert qkv.roofline_time_s == pytest.approx(qkv.flops / 1978.9e12)


def test_a_sliding_window_caps_the_kv_cache_and_the_context():
    # mistral-7b (window 4096): 128 KiB of K and V per token (2·32·8·128·2 B), for at most
    # 4096 tokens: a 6000 + 2000-token sequence holds 4096·131,072 B = 0.537 GB, not 1.05 GB
    long = perfest.estimate("mistral-7b", "h100-sxm", input_len=6000, output_len=2000)
    assert long.memory.kv_cache_bytes == 4096 * 131_072
    # and a decode step at context 7000 reads 4096 keys per layer, as one at 4096 does
    at = perfest.estimate("mistral-7b", "h100-sxm", input_len=4095, output_len=2)
    assert long.decode.bytes == pytest.approx(at.decode.bytes)
    # within the window nothing changes from full attention
    llama = perfest.estimate("mistral-7b", "h100-sxm", input_len=1000, output_len=100)
    assert llama.memory.kv_cache_bytes == 1100 * 131_072


def test_gpt_oss_windows_half_its_layers():
    # gpt-oss-20b: 24 layers, 12 windowed at 128 tokens; K and V 2·8·64·2 = 2,048 B per
    # token per layer: at 1,000 tokens 12·1000·2048 + 12·128·2048 = 27,721,728 B per sequence
    est = perfest.estimate("gpt-oss-20b", "h100-sxm", input_len=900, output_len=100)
    assert est.memory.kv_cache_bytes == 12 * 1000 * 2048 + 12 * 128 * 2048


def test_moe_decode_reads_only_the_touched_experts():
    # qwen3-30b-a3b: a one-token decode step touches 8 of 128 experts per layer, so it reads
    # far less than the 61 GB of weights: ≈ 2·3.35 G active parameters
    one = perfest.estimate("qwen3-30b-a3b", "h100-sxm", batch=1, input_len=16, output_len=2)
    assert one.decode.bytes < 2 * 3.4e9 + 1e8
    many = perfest.estimate("qwen3-30b-a3b", "h100-sxm", batch=256, input_len=16, output_len=2)
    assert many.decode.bytes > 2 * 30e9  # 256·8 = 2,048 assignments touch all 128


def test_data_parallel_attention_holds_a_groups_caches():
    # deepseek-v3 on 8 devices, dp-attention: each holds ⌈16/8⌉ = 2 sequences' latent caches;
    # under tp 8 every device holds all 16 (the latent is not split by head)
    dp = perfest.estimate("deepseek-v3", "h200-sxm", batch=16, ep=8, dp_attention=True)
    tp = perfest.estimate("deepseek-v3", "h200-sxm", batch=16, tp=8, ep=8)
    assert tp.memory.kv_cache_bytes == 8 * dp.memory.kv_cache_bytes
    assert dp.memory.weights_bytes > tp.memory.weights_bytes  # attention weights replicated
    assert any(r.op.name == "expert_dispatch" for r in dp.decode.rows)
