"""Training memory against closed forms from the papers, derived by hand."""

from __future__ import annotations

import pytest

import perfest
from perfest.training.memory import in_flight, largest_micro_batch, part_memory
from perfest.training.step import LAYER, Shape, build_parts

B, S = 2, 512  # micro-batch, sequence
ENV = {"b": B, "s": S, "t": S, "s_logits": S}


def layer_memory(model, mode="none", tp=1, sp=False, flash=False, dropout=True):
    parts = build_parts(Shape(model, "bf16", "fp32", flash, tp, 1, sp, dropout=dropout))
    return part_memory(parts[LAYER], mode, ENV)


# Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models"),
# §4: activations per layer, 16-bit, with dropout, eager attention, 4h MLP:
#   attention 11sbh + 5as²b; MLP 19sbh; two LayerNorms 4sbh → sbh(34 + 5as/h)
#   tensor parallel:            sbh(10 + 24/t + 5as/(ht))
#   + sequence parallel:        sbh(34 + 5as/h)/t
#   + selective recompute:      34sbh/t
#   full recompute:             2sbh (the layer's input)
# perfest also keeps each LayerNorm's fp32 mean and 1/σ per row: 2 norms · 2 · 4 B = 16·s·b
# (1/t of the rows with sequence parallelism); the closed form leaves them out.
@pytest.mark.parametrize(
    "tp, sp, mode, per_sbh, per_sb",
    [
        (1, False, "none", 34 + 5 * 16 * S / 1024, 16),  # 34 + 80·512/1024 = 74
        (4, False, "none", 10 + 24 / 4 + 5 * 16 * S / (1024 * 4), 16),  # 10 + 6 + 10 = 26
        (4, True, "none", (34 + 5 * 16 * S / 1024) / 4, 4),  # 74/4 = 18.5
        (4, True, "selective", 34 / 4, 4),
        (1, False, "full", 2, 0),
        (4, True, "full", 2 / 4, 0),
    ],
)
def test_activations_per_layer_are_korthikantis_closed_form(gpt, tp, sp, mode, per_sbh, per_sb):
    s, b, h = S, B, gpt.h
    kept = layer_memory(gpt, mode, tp, sp).kept
    assert kept == pytest.approx(s * b * h * per_sbh + s * b * per_sb, rel=1e-12)


def test_full_recompute_keeps_one_layer_whole_while_it_reruns(gpt):
    full = layer_memory(gpt, "full")
    assert full.working == pytest.approx(layer_memory(gpt).kept, rel=1e-12)


def test_flash_attention_keeps_no_score_matrix(gpt):
    # perfest's default differs from the closed form: flash attention keeps q, k, v and its
    # output (2sbh each, the output also being out_proj's input) and an fp32 log-sum-exp per
    # head and row (4·a·s·b), no s×s tensors; without dropout there are no masks:
    #   2 (qkv in) + 6 (q, k, v) + 2 (out) + 2 (up in) + 8 (GELU in) + 8 (down in) + 4 (norms)
    #   = 32·sbh, + 4·a·s·b + 16·s·b
    s, b, h, a = S, B, gpt.h, gpt.n_h
    kept = layer_memory(gpt, flash=True, dropout=False).kept
    assert kept == 32 * s * b * h + 4 * a * s * b + 16 * s * b


def test_adam_keeps_twelve_bytes_per_parameter_in_mixed_precision():
    # fp32 master (4) + m (4) + v (4) = 12·N, whatever the gradients' dtype
    m = perfest.load_model("llama-2-7b")
    n = perfest.count_parameters(m)
    est = perfest.estimate_training(m, "h100-sxm", gpus=1, global_batch=1, seq_len=128)
    assert est.memory.master_bytes + est.memory.optimizer_bytes == 12 * n
    assert est.memory.weights_bytes == 2 * n and est.memory.gradient_bytes == 4 * n


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
def test_zero_stages_divide_states_as_in_the_zero_paper(zero):
    # Rajbhandari et al. 2020, Table 1 (mixed-precision Adam, 16-bit gradients, K = 12):
    #   baseline (2 + 2 + K)Ψ; Pos 2Ψ + 2Ψ + KΨ/Nd; Pos+g 2Ψ + (2 + K)Ψ/Nd; Pos+g+p (4 + K)Ψ/Nd
    m = perfest.load_model("gpt2")
    psi, nd = perfest.count_parameters(m), 8
    est = perfest.estimate_training(m, "a100-80gb-sxm", gpus=nd, global_batch=8, seq_len=128,
                                    zero=zero, grad_dtype="bf16")  # fmt: skip
    mem = est.memory
    states = mem.weights_bytes + mem.gradient_bytes + mem.master_bytes + mem.optimizer_bytes
    expected = {
        0: (2 + 2 + 12) * psi,
        1: 2 * psi + 2 * psi + 12 * psi / nd,
        2: 2 * psi + (2 + 12) * psi / nd,
        3: (2 + 2 + 12) * psi / nd,
    }[zero]
    assert states == pytest.approx(expected, rel=1e-12)


def test_megatron_distributed_optimizer_keeps_six_plus_twelve_over_d():
    # Megatron-LM docs (distributed optimizer): bf16 weights, fp32 gradients: 18 bytes per
    # parameter without it, 6 + 12/d with it (ZeRO-1 with fp32 main gradients)
    m = perfest.load_model("gpt2")
    psi, d = perfest.count_parameters(m), 4
    for zero, per in ((0, 18), (1, 6 + 12 / d)):
        mem = perfest.estimate_training(m, "a100-80gb-sxm", gpus=d, global_batch=4,
                                        seq_len=128, zero=zero).memory  # fmt: skip
        states = mem.weights_bytes + mem.gradient_bytes + mem.master_bytes + mem.optimizer_bytes
        assert states == pytest.approx(per * psi, rel=1e-12)


def test_pipeline_keeps_pp_micro_batches_on_the_first_stage():
    # 1F1B: stage i holds min(m, pp − i); interleaved: × (1 + (pp − 1)/(pp·v))
    assert [in_flight(8, 4, i, 1) for i in range(4)] == [4, 3, 2, 1]
    assert in_flight(2, 4, 0, 1) == 2
    assert in_flight(8, 4, 0, 2) == 4 * (1 + 3 / 8)


def test_largest_micro_batch_that_fits():
    # 60 GB fixed, 7 GB per sequence, 80 GB: ⌊20/7⌋ = 2
    assert largest_micro_batch(60e9, 7e9, 80e9) == 2
    assert largest_micro_batch(90e9, 7e9, 80e9) == 0


def test_fp8_linear_layers_keep_their_inputs_in_one_byte(gpt):
    # Transformer Engine's FP8 Linear saves its FP8 input for dW: the inputs of qkv (2sbh),
    # up (2sbh) and down (8sbh) drop to half, 12sbh → 6sbh; out_proj's input is also the flash
    # core's output, which attention keeps in bf16, so its FP8 copy adds 1sbh: 6 − 1 = 5sbh
    s, b, h = S, B, gpt.h
    kept = {}
    for fp8 in (False, True):
        parts = build_parts(Shape(gpt, "bf16", "fp32", True, 1, 1, False, fp8=fp8))
        kept[fp8] = part_memory(parts[LAYER], "none", ENV).kept
    assert kept[False] - kept[True] == 5 * s * b * h
