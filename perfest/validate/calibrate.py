"""`perfest calibrate`: what this device achieves, written as a hardware YAML.

Convention (the catalog's): peaks are the best rates the device reaches at all, and the
efficiencies are the fraction of them that inference-shaped kernels reach, both measured.

    <dtype>_tflops         best 2·n³/t over square GEMMs of growing n (the curve is recorded
                           in `calibration`; sizes stop growing once one product takes long)
    compute_efficiency     median FLOP/s of MLP-shaped products [m, h]·[h, 4h] and [m, 4h]·[4h, h]
                           (m = 128, 512; h = 1024; fp32 on a CPU, bf16 on a GPU; weights
                           cycled through more memory than the last-level cache, as a
                           model's are) over that dtype's peak
    vector_tflops          element-wise FLOP/s: perfest's FLOPs over the measured time, summed
                           over the kernels it counts as vector work (SiLU, GELU, GELU-tanh,
                           LayerNorm, RMSNorm, softmax) on a cache-resident [128, 3072] tensor
    memory_bandwidth_gb_s  2·bytes/t of a large copy (read + write)
    memory_efficiency      asymptotic weight-streaming rate of matrix-vector products (what decode
    gemv_row_ns            does: [1, k]·[k, n] over weights larger than the cache) over the copy
                           rate, and the fixed time per output row: the line
                           t/n = k·bytes/B + t_row through a short-row (k = 512) and a long-row
                           (k = 4096) shape of the same size. A CPU streams a GEMV's weights at
                           ~60 % of its copy rate and pays ~50 ns per row.
    gemm_memory_efficiency weight-streaming rate of skinny products [m, k]·[k, n] (m = 2, 4, 8,
                           the same shapes; a CPU BLAS packs the weights for these) over the copy
                           rate, median
    kernel_launch_us       fixed cost per op perfest counts: a forward pass of tiny reference
                           models (all work negligible) divided by perfest's kernel count. In
                           eager PyTorch this is dispatch (Python, autograd-off checks, the
                           allocator) as much as the launch itself.
    tile_*, compute_units  1 on a CPU (a BLAS blocks in registers, no 128-wide tile padding);
                           the catalog defaults and the SM count on a CUDA device.

Every rate is sampled until stable, and refused if physically impossible (perfest.validate.
robust); the spread of each (`<rate>_low`, `<rate>_high`, `<rate>_rounds`) is recorded under
`calibration`.
"""

from __future__ import annotations

import datetime
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

from perfest.specs import HardwareSpec, ModelConfig, build
from perfest.validate import require_torch
from perfest.validate.measure import (  # noqa: F401 (cpu_name: benchmarks read it here)
    _host_memory_gb,
    cpu_name,
    last_level_cache_bytes,
    resolve_device,
    synchronize,
    time_call,
)
from perfest.validate.robust import (  # noqa: F401 (the spec file's helpers live there)
    Reading,
    check_default_spec_path,
    default_spec_path,
    fraction,
    plausible,
    spec_origin,
    stable,
    write_spec,
)

#: GEMM sizes tried per device, smallest first (`quick`: the first two only).
GEMM_SIZES = {"cpu": (128, 256, 512, 1024, 2048), "cuda": (1024, 2048, 4096, 8192)}
#: Stop growing n before one product would take longer than this (CPU fp16 can run 100×
#: slower than fp32).
GEMM_TIME_LIMIT_S = 0.25
#: Bytes copied to measure bandwidth; on a CPU at least twice its last-level cache (a server's
#: L3 reaches hundreds of MiB: a smaller copy measures the cache, 33–49 GB/s "quick" against
#: 23–26 GB/s full on one machine), quick or not.
COPY_BYTES = {"cpu": 256 * 2**20, "cuda": 2 * 2**30, "quick": 32 * 2**20}
#: Weights cycled through by the GEMV and MLP-shaped GEMM measurements; on a CPU at least twice
#: its last-level cache (`quick`: 64 MiB, fast but possibly cache-resident; for tests).
STREAM_BYTES = {"cpu": 256 * 2**20, "cuda": 2 * 2**30, "quick": 64 * 2**20}


def _buffer_bytes(table: dict, device: str, quick: bool) -> int:
    """Bytes to move for a measurement: the table's, and on a CPU past its last-level cache
    (for copies always; for weight streaming unless quick)."""
    kind = "quick" if quick else ("cuda" if device.startswith("cuda") else "cpu")
    nbytes = table[kind]
    if not device.startswith("cuda") and (table is COPY_BYTES or not quick):
        nbytes = max(nbytes, 2 * last_level_cache_bytes())
    return nbytes


DTYPES = {"cpu": ("fp32", "bf16", "fp16"), "cuda": ("fp32", "tf32", "bf16", "fp16")}

#: Two tiny models whose forward pass is all overhead: Llama-style (RoPE, GQA, gated) and
#: GPT-2-style (learned positions, LayerNorm, classic MLP, biases).
TINY_MODELS = (
    ModelConfig(
        name="tiny-llama", vocab_size=64, hidden_size=16, num_layers=4, num_heads=4,
        num_kv_heads=2, intermediate_size=32,
    ),
    ModelConfig(
        name="tiny-gpt2", vocab_size=64, hidden_size=16, num_layers=4, num_heads=4,
        intermediate_size=32, mlp="classic", activation="gelu_tanh", norm="layernorm",
        position="learned", qkv_bias=True, out_bias=True, mlp_bias=True, tied_embeddings=True,
    ),
)  # fmt: skip

Progress = Callable[[str], None]


def gemm_curve(device: str, dtype: str, quick: bool) -> dict[int, float]:
    """FLOP/s of [n, n] @ [n, n] for growing n."""
    torch = require_torch()
    from perfest.validate.reference import torch_dtype

    kind = "cuda" if device.startswith("cuda") else "cpu"
    sizes = GEMM_SIZES[kind][:2] if quick else GEMM_SIZES[kind]
    curve = {}
    if kind == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    for n in sizes:
        a = torch.randn(n, n, dtype=torch_dtype(dtype), device=device)
        b = torch.randn(n, n, dtype=torch_dtype(dtype), device=device)
        seconds = time_call(lambda a=a, b=b: a @ b, device, 3 if quick else 7, 1, best=True)
        curve[n] = 2.0 * n**3 / seconds
        if seconds * 8 > GEMM_TIME_LIMIT_S:  # the next size is 8× the work
            break
    if kind == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    return curve


def copy_bandwidth(device: str, quick: bool) -> Reading:
    """Byte/s of dst.copy_(src): each byte read once and written once (each sample the fastest
    of a few copies, sampled until stable)."""
    torch = require_torch()
    n = _buffer_bytes(COPY_BYTES, device, quick)
    src = torch.ones(n, dtype=torch.uint8, device=device)
    dst = torch.zeros_like(src)  # touched, so page faults stay out of the timing
    time_call(lambda: dst.copy_(src), device, 1, 2)  # warm-up

    def sample() -> float:
        return 2.0 * n / time_call(lambda: dst.copy_(src), device, 3, 0, best=True)

    return stable(sample, quick)


def _weights(
    device: str, quick: bool, k: int, n: int, dtype: str = "fp32", most: int | None = None
) -> list:
    """Enough distinct [n, k] weights to overflow the caches (like a model's layers), or
    `most` of them."""
    torch = require_torch()
    from perfest.validate.reference import torch_dtype

    size = k * n * torch.finfo(torch_dtype(dtype)).bits // 8
    count = max(2, _buffer_bytes(STREAM_BYTES, device, quick) // size)
    count = min(count, most) if most else count
    return [torch.randn(n, k, dtype=torch_dtype(dtype), device=device) for _ in range(count)]


#: A short-row and a long-row weight of the same size (8 MiB in fp32), [k, n].
STREAM_SHAPES = ((512, 4096), (4096, 512))


def stream_seconds(weights: list, m: int, device: str, warmup: int = 0) -> float:
    """Seconds of one fp32 product [m, k]·[k, n], cycling through `weights` (the faster of two
    sweeps; the sampling around it does the repeating)."""
    torch = require_torch()
    x = torch.randn(m, weights[0].shape[1], device=device)

    def sweep():
        for w in weights:
            torch.nn.functional.linear(x, w)

    return time_call(sweep, device, 2, warmup, best=True) / len(weights)


def gemv_line(short_s: float, long_s: float) -> tuple[float, float]:
    """(byte/s, seconds per row) of the line t/n = 4k/B + t_row through the per-row times of the
    short-row and the long-row shape. Long rows must cost more per row than short ones; when
    noise says otherwise, the line is meaningless and the long-row shape's rate stands alone
    (no per-row term) — never a slope clamped to nothing, which once read 1.4e19 B/s."""
    (k1, n1), (k2, n2) = STREAM_SHAPES
    rise = long_s / n2 - short_s / n1
    if rise > 0:
        seconds_per_byte = rise / (4 * (k2 - k1))
        row_s = short_s / n1 - 4 * k1 * seconds_per_byte
        if row_s >= 0:
            return 1.0 / seconds_per_byte, row_s
    return 4 * k2 * n2 / long_s, 0.0


def weight_streaming(device: str, quick: bool) -> tuple[Reading, float, Reading]:
    """Weight byte/s of matrix-vector products [1, k]·[k, n] and seconds per output row (the
    line t/n = 4k/B + t_row through a short-row and a long-row shape), and the median weight
    byte/s of skinny products [m, k]·[k, n] for m = 2, 4, 8 over the same shapes; each
    sampled until stable."""
    weights = [_weights(device, quick, k, n) for k, n in STREAM_SHAPES]
    for w in weights:
        stream_seconds(w, 1, device, warmup=1)  # first calls: BLAS set-up, page mapping
    rows: list[float] = []

    def gemv() -> float:
        rate, row_s = gemv_line(*(stream_seconds(w, 1, device) for w in weights))
        rows.append(row_s)
        return rate

    def skinny() -> float:
        rates = [
            4 * k * n / stream_seconds(w, m, device)
            for (k, n), w in zip(STREAM_SHAPES, weights, strict=True)
            for m in ((4,) if quick else (2, 4, 8))
        ]
        return statistics.median(rates)

    return stable(gemv, quick), statistics.median(rows), stable(skinny, quick)


def vector_rate(device: str, quick: bool) -> Reading:
    """FLOP/s of the element-wise kernels perfest counts, on a cache-resident [128, 3072] fp32
    tensor: perfest's FLOPs per element over the measured time, summed over the kernels."""
    torch = require_torch()
    from perfest.layers.attention import SOFTMAX_FLOPS_PER_ELEMENT
    from perfest.layers.mlp import ACTIVATION_FLOPS_PER_ELEMENT as ACT
    from perfest.layers.norm import NORM_FLOPS_PER_ELEMENT as NORM
    from perfest.validate.reference import ACTIVATIONS, RMSNorm

    rows, cols = 128, 3072
    x = torch.randn(rows, cols, device=device)
    kernels = [(partial(ACTIVATIONS[a], x), ACT[a]) for a in ("silu", "gelu", "gelu_tanh")]
    kernels += [
        (partial(torch.nn.LayerNorm(cols, device=device), x), NORM["layernorm"]),
        (partial(RMSNorm(cols, device=device), x), NORM["rmsnorm"]),
        (partial(torch.softmax, x, -1), SOFTMAX_FLOPS_PER_ELEMENT),
    ]
    flops = rows * cols * sum(per_element for _, per_element in kernels)

    def sample() -> float:
        seconds = sum(time_call(fn, device, 3 if quick else 7, 1, best=True) for fn, _ in kernels)
        return flops / seconds

    with torch.no_grad():
        return stable(sample, quick)


def mlp_gemm_rate(device: str, quick: bool, dtype: str, h: int = 1024) -> Reading:
    """Median FLOP/s of [m, h]·[h, 4h] and [m, 4h]·[4h, h] for m = 128 and 512."""
    torch = require_torch()
    from perfest.validate.reference import torch_dtype

    cases = []
    for m in (128,) if quick else (128, 512):
        for k, n in ((h, 4 * h), (4 * h, h)):
            weights = _weights(device, quick, k, n, dtype, most=8)
            x = torch.randn(m, k, dtype=torch_dtype(dtype), device=device)

            def sweep(weights=weights, x=x):
                for w in weights:
                    torch.nn.functional.linear(x, w)

            cases.append((sweep, 2.0 * m * k * n * len(weights)))

    for fn, _ in cases:
        time_call(fn, device, 1, 1)  # warm-up

    def sample() -> float:
        return statistics.median(flops / time_call(fn, device, 1, 0) for fn, flops in cases)

    return stable(sample, quick)


def op_overhead(device: str, quick: bool) -> float:
    """Seconds per perfest-counted op of an eager forward pass where no op does real work."""
    torch = require_torch()
    from perfest.graph import build_graph
    from perfest.layers import Ctx
    from perfest.specs import Workload
    from perfest.validate.reference import build_reference

    per_op = []
    for model in TINY_MODELS:
        net = build_reference(model, "fp32", device)
        for s, t in ((8, 8), (1, 9)):  # a short prefill and a decode step
            cache = net.new_cache(1, t)
            ids = torch.zeros(1, s, dtype=torch.long, device=device)

            def step(net=net, cache=cache, ids=ids, past=t - s):
                cache.length = past
                net(ids, cache)

            with torch.no_grad():
                seconds = time_call(step, device, repeats=5 if quick else 21, warmup=3)
            # eager PyTorch's kernels: every element-wise op its own (fusion none)
            graph = build_graph(Ctx.of(model, Workload(batch=1, dtype="fp32", fusion="none")))
            kernels = sum(op.kernels * segment.count for segment, op in graph.ops())
            per_op.append(seconds / kernels)
    return sorted(per_op)[len(per_op) // 2]


def _spin_up(device: str, quick: bool) -> None:
    """Keep the device busy for a moment first, so clocks (and a VM's vCPUs) are up to speed."""
    torch = require_torch()
    a = torch.randn(512, 512, device=device)
    deadline = time.perf_counter() + (0.1 if quick else 1.0)
    while time.perf_counter() < deadline:
        a @ a
        synchronize(device)


def describe_device(device: str) -> dict:
    """Name, display name, memory (GB) and compute units of the local device."""
    torch = require_torch()
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        slug = props.name.lower().replace("nvidia", "").strip().replace(" ", "-")
        return {
            "name": f"calibrated-cuda-{slug}",
            "display_name": f"{props.name} (calibrated)",
            "vendor": "nvidia" if "nvidia" in props.name.lower() else "",
            "memory_gb": round(props.total_memory / 1e9, 2),
            "compute_units": props.multi_processor_count,
        }
    threads = torch.get_num_threads()
    return {
        "name": "calibrated-cpu",
        "display_name": f"{cpu_name()}, {threads} threads (calibrated)",
        "vendor": "cpu",
        "memory_gb": round(_host_memory_gb(), 2),
        "compute_units": 1,
        "tile_m_min": 1,
        "tile_m_max": 1,
        "tile_n": 1,  # and tile_n_min, which follows it
    }


def calibrate(device: str = "cpu", quick: bool = False, progress: Progress | None = None):
    """Measure the device and return (HardwareSpec, curves: dtype → {n: FLOP/s}). Every rate
    is sampled until stable (its spread recorded under `calibration`) and checked against what
    a device can physically do: an impossible result is an UnsupportedError, not a spec."""
    torch = require_torch()
    device = resolve_device(device)
    say = progress or (lambda _msg: None)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    data = describe_device(device)
    _spin_up(device, quick)
    curves, record = _peaks(device, kind, quick, data, say)
    say("memory bandwidth")
    record.update(_memory(device, kind, quick, data))
    say("inference-shaped GEMMs")
    main = "fp32" if kind == "cpu" else "bf16"  # what the device runs models in
    mlp = mlp_gemm_rate(device, quick, main)
    plausible(f"{main} MLP-shaped GEMMs", mlp.value, kind, "flops")
    peak = max(data[f"{main}_tflops"] * 1e12, mlp.value)  # the best rate reached at all
    data[f"{main}_tflops"] = _sig(peak / 1e12)
    data["compute_efficiency"] = _sig(fraction("compute_efficiency", mlp.value / peak), 3)
    say("element-wise kernels")
    vector = vector_rate(device, quick)
    plausible("element-wise kernels", vector.value, kind, "flops")
    data["vector_tflops"] = _sig(vector.value / 1e12)
    record.update(mlp.scaled(1e-12).record(f"mlp_gemm_{main}_tflops"))
    record.update(vector.scaled(1e-12).record("vector_tflops"))
    say("per-op overhead")
    data["kernel_launch_us"] = _sig(op_overhead(device, quick) * 1e6)
    synchronize(device)
    data["source"] = "measured by perfest calibrate"
    data["calibration"] = {
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": str(quick).lower(),
        "method": METHOD,
        **record,
    }
    return build(HardwareSpec, data, where="calibration"), curves


METHOD = (
    "peaks: best square GEMM 2n^3/t (or the MLP-shaped rate if higher), 2*bytes/t of a copy; "
    "efficiencies: MLP-shaped GEMMs / peak, GEMV weight streaming (a line through k = 512 and "
    "4096: rate and per-row time) and m = 2, 4, 8 products' / bandwidth; vector: element-wise "
    "kernels, perfest FLOPs / time; launch: tiny-model forward time / perfest kernel count "
    "(median); each rate sampled until the samples agree within 5 % (5 to 9 samples, 5 to 7 "
    "quick): the median, with _low/_high the range of the samples; warm-up excluded"
)


def _peaks(device: str, kind: str, quick: bool, data: dict, say: Progress) -> tuple[dict, dict]:
    """Each dtype's GEMM curve and peak (into `data`); the curves and their record."""
    curves, record = {}, {}
    for dtype in DTYPES[kind]:
        say(f"GEMM {dtype}")
        curves[dtype] = gemm_curve(device, dtype, quick)
        best = plausible(f"{dtype} GEMM", max(curves[dtype].values()), kind, "flops")
        data[f"{dtype}_tflops"] = _sig(best / 1e12)
        record.update(
            {f"gemm_{dtype}_n{n}_tflops": _sig(v / 1e12) for n, v in curves[dtype].items()}
        )
    return curves, record


def _memory(device: str, kind: str, quick: bool, data: dict) -> dict:
    """Bandwidth, streaming efficiencies and the per-row GEMV time (into `data`); the record.
    The bandwidth is the fastest of the copy, GEMV and skinny-GEMM rates (a CPU's read-only
    stream may beat its copy), so both efficiencies lie in (0, 1] by construction."""
    copy = copy_bandwidth(device, quick)
    stream, row_s, skinny = weight_streaming(device, quick)
    for what, reading in (("copy", copy), ("GEMV", stream), ("skinny GEMM", skinny)):
        plausible(f"{what} bandwidth", reading.value, kind, "bandwidth")
    best = max((copy, stream, skinny), key=lambda r: r.value)
    data["memory_bandwidth_gb_s"] = _sig(best.value / 1e9)
    data["memory_efficiency"] = _sig(fraction("memory_efficiency", stream.value / best.value), 3)
    data["gemv_row_ns"] = _sig(row_s * 1e9, 3)
    data["gemm_memory_efficiency"] = _sig(
        fraction("gemm_memory_efficiency", skinny.value / best.value), 3
    )
    return {
        **best.scaled(1e-9).record("memory_bandwidth_gb_s"),
        **copy.scaled(1e-9).record("copy_gb_s"),
        **stream.scaled(1e-9).record("gemv_stream_gb_s"),
        **skinny.scaled(1e-9).record("skinny_gemm_stream_gb_s"),
    }


def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")
