"""From an op's FLOPs and bytes to time: the pure roofline bound, and the prediction.

This module states the time model and its constants; perfest.plan evaluates it, term by term,
over a compiled graph (one implementation, used for the totals and for the per-op rows).

Pure roofline (an upper bound on speed, reported beside every prediction):
    T_roof = max(FLOPs / peak, bytes / bandwidth)                    (comm: bytes / link)

Prediction, each term its own documented slowdown:
    T = T_math + T_mem + kernels · t_launch
    T_math = padded_FLOPs / (peak · η_compute) + T_dequant
    T_mem  = bytes / (bandwidth · η_memory)                          (+ weight streaming, below)
    T_comm = α + wire_bytes / link                                   (α–β model, ring)

T_math + T_mem, not max(T_math, T_mem): within a kernel, moving the data and doing the math are
charged one after the other. The max assumes they overlap perfectly, the roofline's ideal; real
kernels expose their pipeline's prologue and epilogue (each tile loads before it computes and
computes before it stores), and near the ridge point both resources cannot both run flat out.
Two independent checks agree with the sum and not with the max: on this project's CPU the
packed GEMM's packing and compute add up (benchmarks/RESULTS.md, CPU accuracy), and against 49
published GPU measurements from 7 sources (benchmarks/bench_published.py) the max predicts
runs ~14 % too fast in the median, worst at short prompts near the ridge point (−30…−40 %),
where the sum is within a few percent. The sum has no tunable part; it exceeds the max by at
most 2× (at the ridge point), and far from it the smaller term hardly matters.

η_compute, η_memory: the fraction of the datasheet peak that large, well-shaped kernels reach
(the device YAML cites the measurement; overridable per call). `peak` is the matmul dtype's
rate for matrix products and the device's vector rate (`vector_tflops`, default the FP32 rate)
for element-wise work: a CPU runs GELU, norms and softmax at a few percent of its GEMM peak.

Weight streaming of a single (unbatched) product [m, k]·[k, n], a linear layer. Both terms are
measured by `perfest calibrate` on a CPU and absent (0, η_memory) by default, so catalogued
GPUs are unchanged:
    T_stream = bytes / (bandwidth · η_memory) + n · t_row
    T_mem    = T_stream                                              (m = 1)
    T_mem    = max(T_stream, bytes / (bandwidth · η_gemm))           (m ≥ 2)
t_row (`gemv_row_ns`): a matrix-vector product ends each output row's dot product with a
horizontal sum of the vector accumulators and a store — a fixed time per row, so short rows
(small k) stream below the asymptotic rate (measured on a 2-core EPYC: k = 512 → 17 GB/s,
k = 4096 → 24 GB/s). η_gemm (`gemm_memory_efficiency`): with two or more rows a CPU BLAS
leaves its GEMV kernel for its packed GEMM, which copies each weight panel into a packed buffer
before using it, so skinny products stream weights at a lower rate (~13 GB/s there). Each form
is non-decreasing in m and the max of them is too, so time never drops as the batch grows; at
large m the compute term wins anyway. Batched products (attention's per-head q·kᵀ, ·v) run in a
fused attention kernel, not a BLAS GEMV, and keep the plain memory term. A grouped GEMM of
routed experts (perfest.layers.moe) is e_t products, each streaming its own expert's weights:
each pays the per-row term (e_t·n·t_row) and, with m_e ≥ 2 rows, the packed rate — the same
physics as a single product, e_t times (a CPU runs them as separate BLAS calls).

padded_FLOPs — small-shape efficiency (NVIDIA, "Matrix Multiplication Background User's Guide":
tile and wave quantization). A GEMM runs in output tiles of Tm×Tn; a partial tile costs a full
one. GEMM libraries do not use one tile shape: CUTLASS instantiates, and cuBLAS's heuristics
choose among, several (on Ampere and Hopper 16…128 rows by 64…256 columns; 16 is the smallest
tensor-core MMA M), picking per problem the one that runs fastest. So each product is charged
the cheapest of the device's shapes (`tile_m_min`…`tile_m_max` × `tile_n_min`…`tile_n`, powers
of two; a calibrated CPU sets them to 1): the fewest padded FLOPs, ties going to the larger
tile. The waste of padding is then bounded by one smallest tile: 129 rows pay for 144 (9 tiles
of 16), not 256 (2 of 128), so decode time stays near-continuous in the batch; where no shape
pads (m and n multiples of the largest tile, full waves) nothing changes.
Decode's matrix-vector products (m = b) still pay 16/m in compute — invisible while
memory-bound, which is why decode stays memory-bound well past the naive ridge point.
Occupancy: the tiles, each split along K into slices of at least K_SLICE = 256 (split-K /
stream-K), share the device's `compute_units`. A product with fewer such pieces than units
runs as one partial wave and leaves units idle (small models, short prompts): it is charged a
whole wave, Tm·Tn·units/slices, and that charge is part of each shape's cost (smaller tiles
fill more units). With more pieces than units, stream-K scheduling (CUTLASS, cuBLAS)
balances the tail, so no wave quantization is charged; η_compute covers what remains.

T_dequant — weight-only int4/int8 kernels unpack each weight element in registers once per
m-tile (part of each tile shape's cost, so large m favours taller tiles):
elements · instructions_per_element · ceil(m / Tm) / instruction_rate, with the
instruction rate taken as the device's FP32 rate / 2 (an FMA is one instruction, 2 FLOPs) and
2 instructions per int4 element (bit-field extract; convert fused with scale-and-zero, as the
lop3 magic-number conversion does) and 1 per int8 or fp8 (convert-and-scale); 2 per mxfp4
element (extract the E2M1 nibble; a table or bit-trick convert fused with the block's power-of-two
E8M0 scale, an exponent add) — reasoned like int4, not measured.
This is why W4A16 wins at small batch and loses its edge at large batch (AWQ, Marlin papers).

t_launch — a fixed cost per kernel launch (the device YAML cites it): it dominates short
prefills and small models, where kernels finish faster than they can be issued. An op whose
launches take longer than its work is reported with bound "overhead".

α — a fixed time per collective (the device YAML cites it): small all-reduces are latency-bound
at the time of launching and synchronizing the collective kernel, ~12 µs on an NVLink node in
nccl-tests whatever N (even a 1-rank communicator takes ~9 µs), so α is charged once per
collective, not once per ring step; the ring's 2(N−1)/N of the message then moves at the link's
per-direction bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfest.enums import StrEnum
from perfest.ops import Op
from perfest.specs import HardwareSpec, Workload

K_SLICE = 256  # smallest K slice a split-K / stream-K GEMM hands one unit (reasoned)

DEQUANT_INSTRUCTIONS_PER_ELEMENT = {"int4": 2.0, "int8": 1.0, "fp8": 1.0, "mxfp4": 2.0}


class Bound(StrEnum):
    """What paces an op (or holds the most time of a phase)."""

    COMPUTE = "compute"
    MEMORY = "memory"
    COMMUNICATION = "communication"
    OVERHEAD = "overhead"  # launching the kernels takes longer than running them


@dataclass(frozen=True, slots=True)
class Rates:
    """Everything the time model needs from a device and a workload, in SI units."""

    matmul_flops: float  # dense peak FLOP/s of the matmul compute dtype
    attention_flops: float  # dense peak FLOP/s of the attention products (activation × activation)
    vector_flops: float  # FLOP/s of element-wise work
    bandwidth: float  # byte/s
    compute_eff: float
    memory_eff: float
    launch_s: float
    compute_units: int
    tile_ms: tuple[int, ...] = (16, 32, 64, 128)  # the row tiles a GEMM library has, ascending
    tile_ns: tuple[int, ...] = (64, 128, 256)  # its column tiles, ascending
    gemv_row_s: float = 0.0  # fixed time per output row of a single product's weight stream
    gemm_memory_eff: float | None = None  # weight streaming of m ≥ 2 products (None: no term)


def peak(op: Op, r: Rates) -> float:
    """The rate an op's arithmetic runs at: the matmul dtype's peak for a product with a weight,
    the attention dtype's for a product of two activations, the vector rate otherwise."""
    if op.gemm is None:
        return r.vector_flops
    return r.attention_flops if op.activation_product else r.matmul_flops


def fit(x: int, tiles: tuple[int, ...]) -> tuple[int, int, int]:
    """(padded x, tile, tiles used): the least padding of x over `tiles` (ascending, each a
    multiple of the first), with the largest tile that pads no more (larger tiles reuse their
    operands better, so a library prefers them on a tie)."""
    low = tiles[0]
    padded = -(-x // low) * low
    for tile in reversed(tiles):
        count = -(-x // tile)
        if count * tile == padded:
            return padded, tile, count
    return padded, low, padded // low


def cheapest_tiles(
    m: int,
    columns: tuple[tuple[int, int], ...],
    waves: float,
    r: Rates,
    area_s: float,
    unpack_s: float,
) -> tuple[float, int]:
    """The tile shape a GEMM library would run: the cheapest of the device's tiles Tm × Tn.

    `columns` pairs each column tile Tn with its tile count over n (all batched products);
    `waves` = compute_units / K-slices, the fewest tiles that occupy every unit. A shape is
    charged Tm·Tn·max(tiles, waves) output elements (tile and wave quantization) at `area_s`
    seconds each, plus `unpack_s` per m-tile (weight-only dequantization). Returns (charged
    output elements, m-tiles) of the cheapest; ties go to the larger tile."""
    best = best_area = float("inf")
    best_mt = 1
    for tm in reversed(r.tile_ms):
        mt = -(-m // tm)
        for tn, nt in reversed(columns):
            tiles = mt * nt
            area = tm * tn * (tiles if tiles >= waves else waves)
            cost = area * area_s + unpack_s * mt
            if cost < best:
                best, best_area, best_mt = cost, area, mt
    return best_area, best_mt


def attention_dtype(hw: HardwareSpec, w: Workload) -> str:
    """The dtype of attention's q·kᵀ and p·v. fp8 and int8 mean W8A8 *linear layers*, as vLLM,
    TensorRT-LLM and SmoothQuant run them; the products of two activations stay in 16-bit."""
    if w.dtype in ("fp8", "int8"):
        return next((dt for dt in ("bf16", "fp16") if dt in hw.dtypes), w.dtype)
    return w.dtype


def rates(hw: HardwareSpec, w: Workload) -> Rates:
    """The device's rates for this workload; matmuls run at the peak of the activation dtype
    (weight-only int4/int8 weights are dequantized to it), element-wise work at the device's
    vector rate. `--memory-efficiency` overrides η_memory; the weight-streaming terms
    (per-row GEMV time, η of m ≥ 2 products) are the device's."""
    return Rates(
        matmul_flops=hw.peak_flops(w.dtype),
        attention_flops=hw.peak_flops(attention_dtype(hw, w)),
        vector_flops=hw.vector_flops,
        bandwidth=hw.memory_bandwidth,
        compute_eff=w.compute_efficiency or hw.compute_efficiency,
        memory_eff=w.memory_efficiency or hw.memory_efficiency,
        gemv_row_s=hw.gemv_row_s,
        gemm_memory_eff=hw.gemm_memory_efficiency,
        launch_s=hw.kernel_launch_s,
        compute_units=hw.compute_units,
        tile_ms=hw.tile_ms,
        tile_ns=hw.tile_ns,
    )
