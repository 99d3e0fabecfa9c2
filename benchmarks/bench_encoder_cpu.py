"""CPU accuracy of perfest's encoder predictions against measured PyTorch runs (a benchmark,
not a test).

    python benchmarks/bench_encoder_cpu.py [--spec hardware.yaml] [--repeats 5] [--json out.json]

Calibrates this machine (unless --spec is given), then runs `perfest validate` (its encoder
path, perfest.validate.encoder_run) on BERT-Medium — Google's L = 8, H = 512, A = 8 BERT
(google/bert_uncased_L-8_H-512_A-8: i = 2048, V = 30522, 512 positions), with its pooler — over
batch {1, 4} × sequence {64, 256} in fp32, and prints the per-point errors, the median and
worst |error|, and the median error per op group. error = (predicted − measured) / measured.
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

from perfest.catalog import load_hardware
from perfest.specs import ModelConfig

#: Google's BERT-Medium (the compact BERTs of Turc et al. 2019), BERT's structure at h = 512.
BERT_MEDIUM = ModelConfig(
    name="bert-medium", architecture="encoder", vocab_size=30522, hidden_size=512, num_layers=8,
    num_heads=8, intermediate_size=2048, mlp="classic", activation="gelu", norm="layernorm",
    norm_position="post", position="learned", embedding_norm=True, type_vocab_size=2,
    head="pooler", qkv_bias=True, out_bias=True, mlp_bias=True, lm_head_bias=True,
    tied_embeddings=True, max_position_embeddings=512,
)  # fmt: skip
BATCHES = (1, 4)
LENGTHS = (64, 256)


def run_grid(spec, repeats: int) -> list[dict]:
    from perfest.validate.run import validate

    points = []
    for b in BATCHES:
        for s in LENGTHS:
            v = validate(BERT_MEDIUM, spec, "cpu", batch=b, input_len=s, dtype="fp32",
                         repeats=repeats)  # fmt: skip
            (p,) = v.phases
            points.append({"batch": b, "input_len": s, "predicted_s": p.predicted_s,
                           "measured_s": p.measured_s, "error_pct": p.error_pct,
                           "groups": {g.group: g.error_pct for g in p.groups},
                           "flops_match": v.flops_match})  # fmt: skip
            print(f"bert-medium b={b} s={s:4d} encode {p.error_pct:+6.1f} %", file=sys.stderr)
    return points


def summary(points: list[dict]) -> dict:
    errors = [abs(p["error_pct"]) for p in points]
    groups = sorted({g for p in points for g in p["groups"]})
    return {
        "median_abs_error_pct": statistics.median(errors),
        "worst_abs_error_pct": max(errors),
        "points": len(errors),
        "groups_median_error_pct": {
            g: statistics.median(p["groups"][g] for p in points if g in p["groups"]) for g in groups
        },
    }


def markdown(points: list[dict], stats: dict, spec) -> str:
    lines = ["| batch | sequence | predicted | measured | error |", "|---:|---:|---:|---:|---:|"]
    for p in points:
        lines.append(f"| {p['batch']} | {p['input_len']} | {p['predicted_s'] * 1e3:.2f} ms | "
                     f"{p['measured_s'] * 1e3:.2f} ms | {p['error_pct']:+.0f} % |")  # fmt: skip
    groups = ", ".join(f"{g} {e:+.0f} %" for g, e in stats["groups_median_error_pct"].items())
    lines += ["", f"median |error| {stats['median_abs_error_pct']:.0f} %, worst "
              f"{stats['worst_abs_error_pct']:.0f} %; median error by group: {groups}; "
              f"matmul FLOPs exact: {all(p['flops_match'] for p in points)}"]  # fmt: skip
    cal = spec.calibration or {}
    lines += ["", f"Spec: {spec.label}; fp32 {spec.fp32_tflops * 1e3:.0f} GFLOP/s × "
              f"{spec.compute_efficiency:.2f}, {spec.memory_bandwidth_gb_s:.1f} GB/s × "
              f"{spec.memory_efficiency:.2f}, element-wise {spec.vector_flops / 1e9:.1f} "
              f"GFLOP/s, {spec.kernel_launch_us:.1f} µs/op; calibrated "
              f"{cal.get('measured_at', '?')}, torch {cal.get('torch', '?')}."]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="hardware YAML (default: calibrate this CPU now)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the points and summary here")
    args = parser.parse_args()
    if args.spec:
        spec = load_hardware(args.spec)
    else:
        from perfest.validate.calibrate import calibrate, write_spec

        spec, _ = calibrate("cpu", progress=lambda m: print(f"calibrating: {m}", file=sys.stderr))
        path = write_spec(spec, Path(tempfile.mkdtemp()) / "calibrated-cpu.yaml")
        print(f"calibrated spec: {path}", file=sys.stderr)
    points = run_grid(spec, args.repeats)
    stats = summary(points)
    print(f"<!-- {datetime.date.today()} on {platform.node()} ({platform.processor() or ''}), "
          f"{' '.join(sys.argv)} -->")  # fmt: skip
    print(markdown(points, stats, spec))
    if args.json:
        Path(args.json).write_text(json.dumps({"points": points, "summary": stats}, indent=2))


if __name__ == "__main__":
    main()
