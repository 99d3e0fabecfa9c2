"""Invariants over random workloads (hypothesis): monotonic in batch and length, never faster
than the pure roofline, memory never negative."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import perfest

MODELS = ["gpt2", "llama-2-7b", "llama-3-8b", "gemma-7b", "falcon-7b", "gpt-j-6b", "qwen2-7b"]
DEVICES = ["a100-80gb-sxm", "h100-sxm", "l4", "mi300x", "tpu-v5e"]

workloads = st.fixed_dictionaries(
    {
        "batch": st.integers(1, 512),
        "input_len": st.integers(1, 8192),
        "output_len": st.integers(1, 2048),
        "weight_dtype": st.sampled_from([None, "int8", "int4"]),
        "tp": st.sampled_from([1, 1, 2]),
    }
)


def measures(est):
    return [
        est.prefill.flops,
        est.prefill.bytes,
        est.prefill.time_s,
        est.decode.flops,
        est.decode.bytes,
        est.decode.time_s,
        est.generation.e2e_latency_s,
        est.memory.total_bytes,
    ]


def runnable(model, w):
    """Falcon-7B's 71 heads cannot be split over 2 devices: run those on one."""
    if perfest.load_model(model).n_h % w["tp"]:
        return {**w, "tp": 1}
    return w


def grows(model, device, w, field, by):
    w = runnable(model, w)
    small = perfest.estimate(model, device, **w)
    large = perfest.estimate(model, device, **{**w, field: w[field] + by})
    return all(b >= a * (1 - 1e-12) for a, b in zip(measures(small), measures(large), strict=True))


@given(st.sampled_from(MODELS), st.sampled_from(DEVICES), workloads, st.integers(1, 300))
def test_monotonic_in_batch(model, device, w, by):
    assert grows(model, device, w, "batch", by)


@given(st.sampled_from(MODELS), st.sampled_from(DEVICES), workloads, st.integers(1, 3000))
def test_monotonic_in_input_length(model, device, w, by):
    assert grows(model, device, w, "input_len", by)


@given(st.sampled_from(MODELS), st.sampled_from(DEVICES), workloads, st.integers(1, 3000))
def test_monotonic_in_output_length(model, device, w, by):
    assert grows(model, device, w, "output_len", by)


@given(
    st.sampled_from(MODELS),
    st.sampled_from(DEVICES),
    workloads,
    st.floats(0.05, 1.0),
    st.floats(0.05, 1.0),
)
def test_never_faster_than_roofline_and_memory_non_negative(model, device, w, ce, me):
    w = runnable(model, w)
    est = perfest.estimate(model, device, compute_efficiency=ce, memory_efficiency=me, **w)
    for phase in (est.prefill, est.decode):
        assert phase.time_s >= phase.roofline_time_s > 0
        for row in phase.layers:
            assert row.time_s >= row.roofline_time_s >= 0
            assert row.flops >= 0 and row.bytes >= 0
    m = est.memory
    assert min(m.weights_bytes, m.kv_cache_bytes, m.activation_bytes, m.max_batch) >= 0
    assert m.total_bytes == m.weights_bytes + m.kv_cache_bytes + m.activation_bytes
    g = est.generation
    assert g.roofline_output_tokens_per_s >= g.output_tokens_per_s > 0
