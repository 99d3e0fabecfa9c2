"""Time model cases worked by hand on a round-number device (100 TFLOP/s, 1 TB/s), each op
timed alone through the compiled plan (perfest.plan.time_op)."""

from __future__ import annotations

import pytest

from perfest.ops import Axis, CollectiveKind, Group, Role, Tensor, collective, elementwise, matmul
from perfest.plan import Point, time_op
from perfest.roofline import Bound, Rates, fit, rates
from perfest.sharding import Link
from perfest.symbols import expr


def make_rates(**over) -> Rates:
    base = dict(
        matmul_flops=100e12,
        attention_flops=100e12,
        vector_flops=10e12,
        bandwidth=1e12,
        compute_eff=1.0,
        memory_eff=1.0,
        launch_s=0.0,
        compute_units=1,
    )
    base.update(over)
    return Rates(**base)


def tensor(name, *shape, role=Role.ACTIVATION, size=2.0, dtype="bf16") -> Tensor:
    return Tensor(name, role, tuple(expr(d) for d in shape), dtype, size)


def mm(m, k, n, *, a=2.0, b=2.0, c=2.0, batch=1, b_role=Role.WEIGHT, b_dtype="bf16"):
    """[m, k] @ [k, n] with numbers for shapes and bytes per element."""
    return matmul(
        "x",
        Group.MLP,
        tensor("a", m, k, size=a),
        tensor("w", k, n, role=b_role, size=b, dtype=b_dtype),
        tensor("c", m, n, size=c),
        m=m,
        k=k,
        n=n,
        batch=batch,
    )


def test_memory_bound_matmul_time():
    # [128, 64] @ [64, 128] in bf16: 2·128·64·128 = 2,097,152 FLOPs; read A 16,384 B and
    # B 16,384 B, write C 32,768 B: 65,536 B at 1 TB/s = 65.536 ns; 2,097,152 FLOPs at
    # 100 TFLOP/s = 20.972 ns → memory-bound; predicted as the sum (no overlap) 86.508 ns,
    # against the roofline's max 65.536 ns
    row = time_op(mm(128, 64, 128), make_rates())
    assert (row.flops, row.bytes_read, row.bytes_written) == (2_097_152, 32_768, 32_768)
    assert row.bound is Bound.MEMORY
    assert row.time == pytest.approx(65.536e-9 + 20.97152e-9)
    assert row.roofline == pytest.approx(65.536e-9)


def test_efficiency_and_launch_slow_the_prediction_not_the_bound():
    row = time_op(mm(128, 64, 128), make_rates(memory_eff=0.5, launch_s=1e-6))
    assert row.time == pytest.approx(2 * 65.536e-9 + 20.97152e-9 + 1e-6)
    assert row.roofline == pytest.approx(65.536e-9)
    assert row.bound is Bound.OVERHEAD  # 1 µs of launch against 152 ns of work


def test_count_multiplies_every_time():
    one = time_op(mm(128, 64, 128), make_rates(launch_s=1e-6))
    three = time_op(mm(128, 64, 128), make_rates(launch_s=1e-6), count=3)
    assert (three.time, three.overhead, three.flops) == pytest.approx(
        (3 * one.time, 3 * one.overhead, 3 * one.flops)
    )


def test_tiles_pad_least_and_prefer_the_larger_tile():
    # (padded, tile, count) over row tiles 16, 32, 64, 128: m = 1 pads to one 16-row tile;
    # m = 17 pads to 32 rows with two 16-row tiles or one 32-row tile (the larger wins);
    # m = 48 = 3·16 needs no padding (a 64-row tile would pad to 64); m = 129 pads to
    # 9·16 = 144 rows, not 2·128 = 256; m = 256 = 2·128 is exact with the largest tile
    rows = (16, 32, 64, 128)
    assert [fit(m, rows) for m in (1, 17, 48, 64, 129, 256)] == [
        (16, 16, 1),
        (32, 32, 1),
        (48, 16, 3),
        (64, 64, 1),
        (144, 16, 9),
        (256, 128, 2),
    ]


def test_one_row_past_a_tile_costs_one_small_tile_not_a_large_one():
    # [129, 4096] @ [4096, 4096]: the cheapest shape pads 129 rows to 144 (9 tiles of 16);
    # columns 4096 = 16·256 are exact; 9·16 = 144 tiles × 16 K-slices ≥ 108 units (full
    # waves): 2·4096·144·4096 FLOPs at 100 TFLOP/s = 48.32 µs (two 128-row tiles: 85.9 µs)
    row = time_op(mm(129, 4096, 4096), make_rates(compute_units=108))
    assert row.t_compute == pytest.approx(2 * 4096 * 144 * 4096 / 100e12)


def test_skinny_gemm_pays_for_padding():
    # m = 1 runs in a 16-row tile: 16× the useful FLOPs (a decode GEMV on tensor cores):
    # 16·2·4096·4096 = 536,870,912 FLOPs at 100 TFLOP/s = 5.369 µs of compute
    row = time_op(mm(1, 4096, 4096), make_rates(compute_units=108))
    assert row.t_compute == pytest.approx(16 * 2 * 4096 * 4096 / 100e12)


def test_small_gemm_occupies_a_whole_wave():
    # [128, 256] @ [256, 768], K = 256 → 1 slice per tile: even the smallest tiles, 16×64,
    # give only 8·12 = 96 pieces on 108 units → one partial wave, charged as 108 tiles of
    # 16×64: 2·256·16·64·108 FLOPs (every larger shape leaves more units idle: 6 tiles of
    # 128×128 would be charged 108·128·128)
    row = time_op(mm(128, 256, 768), make_rates(compute_units=108))
    assert row.t_compute == pytest.approx(2.0 * 256 * 16 * 64 * 108 / 100e12)


def test_split_k_fills_the_device():
    # m = 1, k = n = 4096: 32 tiles × 16 K-slices = 512 pieces ≥ 108 units → no idle units
    row = time_op(mm(1, 4096, 4096), make_rates(compute_units=108))
    assert row.t_compute == pytest.approx(16 * row.matmul_flops / 100e12)


def test_no_wave_tail_past_one_wave():
    # 130 tiles on 128 units: stream-K balances the tail, so only tile padding is charged
    row = time_op(mm(128, 64, 130 * 128), make_rates(compute_units=128))
    assert row.t_compute == pytest.approx(row.matmul_flops / 100e12)


def test_vector_op_on_vector_units():
    # 1e9 elements · 5 FLOPs at 10 TFLOP/s = 0.5 ms; 0 bytes (fused) → compute-bound
    op = elementwise("softmax", Group.ATTENTION, expr(1e9), 5, (), ())
    row = time_op(op, make_rates())
    assert (row.bound, row.time) == (Bound.COMPUTE, pytest.approx(0.5e-3))


def test_ring_all_reduce_alpha_beta():
    # 8 devices, 16 MB: each device sends 2·7/8·16 MB = 28 MB at 100 GB/s = 280 µs, plus one
    # collective's fixed latency of 12 µs
    buffer = tensor("x", 16_000_000, size=1.0)
    op = collective("ar", CollectiveKind.ALL_REDUCE, Axis.TP, 8, buffer)
    row = time_op(op, make_rates(), links={Axis.TP: Link("node", 100e9, 12e-6)})
    assert row.bound is Bound.COMMUNICATION
    assert row.time == pytest.approx(280e-6 + 12e-6)
    assert row.roofline == pytest.approx(280e-6)
    assert row.bytes_read == row.bytes_written == pytest.approx(28e6)  # what it sends, receives


def test_all_gather_moves_half_of_all_reduce():
    buffer = tensor("x", 1_000_000, size=1.0)
    ar = collective("a", CollectiveKind.ALL_REDUCE, Axis.TP, 4, buffer).collective
    ag = collective("g", CollectiveKind.ALL_GATHER, Axis.TP, 4, buffer).collective
    assert 2 * ag.wire_bytes.value() == ar.wire_bytes.value() == pytest.approx(1.5e6)


def test_weight_only_dequant_costs_compute():
    # 4096·4096 int4 weights, m = 256 → 2 m-tiles; 2 instructions per element per m-tile at
    # 10 TFLOP/s / 2 = 5e12 instructions/s: 16,777,216·2·2 / 5e12 = 13.4 µs
    plain = time_op(mm(256, 4096, 4096), make_rates()).t_compute
    quant = time_op(mm(256, 4096, 4096, b=0.5, b_dtype="int4"), make_rates()).t_compute
    assert quant - plain == pytest.approx(16_777_216 * 2 * 2 / 5e12)


def cpu_like(**over) -> Rates:
    """Round CPU-like rates: 10 GB/s, no tile padding, 50 ns per GEMV row."""
    base = dict(bandwidth=10e9, tile_ms=(1,), tile_ns=(1,), gemv_row_s=50e-9)
    return make_rates(**{**base, **over})


def test_gemv_pays_a_fixed_time_per_output_row():
    # [1, 500] @ [500, 1000] fp32: read 2,000 + 2,000,000 B, write 4,000 B = 2,006,000 B at
    # 10 GB/s = 200.6 µs, plus 1,000 rows · 50 ns = 50 µs → 250.6 µs, plus 1e6 FLOPs: 10 ns
    row = time_op(mm(1, 500, 1000, a=4, b=4, c=4), cpu_like())
    assert (row.bound, row.time) == (Bound.MEMORY, pytest.approx(250.61e-6))
    assert row.roofline == pytest.approx(200.6e-6)


def test_skinny_gemm_streams_at_its_own_efficiency():
    # [4, 500] @ [500, 1000]: read 8,000 + 2,000,000 B, write 16,000 B = 2,024,000 B.
    # GEMV form: 202.4 µs + 50 µs = 252.4 µs; packed GEMM at η 0.5: 2,024,000 / 5e9 = 404.8 µs;
    # plus 4e6 FLOPs: 40 ns
    op = mm(4, 500, 1000, a=4, b=4, c=4)
    assert time_op(op, cpu_like(gemm_memory_eff=0.5)).time == pytest.approx(404.84e-6)
    # η_gemm above η_memory: the GEMV form wins, 252.4 µs — never faster than at m = 1
    assert time_op(op, cpu_like(gemm_memory_eff=1.0)).time == pytest.approx(252.44e-6)


def test_batched_products_keep_the_plain_memory_term():
    # attention's [1, 64] @ [64, 100] per head, 8 heads: read 8·(256 + 25,600) B, write
    # 8·400 B = 210,048 B at 10 GB/s = 21.0048 µs; no per-row or packed-GEMM term
    op = mm(1, 64, 100, a=4, b=4, c=4, batch=8, b_role=Role.KV_CACHE)
    assert time_op(op, cpu_like(gemm_memory_eff=0.5)).t_memory == pytest.approx(21.0048e-6)


@pytest.mark.parametrize("gemm_eff", [None, 0.3, 0.9, 1.0])
def test_weight_streaming_time_grows_with_m(gemm_eff):
    # GEMV at m = 1, packed GEMM from m = 2, compute-bound at large m: time never drops
    r = cpu_like(matmul_flops=200e9, gemm_memory_eff=gemm_eff)
    times = []
    for m in range(1, 300):
        row = time_op(mm(m, 768, 3072, a=4, b=4, c=4), r)
        assert row.time >= row.roofline
        times.append(row.time)
    assert all(b >= a for a, b in zip(times, times[1:], strict=False))


def test_symbolic_op_timed_at_a_point():
    # the same [b·s, 64] @ [64, 128] product at b·s = 128 equals the numeric one
    from perfest.symbols import b, s

    a = Tensor("a", Role.ACTIVATION, (b * s, expr(64)), "bf16", 2.0)
    w = tensor("w", 64, 128, role=Role.WEIGHT)
    c = Tensor("c", Role.ACTIVATION, (b * s, expr(128)), "bf16", 2.0)
    op = matmul("x", Group.MLP, a, w, c, m=b * s, k=64, n=128)
    row = time_op(op, make_rates(), Point(b=4, s=32, t=32, s_logits=1))
    assert row.time == pytest.approx(time_op(mm(128, 64, 128), make_rates()).time)


def test_catalogued_devices_have_no_weight_streaming_terms():
    from perfest.catalog import load_hardware
    from perfest.specs import Workload

    r = rates(load_hardware("h100-sxm"), Workload())
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
