"""Invariants of the training estimate over random layouts (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import perfest
from perfest.errors import PerfestError

MODELS = ["gpt2", "llama-2-7b", "llama-3-8b", "mistral-7b", "gpt-j-6b", "mixtral-8x7b",
          "qwen3-30b-a3b", "deepseek-v2-lite", "gpt-oss-20b", "bert-large-uncased"]  # fmt: skip
MOE = {name for name in MODELS if perfest.load_model(name).moe}


def divisors(n):
    return [k for k in range(1, n + 1) if n % k == 0]


layouts = st.fixed_dictionaries(
    {
        "model": st.sampled_from(MODELS),
        "hardware": st.sampled_from(["a100-80gb-sxm", "h100-sxm", "mi300x"]),
        "tp": st.sampled_from([1, 2, 4, 8]),
        "pp": st.sampled_from([1, 2, 4]),
        "cp": st.sampled_from([1, 2]),
        "dp": st.sampled_from([1, 2, 4, 16]),
        "micro_batch": st.sampled_from([1, 2, 4]),
        "m": st.sampled_from([1, 2, 4, 8]),
        "seq_len": st.sampled_from([512, 2048, 4096]),
        "zero": st.integers(0, 3),
        "recompute": st.sampled_from(["none", "selective", "full"]),
        "interleave": st.sampled_from([1, 2]),
        "sequence_parallel": st.booleans(),
        "dtype": st.sampled_from(["bf16", "fp8", "fp32"]),
        "attention": st.sampled_from(["flash", "eager"]),
        "ep": st.sampled_from([1, 2, 4, 8]),  # mixtures of experts only
        "etp": st.sampled_from([None, 1]),  # Megatron-Core's default (tp) or 1
    }
)


def run(lay, **change):
    lay = {**lay, **change}
    gpus = lay["tp"] * lay["pp"] * lay["cp"] * lay["dp"]
    fields = {k: v for k, v in lay.items() if k not in ("model", "hardware", "m")}
    fields["global_batch"] = lay["m"] * lay["micro_batch"] * lay["dp"]
    if lay["model"] not in MOE:
        fields.pop("ep"), fields.pop("etp")
    try:
        return perfest.estimate_training(lay["model"], lay["hardware"], gpus=gpus, **fields)
    except PerfestError:
        assume(False)


@given(layouts)
def test_never_faster_than_the_roofline(lay):
    est = run(lay)
    assert est.step_time_s >= est.roofline_step_s > 0
    for c in est.collectives:  # a collective runs within the step
        assert 0 <= c.exposed_s <= c.total_s <= est.step_time_s * (1 + 1e-12)
    assert sum(est.breakdown.to_dict().values()) == pytest.approx(est.step_time_s, rel=1e-9)


@given(layouts)
def test_model_flops_do_not_depend_on_the_layout(lay):
    est = run(lay)
    alone = perfest.estimate_training(lay["model"], lay["hardware"], gpus=1,
                                      global_batch=est.config.global_batch,
                                      seq_len=lay["seq_len"], dtype=lay["dtype"])  # fmt: skip
    assert est.model_flops_per_step == pytest.approx(alone.model_flops_per_step, rel=1e-12)
    assert est.hardware_flops_per_step >= est.model_flops_per_step * (1 - 1e-12)


@given(layouts)
def test_memory_never_grows_with_the_zero_stage(lay):
    # ZeRO-3 also holds two neighbouring units' whole weights (the one computing, the one
    # prefetched): it saves memory over ZeRO-2 when sharding the stage's weights (1/D of the
    # dense ones, 1/edp of a mixture's experts) frees more than that, which this test requires
    # of the layouts it compares at stage 3
    totals = [run(lay, zero=z).memory for z in range(4)]
    for low, high in zip(totals[:2], totals[1:3], strict=True):
        assert high.per_device_bytes <= low.per_device_bytes * (1 + 1e-12)
    z2, z3 = totals[2], totals[3]
    if z3.gathered_bytes <= z2.weights_bytes - z3.weights_bytes:
        assert z3.per_device_bytes <= z2.per_device_bytes * (1 + 1e-12)


@given(layouts)
def test_memory_never_grows_with_pipeline_depth(lay):
    # the same tp, cp, dp and micro-batches on more GPUs: pp = 1, 2, 4 with the layers split
    # evenly (Megatron's requirement)
    assume(lay["interleave"] == 1)
    L = perfest.load_model(lay["model"]).L
    totals = [run(lay, pp=pp).memory.per_device_bytes for pp in (1, 2, 4) if L % pp == 0]
    for low, high in zip(totals, totals[1:], strict=False):
        assert high <= low * (1 + 1e-12)


@given(layouts, st.sampled_from([2, 4]))
def test_memory_never_negative_and_grows_with_the_micro_batch(lay, more):
    small = run(lay).memory
    big = run(lay, micro_batch=lay["micro_batch"] * more).memory
    terms = ("weights_bytes", "gradient_bytes", "activation_bytes", "logits_bytes")
    assert min(small.to_dict()[k] for k in terms) >= 0
    assert big.per_device_bytes > small.per_device_bytes
    assert big.max_micro_batch == small.max_micro_batch
