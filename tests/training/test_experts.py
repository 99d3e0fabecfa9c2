"""Mixtures of experts in training, each case worked by hand: the layer's ops and their backward,
the experts touched, expert parallelism's all-to-alls, the stages' mix of layer kinds, and the
memory of a small expert-parallel layout."""

from __future__ import annotations

import pytest

import perfest
from perfest.ops import Axis, CollectiveKind
from perfest.specs import ModelConfig
from perfest.training.evaluate import stage_counts
from perfest.training.step import EMB, HEAD, LAYER, Shape, build_parts, layer_key, training_ctx

P = {"b": 2, "s": 3, "t": 3, "s_logits": 3}  # b·s = 6 tokens
MOE = layer_key((True, False))


@pytest.fixture
def moe() -> ModelConfig:
    """Mixtral's shape, tiny: h = 64, 8 heads of d = 8, 2 kv heads; E = 4 experts of i_e = 32,
    top k = 2 by softmax, 4 layers, untied embedding and head."""
    return ModelConfig(
        name="tiny-moe",
        vocab_size=512,
        hidden_size=64,
        num_layers=4,
        num_heads=8,
        num_kv_heads=2,
        intermediate_size=32,
        max_position_embeddings=256,
        num_experts=4,
        experts_per_token=2,
    )


def layer(model, ep=1, etp=1, tp=1, sp=False):
    return build_parts(Shape(model, "bf16", "fp32", True, tp, 1, sp, ep=ep, etp=etp))[MOE]


def op(ops, name):
    return next(o for o in ops if o.name == name)


def cost(o):
    return o.flops.value(P), o.bytes_read.value(P), o.bytes_written.value(P)


def test_router_and_its_backward(moe):
    part = layer(moe)
    # [6, 64] @ [64, 4]: 2·6·64·4 = 3,072 FLOPs; its dX and dW the same each
    assert op(part.forward, "router").flops.value(P) == 3_072
    assert op(part.backward.ops, "router.dgrad").flops.value(P) == 3_072
    assert op(part.backward.ops, "router.wgrad").flops.value(P) == 3_072
    # softmax's backward, 4 per score of [6, 4]: 96 FLOPs; reads the kept scores (48 B), the
    # k = 2 weights' gradients and the expert ids (6·2·2 = 24 B each); writes dlogits (48 B)
    assert cost(op(part.backward.ops, "router_topk.bwd")) == (96, 48 + 24 + 24, 48)


def test_combine_and_permute_backward(moe):
    bwd = layer(moe).backward.ops
    # combine: 3 FLOPs per element of the T·k rows [12, 64] = 768 → 2,304; reads dy [6, 64]
    # (768 B), the routed rows (1,536 B) and the weights and ids [6, 4] (48 B); writes
    # d routed (1,536 B) and the k weights' gradients [6, 2] (24 B)
    assert cost(op(bwd, "expert_combine.bwd")) == (2_304, 768 + 1_536 + 48, 1_536 + 24)
    # permute: the k = 2 copies of each token summed, k − 1 = 1 add per element of [6, 64];
    # reads the copies' gradients (1,536 B), writes dx (768 B)
    assert cost(op(bwd, "moe_permute.bwd")) == (384, 1_536, 768)


def test_every_assignment_runs_through_its_experts(moe):
    # e_t·m_e = T·k = 12 rows: expert_gate 2·12·64·32 = 49,152 FLOPs, 2× that in backward
    part = layer(moe)
    assert op(part.forward, "expert_gate").flops.value(P) == pytest.approx(49_152, rel=1e-12)
    grads = [o for o in part.backward.ops if o.name.startswith("expert_gate.")]
    assert sum(o.flops.value(P) for o in grads) == pytest.approx(2 * 49_152, rel=1e-12)


def test_every_expert_is_touched_at_training_sizes():
    # DeepSeek-V3, ep = 8: a device holds E_l = 256/8 = 32 experts and sees the tokens of its 8
    # ep ranks, 8·4096 of one 4096-token sequence; each misses an expert with probability
    # 1 − 8/256, so e_t = 32·(1 − (31/32)^32768) = 32 to double precision
    from perfest.layers.moe_training import touched_symbols

    m = perfest.load_model("deepseek-v3")
    e_t, m_e = touched_symbols(training_ctx(Shape(m, "bf16", "fp32", True, 1, 1, False, ep=8)))
    assert e_t.fn(1, 4096, 4096, 4096) == 32.0
    assert m_e.fn(1, 4096, 4096, 4096) == 4096 * 8 * 8 / 8 / 32  # T·k·… rows per expert: 1,024
    # a tiny batch does not: 6 tokens in the pool of one device (ep = 1), E = 4, k = 2:
    # 4·(1 − (1/2)^6) = 3.9375 experts
    tiny = training_ctx(Shape(ModelConfig(name="t", vocab_size=8, hidden_size=8, num_layers=1,
                                          num_heads=1, intermediate_size=8, num_experts=4,
                                          experts_per_token=2), "bf16", "fp32", True, 1, 1,
                              False))  # fmt: skip
    assert touched_symbols(tiny)[0].fn(2, 3, 3, 3) == 3.9375


def test_expert_parallel_all_to_alls(moe):
    # ep = 2: each device sends its T·k = 12 rows of h = 64 (bf16: 1,536 B), (2 − 1)/2 of them
    # on the wire (768 B), and the outputs come back the same way; in backward the gradients
    # travel the reverse all-to-alls, all of them exposed (reported on the ep axis)
    part = layer(moe, ep=2)
    a2a = [o for o in part.forward if o.collective is not None]
    assert [o.name for o in a2a] == ["expert_dispatch", "expert_return"]
    assert {o.collective.kind for o in a2a} == {CollectiveKind.ALL_TO_ALL}
    assert {o.collective.wire_bytes.value(P) for o in a2a} == {768}
    back = [o.comm[0] for o in part.backward.overlaps]
    assert sorted(o.name for o in back) == ["expert_dispatch.grad_alltoall",
                                            "expert_return.grad_alltoall"]  # fmt: skip
    assert all(not o.window for o in part.backward.overlaps)
    # the experts: E/ep = 2 per device, whole (etp = 1)
    assert op(part.forward, "expert_up").reads[1].tensor.shape[0].value() == 2


def test_expert_tensor_parallelism_gathers_and_reduce_scatters(moe):
    # tp = etp = 2, sequence-parallel: a device routes its T = 6/2 = 3 tokens, gathers the etp
    # group's 2·3·2 = 12 rows (bf16 [12, 64]: 1,536 B, half of it on the wire), runs its
    # experts on i_e/2 = 16 columns and reduce-scatters the outputs back
    part = layer(moe, tp=2, sp=True, etp=2)
    names = [o.name for o in part.forward if o.collective is not None]
    assert names == ["attn_allgather", "attn_reducescatter", "expert_allgather",
                     "expert_reducescatter"]  # fmt: skip
    gather = op(part.forward, "expert_allgather").collective
    assert gather.axis is Axis.ETP and gather.wire_bytes.value(P) == 768
    up = op(part.forward, "expert_up")
    assert up.flops.value(P) == pytest.approx(2 * 12 * 64 * 16, rel=1e-12)
    # no shared experts: the routed output is whole, so the MLP region has no entry or exit
    assert not any(n.startswith("mlp_") for n in names)


def test_stages_hold_the_layers_in_order():
    # DeepSeek-V3: 3 dense layers, then 58 of experts; pp = 16 splits 61 layers 3 + 13·4 + 2·3
    m = perfest.load_model("deepseek-v3")
    dense = layer_key((False, False))
    counts = stage_counts(m, 16)
    assert counts[0] == ((EMB, 1), (dense, 3))
    assert counts[1] == ((MOE, 4),) and counts[13] == ((MOE, 4),)
    assert counts[15] == ((MOE, 3), (HEAD, 1))
    # gpt-oss alternates windowed and global layers; interleaved pp = 4, v = 3: chunks of 3,
    # stage 0 holds chunks 0, 4, 8 (layers 0–2, 12–14, 24–26): 6 windowed and 3 global
    gpt_oss = perfest.load_model("gpt-oss-120b")  # 36 layers
    window, full = layer_key((True, True)), layer_key((True, False))
    assert stage_counts(gpt_oss, 4, 3)[0] == ((EMB, 1), (window, 6), (full, 3))
    # a dense model keeps its single kind
    assert stage_counts(perfest.load_model("llama-2-7b"), 4)[1] == ((LAYER, 8),)


def test_memory_of_an_expert_parallel_layout(moe):
    # tiny-moe on 4 devices, dp = 4, ep = 2: expert dp = 4/2 = 2. Per device:
    #   embedding 512·64 = 32,768; head: final norm 64 + LM head 512·64 = 32,832
    #   each layer, dense: norms 2·64, qkv 64·(8 + 2·2)·8 = 6,144, out 64·64 = 4,096,
    #   router 64·4 = 256 → 10,624; experts: E/ep = 2 of gate, up, down 3·64·32 → 12,288
    #   dense 32,768 + 4·10,624 + 32,832 = 108,096; experts 4·12,288 = 49,152
    dense, experts = 108_096, 49_152
    fields = dict(gpus=4, ep=2, global_batch=4, seq_len=16)
    z0 = perfest.estimate_training(moe, "h100-sxm", zero=0, **fields).memory
    assert z0.weights_bytes == 2 * (dense + experts)  # bf16
    assert z0.gradient_bytes == 4 * (dense + experts)  # fp32 main gradients
    assert z0.master_bytes + z0.optimizer_bytes == 12 * (dense + experts)  # Adam
    # ZeRO-1 shards master and states: the dense ones over dp = 4, the experts' over 2
    z1 = perfest.estimate_training(moe, "h100-sxm", zero=1, **fields).memory
    assert z1.master_bytes == 4 * (dense / 4 + experts / 2)  # 4·(27,024 + 24,576)
    assert z1.optimizer_bytes == 8 * (dense / 4 + experts / 2)
    # ZeRO-2 the gradients too; ZeRO-3 the weights
    z3 = perfest.estimate_training(moe, "h100-sxm", zero=3, **fields).memory
    assert z3.gradient_bytes == 4 * (dense / 4 + experts / 2)
    assert z3.weights_bytes == 2 * (dense / 4 + experts / 2)
    # and the whole model is the published kind of count: 32,768 + 4·(10,624 + 24,576) +
    # 32,832 = 206,400 parameters (all 4 experts), equal to the PyTorch reference's own count
    assert perfest.count_parameters(moe) == 206_400


@pytest.mark.torch
def test_the_small_models_parameters_equal_the_reference_modules(moe):
    from perfest.validate.reference import build_reference, parameter_count

    assert parameter_count(build_reference(moe, "fp32", "meta")) == 206_400


def test_expert_gradients_are_reduced_over_the_expert_data_parallel_group(moe):
    # dp = 4 devices holding the same dense weights; the experts' replicas: 4/ep = 2, ranks
    # ep = 2 apart. With ep = 4 there is one replica of each expert: nothing to reduce for them
    fields = dict(gpus=4, global_batch=4, seq_len=16)
    two = perfest.estimate_training(moe, "h100-sxm", ep=2, **fields)
    four = perfest.estimate_training(moe, "h100-sxm", ep=4, **fields)
    reduce = {c.name: c for c in two.collectives}["data-parallel gradient all-reduce"]
    alone = {c.name: c for c in four.collectives}["data-parallel gradient all-reduce"]
    assert reduce.total_s > alone.total_s  # the experts' gradients travel too


def test_a_windowed_layer_trains_over_its_band():
    # gpt-oss-20b, one sequence of s = 256 > w = 128: 64 heads of d = 64; a windowed layer's
    # scores 2·64·256·min(256, 128)·64 = 268,435,456 FLOPs (the band a sliding-window kernel
    # computes), a global layer's twice that; flash's backward is 5 products of each
    point = {"b": 1, "s": 256, "t": 256, "s_logits": 256}
    parts = build_parts(Shape(perfest.load_model("gpt-oss-20b"), "bf16", "fp32", True, 1, 1,
                              False))  # fmt: skip
    window, full = parts[layer_key((True, True))], parts[layer_key((True, False))]
    assert op(window.forward, "attn_scores").flops.value(point) == 268_435_456
    assert op(full.forward, "attn_scores").flops.value(point) == 2 * 268_435_456
    core = [o for o in window.backward.ops if o.activation_product]
    assert sum(o.flops.value(point) for o in core) == 5 * 268_435_456


def test_model_flops_of_a_mixture_are_six_times_its_active_matmul_weights():
    # Mixtral-8x7B per layer: qkv 4096·(32 + 2·8)·128 = 25,165,824, out 4096² = 16,777,216,
    # router 4096·8 = 32,768, k = 2 experts of 3·4096·14,336 = 176,160,768 → 394,297,344;
    # ×32 layers + LM head 32,000·4096 = 131,072,000 → N = 12,748,587,008 active matmul
    # weights (+ the 131 M embedding and the norms: Mixtral's published "12.9B active").
    # PaLM's count per token 6·N + 12·L·n_h·d·S, at S = 4096 and one sequence:
    from perfest.training.estimate import model_flops_per_step

    n, s = 12_748_587_008, 4096
    expected = 6 * n * s + 12 * 32 * 32 * 128 * s * s
    got = model_flops_per_step(perfest.load_model("mixtral-8x7b"), 1, s)
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", [n for n in perfest.list_models() if perfest.load_model(n).moe])
def test_a_training_step_holds_every_published_parameter(name):
    # one device, pp = 1: its weights are the model's, each layer kind as many times as the
    # model has it (the totals equal the published counts: tests/test_parameters.py)
    m = perfest.load_model(name)
    est = perfest.estimate_training(m, "b200", gpus=1, global_batch=1, seq_len=16)
    assert est.memory.weights_bytes == 2 * perfest.count_parameters(m)  # bf16
