"""A regression grid: the whole JSON of `perfest.estimate` and `perfest.sweep` over catalogued
models, devices, dtypes, tensor-parallel degrees and lengths, written once and checked later.

    python benchmarks/reference_grid.py --write /tmp/grid.json.gz     # before a refactor
    python benchmarks/reference_grid.py --check /tmp/grid.json.gz     # after it

`--check` compares every number with a relative tolerance (default 1e-9: a refactor may change
the order in which floating-point sums are taken, nothing more) and every string, list length
and key exactly, and prints each difference by its path. A difference that a deliberate fix
explains is listed in the closing note of that change. The grid file is not committed: it is
a before/after tool, not a test (the model is meant to change).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from itertools import cycle

import perfest
from perfest.specs import HardwareSpec

#: A CPU-like device with every term the catalog GPUs leave at their defaults (per-row GEMV
#: time, packed-GEMM streaming, no tile padding, a slow vector rate): the time model's other half.
CPU_LIKE = HardwareSpec(
    name="grid-cpu",
    fp32_tflops=0.28,
    vector_tflops=0.0128,
    bf16_tflops=0.0316,
    memory_gb=25,
    memory_bandwidth_gb_s=17.5,
    tile_m_min=1,
    tile_m_max=1,
    tile_n=1,
    compute_units=1,
    compute_efficiency=0.8,
    memory_efficiency=0.95,
    gemv_row_ns=32.7,
    gemm_memory_efficiency=0.57,
    kernel_launch_us=31.0,
)

DEVICES = ["a100-80gb-sxm", "h100-sxm", "l4", "mi300x", "tpu-v5e", "b200", "rtx-4090", "h200-sxm"]
SHAPES = [(1, 128, 32), (8, 512, 128), (64, 2048, 256), (257, 1000, 77), (3, 1, 1), (129, 64, 2)]
VARIANTS = [
    {},
    {"tp": 2},
    {"tp": 8},
    {"weight_dtype": "int4"},
    {"weight_dtype": "int8"},
    {"dtype": "fp8"},
    {"kv_dtype": "fp8"},
    {"dtype": "fp16", "logits": "all"},
    {"attention": "eager"},
    {"dtype": "fp32"},
    {"tp": 4, "weight_dtype": "int4", "kv_dtype": "int8"},
    {"compute_efficiency": 0.5, "memory_efficiency": 0.7},
]


def cases():
    """(label, model, device, workload) for every estimate of the grid."""
    variants = cycle(VARIANTS)
    # decoders only: the grid guards their numbers (encoders and encoder-decoders came later,
    # with tests of their own, and would shift every later model's variants)
    decoders = [m for m in perfest.list_models() if perfest.load_model(m).architecture == "decoder"]
    for model in decoders:
        for device in [*DEVICES, CPU_LIKE]:
            for shape in SHAPES:
                b, i, o = shape
                variant = next(variants)
                w = {"batch": b, "input_len": i, "output_len": o, **variant}
                name = device if isinstance(device, str) else device.name
                yield f"{model}|{name}|{json.dumps(w, sort_keys=True)}", model, device, w


SWEEPS = [
    ("llama-2-7b", ["a100-80gb-sxm", "h100-sxm"], {}),
    ("llama-3-70b", ["h100-sxm", "mi300x"], {"tp": 4}),
    ("gpt2", ["l4", CPU_LIKE], {}),
    ("mistral-7b", ["h200-sxm"], {"weight_dtype": "int4"}),
    ("falcon-7b", ["b200"], {"dtype": "fp8"}),
]


def run() -> dict:
    out = {}
    for label, model, device, w in cases():
        try:
            out["estimate|" + label] = perfest.estimate(model, device, **w).to_dict()
        except perfest.PerfestError as exc:
            out["estimate|" + label] = {"error": str(exc)}
    for model, devices, w in SWEEPS:
        result = perfest.sweep(
            model, devices, batches="1:512:x2", input_lens="128,2048", output_lens="64,512", **w
        )
        out[f"sweep|{model}|{json.dumps(w, sort_keys=True)}"] = result.to_dict()
    return out


def diff(a, b, path: str, tol: float, found: list) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            if key not in a or key not in b:
                found.append(f"{path}.{key}: only in {'reference' if key in a else 'new'}")
            else:
                diff(a[key], b[key], f"{path}.{key}", tol, found)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            found.append(f"{path}: length {len(a)} -> {len(b)}")
        for k, (x, y) in enumerate(zip(a, b, strict=False)):
            diff(x, y, f"{path}[{k}]", tol, found)
    elif (
        isinstance(a, bool)
        or isinstance(b, bool)
        or not (isinstance(a, (int, float)) and isinstance(b, (int, float)))
    ):
        if a != b:
            found.append(f"{path}: {a!r} -> {b!r}")
    elif not math.isclose(a, b, rel_tol=tol, abs_tol=1e-300):
        found.append(f"{path}: {a!r} -> {b!r} ({(b - a) / a if a else math.inf:+.3g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="FILE")
    group.add_argument("--check", metavar="FILE")
    parser.add_argument("--tol", type=float, default=1e-9, help="relative tolerance [1e-9]")
    parser.add_argument("--limit", type=int, default=40, help="differences printed [40]")
    args = parser.parse_args()
    data = run()
    if args.write:
        with gzip.open(args.write, "wt", encoding="utf-8") as f:
            json.dump(data, f)
        print(f"wrote {len(data)} results to {args.write}")
        return
    with gzip.open(args.check, "rt", encoding="utf-8") as f:
        reference = json.load(f)
    found: list[str] = []
    diff(reference, json.loads(json.dumps(data)), "", args.tol, found)
    for line in found[: args.limit]:
        print(line)
    print(f"{len(data)} results, {len(found)} differences (relative tolerance {args.tol:g})")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
