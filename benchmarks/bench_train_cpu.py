"""CPU accuracy of perfest's training-step predictions against measured PyTorch steps (a
benchmark, not a test).

    python benchmarks/bench_train_cpu.py [--spec hardware.yaml] [--repeats 5] [--threads 1]
                                         [--models gpt2,llama-mini,mixtral-mini]
                                         [--json out.json]

Calibrates this machine (unless --spec is given), then runs `perfest validate --train`'s
library function over a grid of small models × micro-batch × sequence length (fp32, AdamW,
flash attention: torch's fused CPU SDPA), and prints a Markdown table of predicted against
measured time per phase (forward, backward, optimizer, step) with the median |error| of each.
error = (predicted − measured) / measured. Nothing is tuned to these measurements.

--threads (default 1) sets torch's threads for the calibration and the measurements alike. On
a machine shared with other work, two OpenMP threads on two cores wait at every parallel
region for a thread the scheduler has taken away, which inflates small kernels from
microseconds to scheduler quanta and ruins both calibration and measurement; one thread per
process only shares the core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench_accuracy import LLAMA_MINI, MIXTRAL_MINI
from common import machine

from perfest.catalog import load_hardware, load_model

MODELS = {
    "gpt2": lambda: load_model("gpt2"),
    "llama-mini": lambda: LLAMA_MINI,
    # a mixture of experts (8 experts, top-2), routed by the reference's own top-k
    "mixtral-mini": lambda: load_model(str(MIXTRAL_MINI)),
    # an encoder's masked-LM pre-training step (the MLM head over every position)
    "bert-base": lambda: load_model("bert-base-uncased"),
}
SHAPES = ((1, 128), (4, 128), (2, 512))  # (micro-batch, sequence)
PHASES = ("forward", "backward", "optimizer", "step")


def run_grid(spec, repeats: int, models: list[str]) -> list[dict]:
    from perfest.validate.train_run import validate_training

    points = []
    for name in models:
        make = MODELS[name]
        for b, s in SHAPES:
            v = validate_training(make(), spec, "cpu", batch=b, seq_len=s, repeats=repeats)
            for p in v.phases:
                points.append({"model": name, "batch": b, "seq_len": s, "phase": p.phase,
                               "predicted_s": p.predicted_s, "measured_s": p.measured_s,
                               "error_pct": p.error_pct})  # fmt: skip
            step = v.phases[-1]
            print(f"{name:11s} b={b} s={s:4d} step {step.error_pct:+6.1f} %", file=sys.stderr)
    return points


def markdown(points: list[dict]) -> str:
    lines = ["| model | b | s | phase | predicted | measured | error |",
             "|---|---:|---:|---|---:|---:|---:|"]  # fmt: skip
    for p in points:
        lines.append(f"| {p['model']} | {p['batch']} | {p['seq_len']} | {p['phase']} | "
                     f"{p['predicted_s'] * 1e3:.1f} ms | {p['measured_s'] * 1e3:.1f} ms | "
                     f"{p['error_pct']:+.0f} % |")  # fmt: skip
    lines += ["", "| phase | median abs error | median error | worst abs error |",
              "|---|---:|---:|---:|"]  # fmt: skip
    for phase in PHASES:
        errors = [p["error_pct"] for p in points if p["phase"] == phase]
        size = [abs(e) for e in errors]
        lines.append(f"| {phase} | {statistics.median(size):.0f} % | "
                     f"{statistics.median(errors):+.0f} % | {max(size):.0f} % |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="hardware YAML (default: calibrate now)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads [1]")
    parser.add_argument(
        "--models",
        default="gpt2,llama-mini",
        help=f"comma-separated, of {', '.join(MODELS)} [gpt2,llama-mini]",
    )
    parser.add_argument("--json", help="write the points here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(machine(), f" load average {os.getloadavg()[0]:.2f}, {args.threads} thread(s)",
          file=sys.stderr)  # fmt: skip
    if args.spec:
        spec = load_hardware(args.spec)
    else:
        from perfest.validate.calibrate import calibrate, write_spec

        spec, _ = calibrate("cpu")
        path = write_spec(spec, Path(tempfile.mkdtemp()) / "cpu.yaml")
        print(f"calibrated: {path}", file=sys.stderr)
    points = run_grid(spec, args.repeats, args.models.split(","))
    print(f"load average at the end {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(markdown(points))
    if args.json:
        Path(args.json).write_text(json.dumps(points, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
