"""Training FLOPs, MFU and the step's breakdown against closed forms derived by hand."""

from __future__ import annotations

import pytest

import perfest

GPT3 = "gpt3-175b"


def gpt3(**fields):
    base = {"gpus": 1, "global_batch": 8, "seq_len": 2048}
    return perfest.estimate_training(GPT3, "a100-80gb-sxm", **{**base, **fields})


def megatron(B, s, L, h, V, recompute=False):
    """Narayanan et al. 2021, §5.1: 72·B·s·L·h²·(1 + s/(6h) + V/(12·h·L)); with full
    recompute 96·B·s·L·h²·(1 + s/(6h) + V/(16·h·L)) (the LM head is not recomputed)."""
    if recompute:
        return 96 * B * s * L * h * h * (1 + s / (6 * h) + V / (16 * h * L))
    return 72 * B * s * L * h * h * (1 + s / (6 * h) + V / (12 * h * L))


def test_model_flops_are_megatrons_closed_form():
    m = perfest.load_model(GPT3)
    est = gpt3()
    expected = megatron(8, 2048, m.L, m.h, m.V)
    assert est.model_flops_per_step == pytest.approx(expected, rel=1e-12)


def test_full_recompute_adds_the_forward_again():
    # eager attention: backward is 2× the forward everywhere, so hardware FLOPs are 4× the
    # layers' forward and 3× the head's: Megatron's 96·… form
    m = perfest.load_model(GPT3)
    est = gpt3(recompute="full", attention="eager")
    assert est.hardware_flops_per_step == pytest.approx(megatron(8, 2048, m.L, m.h, m.V, True),
                                                        rel=1e-12)  # fmt: skip
    assert est.model_flops_per_step == pytest.approx(megatron(8, 2048, m.L, m.h, m.V), rel=1e-12)


def test_flash_backward_recomputes_the_scores():
    # FlashAttention-2's backward: 5 products of 2·B·s²·h per layer where the forward has 2;
    # one more than eager's 4: + 2·B·s²·h·L hardware FLOPs
    m = perfest.load_model(GPT3)
    B, s, L, h = 8, 2048, m.L, m.h
    flash = gpt3()
    assert flash.hardware_flops_per_step - flash.model_flops_per_step == pytest.approx(
        2 * B * s * s * h * L, rel=1e-12
    )
    # selective recompute with eager attention reruns its 2 products: + 4·B·s²·h·L
    eager = gpt3(recompute="selective", attention="eager")
    assert eager.hardware_flops_per_step - eager.model_flops_per_step == pytest.approx(
        4 * B * s * s * h * L, rel=1e-12
    )


def test_model_flops_approach_6_n_t():
    # 6·N FLOPs per token for the weights; attention adds s/(6h) (2.8 % at s = 2048,
    # h = 12288); the learned positions and biases (no matrix product) take a little away
    est = gpt3()
    six_nt = 6 * est.parameters * est.tokens_per_step
    assert six_nt < est.model_flops_per_step < six_nt * (1 + 2048 / (6 * 12288))


def test_mfu_and_hfu_are_flops_per_second_over_the_peak():
    est = perfest.estimate_training("llama-3-8b", "h100-sxm", gpus=8, global_batch=64,
                                    seq_len=4096, zero=1, recompute="full")  # fmt: skip
    busy = est.step_time_s * 8 * 989.4e12
    assert est.mfu == pytest.approx(est.model_flops_per_step / busy, rel=1e-12)
    assert est.hfu == pytest.approx(est.hardware_flops_per_step / busy, rel=1e-12)
    assert est.hfu > est.mfu  # recompute: hardware FLOPs include the forward again
    assert est.tokens_per_s == pytest.approx(64 * 4096 / est.step_time_s)
    assert est.tokens_per_s_per_gpu == pytest.approx(est.tokens_per_s / 8)


def test_the_breakdown_adds_up_to_the_step():
    est = perfest.estimate_training("llama-3.1-70b", "h100-sxm", gpus=64, tp=4, pp=4, cp=2,
                                    global_batch=64, seq_len=8192, sequence_parallel=True,
                                    interleave=5, zero=1, recompute="selective")  # fmt: skip
    parts = est.breakdown.to_dict()
    assert sum(parts.values()) == pytest.approx(est.step_time_s, rel=1e-12)
    assert min(parts.values()) >= 0
    assert est.breakdown.bubble_s > 0 and est.breakdown.communication_s > 0
    exposed = sum(c.exposed_s for c in est.collectives)
    assert exposed <= est.breakdown.communication_s * (1 + 1e-9) + 1e-12
    for c in est.collectives:
        assert 0 <= c.exposed_s <= c.total_s * (1 + 1e-12)


def test_one_device_step_is_micro_batches_times_forward_and_backward_plus_the_update():
    est = perfest.estimate_training("gpt2", "a100-80gb-sxm", gpus=1, global_batch=16,
                                    micro_batch=4, seq_len=1024)  # fmt: skip
    fwd, bwd, rec, opt = est.phases
    assert (est.layout.micro_batches, rec.time_s) == (4, 0.0)
    assert fwd.time_s == pytest.approx(4 * fwd.per_micro_batch_s)
    assert est.step_time_s == pytest.approx(fwd.time_s + bwd.time_s + opt.time_s, rel=1e-12)
    assert est.breakdown.communication_s == 0 and est.collectives == ()
    # the per-op rows add up to the phase
    assert sum(r.time_s for r in fwd.layers) == pytest.approx(fwd.per_micro_batch_s, rel=1e-9)


def test_time_to_train():
    est = perfest.estimate_training("gpt2", "h100-sxm", gpus=8, global_batch=64, seq_len=1024,
                                    tokens=2e9)  # fmt: skip
    t = est.time_to_train
    assert t.seconds == pytest.approx(2e9 / est.tokens_per_s)
    assert t.days == pytest.approx(t.seconds / 86400) and t.gpu_hours == pytest.approx(
        t.seconds * 8 / 3600
    )


def test_json_has_the_documented_keys():
    data = perfest.estimate_training("gpt2", "h100-sxm", gpus=2, global_batch=8,
                                     seq_len=512).to_dict()  # fmt: skip
    for key in ("step_time_s", "tokens_per_s", "tokens_per_s_per_gpu", "model_flops_per_step",
                "model_tflops_per_gpu", "hardware_tflops_per_gpu", "mfu", "hfu", "breakdown",
                "phases", "collectives"):  # fmt: skip
        assert key in data
    for key in ("per_device_bytes", "capacity_bytes", "fits"):
        assert key in data["memory"]
    assert [p["phase"] for p in data["phases"]] == ["forward", "backward", "recompute",
                                                    "optimizer"]  # fmt: skip


def test_fp8_covers_the_decoder_layers_not_the_lm_head():
    # Transformer Engine's FP8 is for the blocks' linear layers; Megatron's output layer is not
    # a TE module: the head runs at the bf16 rate, the layers' linear layers at the FP8 rate
    from perfest.plan import Point
    from perfest.training.compiled import compiled_parts
    from perfest.training.step import HEAD, LAYER, Shape

    m, hw = perfest.load_model("llama-3-8b"), perfest.load_hardware("h100-sxm")
    point = Point(1, 4096, 4096, 4096)
    timed = {}
    for dtype, fp8 in (("bf16", False), ("fp8", True)):
        parts = compiled_parts(Shape(m, "bf16", "fp32", True, 1, 1, False, fp8=fp8), hw, dtype)
        timed[dtype] = {k: p.forward.evaluate(point).time_s for k, p in parts.items()}
    assert timed["fp8"][HEAD] == timed["bf16"][HEAD]
    assert timed["fp8"][LAYER] < 0.75 * timed["bf16"][LAYER]
