"""The compiled plan: its totals are the sum of its per-op rows, and each row's FLOPs and bytes
are its op's own formulas evaluated at the point (two independent paths: the compiled
polynomials and the op expressions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import perfest
from perfest.plan import Point, plan_for
from perfest.roofline import Bound
from perfest.specs import Workload

MODELS = [
    "gpt2", "llama-2-7b", "llama-3-8b", "gemma-7b", "gpt-j-6b", "qwen2-7b", "phi-3-mini",
    "mistral-7b", "mixtral-8x7b", "deepseek-v2-lite", "qwen3-30b-a3b", "gpt-oss-20b",
]  # fmt: skip
DEVICES = ["a100-80gb-sxm", "h100-sxm", "l4", "mi300x", "tpu-v5e"]
CPU = perfest.HardwareSpec(name="cpu", fp32_tflops=0.2, vector_tflops=0.01, memory_gb=24,
                           memory_bandwidth_gb_s=20, tile_m_min=1, tile_m_max=1, tile_n=1,
                           compute_units=1, gemv_row_ns=30, gemm_memory_efficiency=0.5,
                           kernel_launch_us=30)  # fmt: skip
VARIANTS = [
    {},
    {"tp": 2},
    {"tp": 4, "kv_dtype": "fp8"},
    {"weight_dtype": "int4"},
    {"weight_dtype": "int8", "attention": "eager"},
    {"dtype": "fp32"},
    {"tp": 2, "ep": 2},
    {"ep": 4, "dp_attention": True},
    {"mla": "absorbed", "experts_touched": 3},
    {"fusion": "none", "attention": "eager"},
    {"fusion": "full"},
    {"fusion": "full", "tp": 2, "weight_dtype": "int4"},
    {"fusion": "full", "ep": 2, "tp": 2},
]

MOE_FIELDS = ("ep", "dp_attention", "experts_touched")

points = st.tuples(
    st.integers(1, 600), st.integers(1, 3000), st.integers(0, 6000), st.booleans()
).map(lambda v: Point(v[0], v[1], v[1] + v[2], v[1] if v[3] else 1))


@given(
    st.sampled_from(MODELS),
    st.sampled_from([*DEVICES, CPU]),
    st.sampled_from(VARIANTS),
    points,
)
def test_totals_are_the_sum_of_the_rows(model, device, variant, point):
    m, hw = perfest.load_model(model), perfest.load_hardware(device)
    if m.n_h % variant.get("tp", 1):
        variant = {}
    if not m.moe:
        variant = {k: v for k, v in variant.items() if k not in MOE_FIELDS}
    if not m.mla:
        variant.pop("mla", None)
    if hw is CPU:  # one device, fp32 only
        variant = {k: v for k, v in variant.items() if k not in ("tp", "kv_dtype", *MOE_FIELDS)}
        variant["dtype"] = "fp32"
    plan = plan_for(m, hw, Workload(**variant)).for_phase("decode" if point.s == 1 else "prefill")
    total, rows = plan.evaluate(point), plan.rows(point)
    env = plan.env(point)  # b per attention group, and the derived symbols (experts, windows)
    for name, value in (
        ("time_s", sum(r.time for r in rows)),
        ("roofline_time_s", sum(r.roofline for r in rows)),
        ("overhead_s", sum(r.overhead for r in rows)),
        ("comm_time_s", sum(r.t_comm for r in rows)),
        ("flops", sum(r.op.flops.value(env) * r.count for r in rows)),
        ("matmul_flops", sum(r.op.gemm.flops.value(env) * r.count for r in rows if r.op.gemm)),
        ("bytes", sum(r.bytes for r in rows)),
    ):
        assert getattr(total, name) == pytest.approx(value, rel=1e-9), name
    by_bound = dict.fromkeys(Bound, 0.0)
    for r in rows:
        by_bound[r.bound] += r.time
    assert by_bound[total.bound] == pytest.approx(max(by_bound.values()), rel=1e-9)
    for r in rows:  # never faster than the row's own roofline, every part non-negative
        assert r.time >= r.roofline * (1 - 1e-12) >= 0
        assert min(r.t_compute, r.t_memory, r.t_comm, r.overhead) >= 0


def test_rows_follow_execution_order_and_carry_their_counts():
    plan = plan_for(perfest.load_model("llama-2-7b"), perfest.load_hardware("h100-sxm"), Workload())
    rows = plan.rows(Point(1, 1, 10, 1))
    assert [r.op.name for r in rows][:3] == ["embed", "attn_norm", "qkv_proj"]
    assert [r.op.name for r in rows][-2:] == ["final_norm", "lm_head"]
    assert {r.count for r in rows if r.segment == "decoder"} == {32}


def test_identical_ops_merge_for_the_totals_only():
    plan = plan_for(perfest.load_model("llama-2-7b"), perfest.load_hardware("h100-sxm"), Workload())
    n_rows = sum(len(family) for family in plan._rows)
    n_fast = sum(len(family) for family in plan._fast)
    # the block's two norms and the final norm are one term, gate and up one, the two residuals
    assert (n_rows, n_fast) == (18, 14)


def test_plans_are_built_once_per_static_workload():
    m, hw = perfest.load_model("gpt2"), perfest.load_hardware("l4")
    a = plan_for(m, hw, Workload(batch=1, input_len=10))
    assert plan_for(m, hw, Workload(batch=99, input_len=2000, logits="all")) is a
    assert plan_for(m, hw, Workload(dtype="fp32")) is not a
    # an equal spec that is another object still finds the plan (by value)
    assert plan_for(m.model_copy(), hw, Workload()) is a


def test_derived_symbols_are_evaluated_once_per_point_beside_the_monomials():
    # gpt-oss-20b: the windowed layers' context t_w = min(t, 128), and the experts touched
    plan = plan_for(perfest.load_model("gpt-oss-20b"), perfest.load_hardware("h100-sxm"),
                    Workload())  # fmt: skip
    assert {d.name for d in plan.derived} == {"t_w", "e_t", "m_e"}
    env = plan.env(Point(4, 1, 1000, 1))
    # 4 tokens, top-4 of 32: 32·(1 − (28/32)⁴) = 32·(1 − 0.586181640625) = 13.2421875 experts
    assert (env["t_w"], env["e_t"]) == (128, 13.2421875)
    assert env["m_e"] == pytest.approx(16 / 13.2421875)


def test_data_parallel_attention_evaluates_a_groups_batch():
    # deepseek-v2-lite on 8 devices, attention data-parallel (tp 1): a device attends to
    # ⌈10/8⌉ = 2 sequences, while its experts see the whole batch's 10 tokens
    plan = plan_for(perfest.load_model("deepseek-v2-lite"), perfest.load_hardware("h100-sxm"),
                    Workload(ep=8, dp_attention=True))  # fmt: skip
    env = plan.for_phase("decode").env(Point(10, 1, 500, 1))
    assert env["b"] == 2 and env["e_t"] * env["m_e"] == pytest.approx(10 * 6 / 8)
