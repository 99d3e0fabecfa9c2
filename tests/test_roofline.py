"""Time model cases worked by hand on a round-number device (100 TFLOP/s, 1 TB/s)."""

from __future__ import annotations

import pytest

from perfest.cost import Cost, Gemm, collective, matmul, vector
from perfest.roofline import Rates, padded_flops, tile_m, time_op


def rates(**over) -> Rates:
    base = dict(
        matmul_flops=100e12,
        attention_flops=100e12,
        vector_flops=10e12,
        bandwidth=1e12,
        compute_eff=1.0,
        memory_eff=1.0,
        launch_s=0.0,
        link_bandwidth=100e9,
        link_latency_s=0.0,
        compute_units=1,
    )
    base.update(over)
    return Rates(**base)


def test_cost_adds_and_scales():
    c = Cost(10, 4, 2) + Cost(2, 1, 1)
    assert (c.flops, c.bytes, c.intensity) == (12, 8, 1.5)
    assert (3 * c).bytes_written == 9


def test_matmul_bytes_and_flops_by_hand():
    # [128, 64] @ [64, 128] in bf16: 2·128·64·128 = 2,097,152 FLOPs;
    # read A 128·64·2 = 16,384 B and B 64·128·2 = 16,384 B; write C 128·128·2 = 32,768 B
    op = matmul("x", "mlp", 128, 64, 128, a_size=2, b_size=2, c_size=2)
    assert op.cost == Cost(2_097_152, 32_768, 32_768)


def test_memory_bound_matmul_time():
    # 65,536 B at 1 TB/s = 65.536 ns; 2,097,152 FLOPs at 100 TFLOP/s = 20.972 ns → memory-bound;
    # predicted as the sum (no overlap) 86.508 ns, against the roofline's max 65.536 ns
    op = matmul("x", "mlp", 128, 64, 128, a_size=2, b_size=2, c_size=2)
    t = time_op(op, rates())
    assert t.bound == "memory"
    assert t.time == pytest.approx(65.536e-9 + 20.97152e-9)
    assert t.roofline == pytest.approx(65.536e-9)


def test_efficiency_and_launch_slow_the_prediction_not_the_bound():
    op = matmul("x", "mlp", 128, 64, 128, a_size=2, b_size=2, c_size=2)
    t = time_op(op, rates(memory_eff=0.5, launch_s=1e-6))
    assert t.time == pytest.approx(2 * 65.536e-9 + 20.97152e-9 + 1e-6)
    assert t.roofline == pytest.approx(65.536e-9)


def test_tile_rows_follow_m():
    r = rates()
    assert [tile_m(m, r) for m in (1, 16, 17, 64, 100, 128, 1000)] == [
        16,
        16,
        32,
        64,
        128,
        128,
        128,
    ]


def test_skinny_gemm_pays_for_padding():
    # m = 1 runs in a 16-row tile: 16× the useful FLOPs (a decode GEMV on tensor cores)
    g = Gemm(1, 4096, 4096)
    assert padded_flops(g, rates()) == 16 * g.flops


def test_small_gemm_occupies_a_whole_wave():
    # [128, 256] @ [256, 768]: 6 tiles of 128×128, K = 256 → 1 slice each: 6 pieces on 108
    # units → a whole wave: charged 108 tiles' worth, 2·256·128·128·108 FLOPs
    g = Gemm(128, 256, 768)
    assert padded_flops(g, rates(compute_units=108)) == 2.0 * 256 * 128 * 128 * 108


def test_split_k_fills_the_device():
    # m = 1, k = n = 4096: 32 tiles × 16 K-slices = 512 pieces ≥ 108 units → no idle units
    g = Gemm(1, 4096, 4096)
    assert padded_flops(g, rates(compute_units=108)) == 16 * g.flops


def test_no_wave_tail_past_one_wave():
    # 130 tiles on 128 units: stream-K balances the tail, so only tile padding is charged
    g = Gemm(128, 64, 130 * 128)
    assert padded_flops(g, rates(compute_units=128)) == g.flops


def test_vector_op_on_vector_units():
    # 1e9 elements · 5 FLOPs at 10 TFLOP/s = 0.5 ms; 0 bytes (fused) → compute-bound
    t = time_op(vector("softmax", "attention", 1e9, 5, read=0, written=0), rates())
    assert (t.bound, t.time) == ("compute", pytest.approx(0.5e-3))


def test_ring_all_reduce_alpha_beta():
    # 8 devices, 16 MB: each device sends 2·7/8·16 MB = 28 MB at 100 GB/s = 280 µs, plus one
    # collective's fixed latency of 12 µs
    op = collective("ar", "all-reduce", 8, 16e6)
    t = time_op(op, rates(link_latency_s=12e-6))
    assert t.bound == "communication"
    assert t.time == pytest.approx(280e-6 + 12e-6)
    assert t.roofline == pytest.approx(280e-6)


def test_all_gather_moves_half_of_all_reduce():
    ar, ag = collective("a", "all-reduce", 4, 1e6), collective("g", "all-gather", 4, 1e6)
    assert ag.comm.wire_bytes * 2 == ar.comm.wire_bytes == pytest.approx(1.5e6)


def test_weight_only_dequant_costs_compute():
    # 4096·4096 int4 weights, m = 256 → 2 m-tiles; 2 instructions per element per m-tile at
    # 10 TFLOP/s / 2 = 5e12 instructions/s: 16,777,216·2·2 / 5e12 = 13.4 µs (2 chosen here)
    op = matmul("w", "mlp", 256, 4096, 4096, a_size=2, b_size=0.5, c_size=2, weight_only=True)
    plain = time_op(op, rates()).t_compute
    t = time_op(op, rates(dequant_instructions=2.0)).t_compute
    assert t - plain == pytest.approx(16_777_216 * 2 * 2 / 5e12)


def cpu_like(**over) -> Rates:
    """Round CPU-like rates: 10 GB/s, no tile padding, 50 ns per GEMV row."""
    base = dict(bandwidth=10e9, tile_m_min=1, tile_m_max=1, tile_n=1, gemv_row_s=50e-9)
    return rates(**{**base, **over})


def test_gemv_pays_a_fixed_time_per_output_row():
    # [1, 500] @ [500, 1000] fp32: read 2,000 + 2,000,000 B, write 4,000 B = 2,006,000 B at
    # 10 GB/s = 200.6 µs, plus 1,000 rows · 50 ns = 50 µs → 250.6 µs, plus 1e6 FLOPs: 10 ns
    op = matmul("x", "mlp", 1, 500, 1000, a_size=4, b_size=4, c_size=4)
    t = time_op(op, cpu_like())
    assert (t.bound, t.time) == ("memory", pytest.approx(250.61e-6))
    assert t.roofline == pytest.approx(200.6e-6)


def test_skinny_gemm_streams_at_its_own_efficiency():
    # [4, 500] @ [500, 1000]: read 8,000 + 2,000,000 B, write 16,000 B = 2,024,000 B.
    # GEMV form: 202.4 µs + 50 µs = 252.4 µs; packed GEMM at η 0.5: 2,024,000 / 5e9 = 404.8 µs;
    # plus 4e6 FLOPs: 40 ns
    op = matmul("x", "mlp", 4, 500, 1000, a_size=4, b_size=4, c_size=4)
    assert time_op(op, cpu_like(gemm_memory_eff=0.5)).time == pytest.approx(404.84e-6)
    # η_gemm above η_memory: the GEMV form wins, 252.4 µs — never faster than at m = 1
    assert time_op(op, cpu_like(gemm_memory_eff=1.0)).time == pytest.approx(252.44e-6)


def test_batched_products_keep_the_plain_memory_term():
    # attention's [1, 64] @ [64, 100] per head, 8 heads: read 8·(256 + 25,600) B, write
    # 8·400 B = 210,048 B at 10 GB/s = 21.0048 µs; no per-row or packed-GEMM term
    op = matmul("s", "attention", 1, 64, 100, batch=8, a_size=4, b_size=4, c_size=4)
    assert time_op(op, cpu_like(gemm_memory_eff=0.5)).t_memory == pytest.approx(21.0048e-6)


@pytest.mark.parametrize("gemm_eff", [None, 0.3, 0.9, 1.0])
def test_weight_streaming_time_grows_with_m(gemm_eff):
    # GEMV at m = 1, packed GEMM from m = 2, compute-bound at large m: time never drops
    r = cpu_like(matmul_flops=200e9, gemm_memory_eff=gemm_eff)
    times = []
    for m in range(1, 300):
        t = time_op(matmul("x", "mlp", m, 768, 3072, a_size=4, b_size=4, c_size=4), r)
        assert t.time >= t.roofline
        times.append(t.time)
    assert all(b >= a for a, b in zip(times, times[1:], strict=False))


def test_catalogued_devices_have_no_weight_streaming_terms():
    from perfest.catalog import load_hardware
    from perfest.estimate import rates as device_rates
    from perfest.specs import Workload

    r = device_rates(load_hardware("h100-sxm"), Workload())
    assert (r.gemv_row_s, r.gemm_memory_eff) == (0.0, None)
    assert r.vector_flops == load_hardware("h100-sxm").fp32_tflops * 1e12


def test_vector_rate_defaults_to_fp32_and_can_be_set():
    from perfest.specs import HardwareSpec

    spec = dict(name="c", fp32_tflops=0.2, memory_gb=16, memory_bandwidth_gb_s=40)
    assert HardwareSpec(**spec).vector_flops == pytest.approx(0.2e12)
    assert HardwareSpec(**spec, vector_tflops=0.03).vector_flops == pytest.approx(0.03e12)


def test_cpu_spec_estimates_grow_with_batch_and_lengths():
    # the hypothesis invariants (tests/test_properties.py) cover catalogued devices, whose
    # weight-streaming terms are off; here a calibrated-CPU-like spec has all of them on
    import perfest
    from perfest.specs import HardwareSpec

    cpu = HardwareSpec(name="cpu", fp32_tflops=0.2, vector_tflops=0.03, memory_gb=24,
                       memory_bandwidth_gb_s=40, tile_m_min=1, tile_m_max=1, tile_n=1,
                       memory_efficiency=0.6, gemv_row_ns=50, gemm_memory_efficiency=0.3,
                       kernel_launch_us=8)  # fmt: skip

    def times(**w):
        est = perfest.estimate("gpt2", cpu, dtype="fp32", **w)
        return est.prefill.time_s, est.decode.time_s, est.generation.e2e_latency_s

    for field, values in (("batch", range(1, 40)), ("input_len", (1, 2, 3, 8, 64, 300)),
                          ("output_len", (1, 2, 3, 8, 64, 300))):  # fmt: skip
        series = [times(**{field: v}) for v in values]
        assert all(b >= a for s, t in zip(series, series[1:], strict=False)
                   for a, b in zip(s, t, strict=True))  # fmt: skip
