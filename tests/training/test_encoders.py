"""Masked-LM pre-training of encoders (BERT, RoBERTa): FLOPs worked by hand and against
FlopCounterMode, the trained parameters against published totals, layouts, refusals."""

from __future__ import annotations

import pytest

import perfest
from perfest.errors import PerfestError
from perfest.ops import Group
from perfest.training.search import search
from perfest.training.step import EMB, HEAD, LAYER, Shape, build_parts

BERT_BASE, BERT_LARGE = "bert-base-uncased", "bert-large-uncased"


def layer_flops(name: str, flash: bool, env: dict) -> tuple[int, int]:
    """(forward, backward) matrix-product FLOPs of one encoder layer."""
    part = build_parts(Shape(perfest.load_model(name), "bf16", "fp32", flash, 1, 1, False))[LAYER]
    fwd = sum(op.gemm.flops.value(env) for op in part.forward if op.gemm is not None)
    bwd = sum(op.gemm.flops.value(env) for op in part.backward.ops if op.gemm is not None)
    return fwd, bwd


def test_one_bert_base_layer_by_hand():
    # BERT-base: h = 768, i = 4h = 3072, n_h = 12, d = 64; b = 2, s = 8 (b·s = 16 rows).
    # Forward products: qkv 2·b·s·h·3h + out 2·b·s·h² + up 2·b·s·h·4h + down 2·b·s·4h·h
    #   = 24·b·s·h² = 24·16·589,824 = 226,492,416;
    # the bidirectional core: scores and values 2·b·n_h·s·s·d each = 2·(2·b·s²·h)
    #   = 4·b·s²·h = 4·2·64·768 = 393,216 (every query scores all s keys: no causal half).
    # Backward: every linear layer 2× (dX, dW) = 452,984,832; the core 2× eager (4 products)
    # = 786,432, 2.5× flash (5 products, the scores recomputed) = 983,040.
    env = {"b": 2, "s": 8, "t": 8, "s_logits": 8}
    forward = 226_492_416 + 393_216
    assert layer_flops(BERT_BASE, False, env) == (forward, 452_984_832 + 786_432)
    assert layer_flops(BERT_BASE, True, env) == (forward, 452_984_832 + 983_040)
    assert forward + 452_984_832 + 786_432 == 3 * forward  # eager: the step is 3× the forward


def test_dropout_covers_the_embeddings():
    # BERT drops out the normed embeddings too: b = 2, s = 8, h = 768 → 2·8·768 = 12,288
    # elements, 2 FLOPs each (compare with p, scale) = 24,576; backward dy·mask·scale: 2 each
    env = {"b": 2, "s": 8, "t": 8, "s_logits": 8}
    model = perfest.load_model(BERT_BASE)
    emb = build_parts(Shape(model, "bf16", "fp32", True, 1, 1, False, dropout=True))[EMB]
    (drop,) = [op for op in emb.forward if op.name == "embed_dropout"]
    (back,) = [op for op in emb.backward.ops if op.name == "embed_dropout.bwd"]
    assert drop.flops.value(env) == back.flops.value(env) == 24_576
    plain = build_parts(Shape(model, "bf16", "fp32", True, 1, 1, False))[EMB]
    assert "embed_dropout" not in [op.name for op in plain.forward]


def test_model_flops_closed_form():
    # per layer 24·B·s·h²·(1 + s/(6h)) forward; the MLM head's transform 2·B·s·h² and tied
    # decoder 2·B·s·h·V over every position; model FLOPs are 3× the forward:
    # 72·B·s·L·h²·(1 + s/(6h)) + 6·B·s·h·(h + V)
    m = perfest.load_model(BERT_LARGE)
    B, s, L, h, V = 256, 128, m.L, m.h, m.V
    expected = 72 * B * s * L * h * h * (1 + s / (6 * h)) + 6 * B * s * h * (h + V)
    est = perfest.estimate_training(BERT_LARGE, "a100-80gb-sxm", gpus=8, global_batch=B,
                                    micro_batch=32, seq_len=s)  # fmt: skip
    assert est.model_flops_per_step == pytest.approx(expected, rel=1e-12)
    # no recompute, eager attention: hardware FLOPs are the model FLOPs
    eager = perfest.estimate_training(BERT_LARGE, "a100-80gb-sxm", gpus=8, global_batch=B,
                                      micro_batch=32, seq_len=s, attention="eager")  # fmt: skip
    assert eager.hardware_flops_per_step == pytest.approx(expected, rel=1e-12)


def test_masked_positions_only():
    # NVIDIA's phase 1: the head scores the 20 masked positions of each 128-token sequence:
    # 72·B·s·L·h²·(1 + s/(6h)) + 6·B·p·h·(h + V) with p = 20
    m = perfest.load_model(BERT_LARGE)
    B, s, p, L, h, V = 256, 128, 20, m.L, m.h, m.V
    expected = 72 * B * s * L * h * h * (1 + s / (6 * h)) + 6 * B * p * h * (h + V)
    fields = {"gpus": 8, "global_batch": B, "micro_batch": 32, "seq_len": s}
    masked = perfest.estimate_training(BERT_LARGE, "a100-80gb-sxm", mlm_positions=p, **fields)
    whole = perfest.estimate_training(BERT_LARGE, "a100-80gb-sxm", **fields)
    assert masked.model_flops_per_step == pytest.approx(expected, rel=1e-12)
    assert masked.step_time_s < whole.step_time_s
    assert masked.memory.logits_bytes == pytest.approx(whole.memory.logits_bytes * p / s)


@pytest.mark.parametrize(
    "model, positions, message",
    [
        ("llama-3-8b", 20, "mlm_positions: llama-3-8b is a decoder"),
        (BERT_BASE, 200, "mlm_positions: 200 masked positions exceed the sequence length 128"),
    ],
)
def test_masked_positions_are_an_encoders(model, positions, message):
    with pytest.raises(PerfestError, match=message):
        perfest.estimate_training(model, "h100-sxm", gpus=1, global_batch=8, seq_len=128,
                                  mlm_positions=positions)  # fmt: skip


@pytest.mark.parametrize(
    "name, published",
    [
        # Hugging Face BertForMaskedLM: BertModel's 109,482,240 (tests/published_params.py)
        # − the pooler (768² + 768 = 590,592) + the MLM transform (590,592) + its LayerNorm
        # (1,536) + the decoder's bias (V = 30,522); = BertForPreTraining's safetensors total
        # 110,106,428 − pooler − the NSP classifier (2·768 + 2 = 1,538)
        (BERT_BASE, 109_482_240 - 590_592 + 590_592 + 1_536 + 30_522),
        # RobertaForMaskedLM: roberta-large's safetensors total on the Hub, 355,412,057
        ("roberta-large", 355_412_057),
    ],
)
def test_trained_parameters_are_the_masked_lm_models(name, published):
    est = perfest.estimate_training(name, "a100-80gb-sxm", gpus=1, global_batch=8, seq_len=128)
    assert est.parameters == published
    # one device, no ZeRO: the weights held are those parameters in bf16
    assert est.memory.weights_bytes == 2 * published


def test_no_pooler_in_training():
    shape = Shape(perfest.load_model(BERT_BASE), "bf16", "fp32", True, 1, 1, False)
    head = build_parts(shape)[HEAD]
    names = [op.name for op in head.forward]
    assert names[:4] == ["mlm_transform", "mlm_act", "mlm_norm", "mlm_decoder"]
    assert "loss" in names and not any("pooler" in n for n in names)
    assert all(op.group is Group.LM_HEAD for op in head.forward)


@pytest.mark.parametrize(
    "layout",
    [
        {"tp": 2},
        {"tp": 4, "sequence_parallel": True},
        {"pp": 2},
        {"pp": 4, "interleave": 2},
        {"cp": 2},
        {"zero": 3},
        {"zero": 1, "recompute": "selective"},
        {"recompute": "full", "attention": "eager", "dropout": True},
    ],
)
def test_layouts_keep_the_model_flops_and_fit(layout):
    base = {"gpus": 8, "global_batch": 64, "micro_batch": 4, "seq_len": 512}
    one = perfest.estimate_training(BERT_LARGE, "h100-sxm", **base)
    est = perfest.estimate_training(BERT_LARGE, "h100-sxm", **base, **layout)
    assert est.model_flops_per_step == one.model_flops_per_step
    assert est.step_time_s >= est.roofline_step_s > 0
    assert est.memory.fits and 0 < est.mfu <= est.hfu < 1


def test_tensor_parallel_memory_splits_the_layers():
    base = {"gpus": 8, "global_batch": 64, "micro_batch": 4, "seq_len": 512}
    one = perfest.estimate_training(BERT_LARGE, "h100-sxm", **base)
    tp = perfest.estimate_training(BERT_LARGE, "h100-sxm", tp=4, sequence_parallel=True, **base)
    assert tp.memory.weights_bytes < one.memory.weights_bytes / 3
    assert tp.memory.activation_bytes < one.memory.activation_bytes / 3


def test_search_ranks_encoder_layouts():
    result = search(BERT_BASE, "a100-80gb-sxm", gpus=8, global_batch=256,
                                     seq_len=128, top=3)  # fmt: skip
    assert result.fitting > 0 and len(result.top) == 3
    assert result.top[0].candidate.tokens_per_s >= result.top[1].candidate.tokens_per_s


def test_an_encoder_decoder_is_refused_in_one_line():
    with pytest.raises(PerfestError, match="model: training an encoder-decoder"):
        perfest.estimate_training("t5-base", "a100-80gb-sxm", gpus=1, global_batch=8, seq_len=512)
    with pytest.raises(PerfestError, match="model: training an encoder-decoder"):
        search("t5-base", "a100-80gb-sxm", gpus=8, global_batch=8, seq_len=512)


@pytest.mark.torch
@pytest.mark.parametrize("attention", ["flash", "eager"])
@pytest.mark.parametrize("name", [BERT_BASE, BERT_LARGE])
def test_whole_model_training_flops_equal_flop_counter_mode(name, attention):
    # every layer, the embeddings and the masked-LM head over every position (meta device)
    from perfest.validate.train_flops import check_train_flops

    m = perfest.load_model(name)
    backward, step = check_train_flops(m, b=2, s=128, layers=m.L, attention=attention)
    for check in (backward, step):
        assert check.perfest_total == check.torch_total, check.phase
        assert all(row.perfest == row.torch for row in check.rows), check.rows


@pytest.mark.torch
def test_the_reference_trains_the_published_parameters():
    from perfest.validate.train_flops import training_reference

    m = perfest.load_model(BERT_BASE)
    net = training_reference(m, layers=m.L)
    assert sum(p.numel() for p in net.parameters()) == 109_514_298
