"""CPU accuracy of perfest's predictions against measured PyTorch runs (a benchmark, not a test).

    python benchmarks/bench_accuracy.py [--spec hardware.yaml] [--repeats 5] [--compile]
                                        [--json out.json]

Calibrates this machine (unless --spec is given), then runs `perfest.validate.run.validate` over
a grid of small models × batch sizes × prompt lengths, and prints a Markdown table of the
per-point errors, the median and worst |error| per phase, and the median |error| per op group.
error = (predicted − measured) / measured. Eager runs are predicted at `--fusion none` (every
element-wise op its own kernel); with --compile, torch.compile'd runs are also timed and
predicted at `--fusion full`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from perfest.catalog import load_hardware, load_model
from perfest.specs import ModelConfig

#: A scaled-down Llama (RoPE, GQA 4:1, gated SiLU MLP, RMSNorm, untied head), ~60 M parameters.
LLAMA_MINI = ModelConfig(
    name="llama-mini", vocab_size=32000, hidden_size=512, num_layers=8, num_heads=8,
    num_kv_heads=2, intermediate_size=1408, max_position_embeddings=2048,
)  # fmt: skip

#: A scaled-down Mixtral (8 experts, top-2), issue 9's MoE validation: benchmarks/mixtral-mini.yaml.
MIXTRAL_MINI = Path(__file__).with_name("mixtral-mini.yaml")

MODELS = {
    "gpt2": lambda: load_model("gpt2"),
    "llama-mini": lambda: LLAMA_MINI,
    "mixtral-mini": lambda: load_model(str(MIXTRAL_MINI)),
}
BATCHES = (1, 4)
LENGTHS = (64, 256)
OUTPUT_LEN = 32


def run_grid(spec, repeats: int, models=MODELS, batches=BATCHES, lengths=LENGTHS,
             compile: bool = False) -> list[dict]:  # fmt: skip
    from perfest.validate.run import validate

    points = []
    for name, make in models.items():
        for b in batches:
            for s in lengths:
                v = validate(make(), spec, "cpu", batch=b, input_len=s, output_len=OUTPUT_LEN,
                             dtype="fp32", repeats=repeats, compile=compile)  # fmt: skip
                for p in v.phases:
                    points.append({
                        "model": name, "batch": b, "input_len": s, "phase": p.phase,
                        "mode": p.mode, "fusion": p.fusion,
                        "predicted_s": p.predicted_s, "measured_s": p.measured_s,
                        "error_pct": p.error_pct,
                        "groups": {g.group: g.error_pct for g in p.groups},
                    })  # fmt: skip
                    print(f"{name:11s} b={b} s={s:4d} {p.phase:8s} {p.mode:9s} "
                          f"{p.error_pct:+6.1f} %", file=sys.stderr)  # fmt: skip
    return points


def summary(points: list[dict]) -> dict:
    out = {}
    for key in dict.fromkeys(f"{p['phase']} {p['mode']} ({p['fusion']})" for p in points):
        mine = [p for p in points if f"{p['phase']} {p['mode']} ({p['fusion']})" == key]
        errors = [abs(p["error_pct"]) for p in mine]
        out[key] = {"median_abs_error_pct": statistics.median(errors),
                    "worst_abs_error_pct": max(errors), "points": len(errors)}  # fmt: skip
        groups = sorted({g for p in mine for g in p["groups"]})
        out[key]["groups_median_error_pct"] = {
            g: statistics.median(p["groups"][g] for p in mine if g in p["groups"])
            for g in groups
        }  # fmt: skip
    return out


def markdown(points: list[dict], stats: dict, spec) -> str:
    lines = ["| model | batch | input | phase | mode (fusion) | predicted | measured | error |",
             "|---|---:|---:|---|---|---:|---:|---:|"]  # fmt: skip
    for p in points:
        lines.append(f"| {p['model']} | {p['batch']} | {p['input_len']} | {p['phase']} | "
                     f"{p['mode']} ({p['fusion']}) | "
                     f"{p['predicted_s'] * 1e3:.2f} ms | {p['measured_s'] * 1e3:.2f} ms | "
                     f"{p['error_pct']:+.0f} % |")  # fmt: skip
    lines += ["", "| phase, mode | median abs error | worst abs error | median error by group |",
              "|---|---:|---:|---|"]  # fmt: skip
    for phase, s in stats.items():
        groups = ", ".join(f"{g} {e:+.0f} %" for g, e in s["groups_median_error_pct"].items())
        lines.append(f"| {phase} | {s['median_abs_error_pct']:.0f} % | "
                     f"{s['worst_abs_error_pct']:.0f} % | {groups} |")  # fmt: skip
    cal = spec.calibration or {}
    lines += ["", f"Spec: {spec.label}; fp32 {spec.fp32_tflops * 1e3:.0f} GFLOP/s × "
              f"{spec.compute_efficiency:.2f}, {spec.memory_bandwidth_gb_s:.1f} GB/s × "
              f"{spec.memory_efficiency:.2f} + {spec.gemv_row_ns:g} ns per GEMV row, "
              f"m ≥ 2 × {spec.gemm_memory_efficiency or spec.memory_efficiency:.2f}, "
              f"element-wise {spec.vector_flops / 1e9:.1f} GFLOP/s, "
              f"{spec.kernel_launch_us:.1f} µs/op; calibrated "
              f"{cal.get('measured_at', '?')}, torch {cal.get('torch', '?')}."]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="hardware YAML (default: calibrate this CPU now)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the points and summary here")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS),
                        default=["gpt2", "llama-mini"])  # fmt: skip
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()
    if args.spec:
        spec = load_hardware(args.spec)
    else:
        from perfest.validate.calibrate import calibrate, write_spec

        spec, _ = calibrate("cpu", progress=lambda m: print(f"calibrating: {m}", file=sys.stderr))
        path = write_spec(spec, Path(tempfile.mkdtemp()) / "calibrated-cpu.yaml")
        print(f"calibrated spec: {path}", file=sys.stderr)
    points = run_grid(spec, args.repeats, {m: MODELS[m] for m in args.models},
                      compile=args.compile)  # fmt: skip
    stats = summary(points)
    print(f"<!-- {datetime.date.today()} on {platform.node()} ({platform.processor() or ''}), "
          f"{' '.join(sys.argv)} -->")  # fmt: skip
    print(markdown(points, stats, spec))
    if args.json:
        Path(args.json).write_text(json.dumps({"points": points, "summary": stats}, indent=2))


if __name__ == "__main__":
    main()
