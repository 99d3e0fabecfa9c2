"""Time model cases worked by hand on a round-number device (100 TFLOP/s, 1 TB/s)."""

from __future__ import annotations

import pytest

from perfest.cost import Cost, Gemm, collective, matmul, vector
from perfest.roofline import Rates, padded_flops, tile_m, time_op


def rates(**over) -> Rates:
    base = dict(
        matmul_flops=100e12,
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
    # 65,536 B at 1 TB/s = 65.536 ns; 2,097,152 FLOPs at 100 TFLOP/s = 20.97 ns → memory-bound
    op = matmul("x", "mlp", 128, 64, 128, a_size=2, b_size=2, c_size=2)
    t = time_op(op, rates())
    assert t.bound == "memory"
    assert t.time == pytest.approx(65.536e-9)
    assert t.roofline == pytest.approx(65.536e-9)


def test_efficiency_and_launch_slow_the_prediction_not_the_bound():
    op = matmul("x", "mlp", 128, 64, 128, a_size=2, b_size=2, c_size=2)
    t = time_op(op, rates(memory_eff=0.5, launch_s=1e-6))
    assert t.time == pytest.approx(2 * 65.536e-9 + 1e-6)
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
    # 8 devices, 16 MB: 2·7 = 14 steps; each device sends 2·7/8·16 MB = 28 MB at 100 GB/s = 280 µs,
    # plus 14·5 µs of latency = 70 µs
    op = collective("ar", "all-reduce", 8, 16e6)
    t = time_op(op, rates(link_latency_s=5e-6))
    assert t.bound == "communication"
    assert t.time == pytest.approx(280e-6 + 70e-6)
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
