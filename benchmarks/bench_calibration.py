"""Does a calibration tell the truth about its own noise? Run `perfest calibrate --quick`
several times in a row and check that the bandwidths fall within the spread the runs report.

    python benchmarks/bench_calibration.py [--runs 10] [--device cpu] [--full]

Each run is a fresh process writing its own YAML; from each, `memory_bandwidth_gb_s` (the
median of its samples) and the range of those samples (`memory_bandwidth_gb_s_low`, `_high`)
under `calibration`. Two checks, printed with the table:

- every run's bandwidth lies within the range of the samples of every other run (the spread a
  run reports is a fair statement of what a repeat will measure), counted over all ordered
  pairs;
- every run's bandwidth lies within the range spanned by all runs' samples (nothing is an
  outlier that no run's samples cover).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import machine


def calibrate_once(device: str, quick: bool, path: Path) -> dict:
    exe = shutil.which("perfest")
    cmd = ([exe] if exe else [sys.executable, "-m", "perfest.cli"]) + [
        "calibrate", "--device", device, "-o", str(path), *(["--quick"] if quick else []),
    ]  # fmt: skip
    load = os.getloadavg()[0]  # other tenants of the machine
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    spec = yaml.safe_load(path.read_text())
    cal = spec["calibration"]
    return {
        "load": load,
        "seconds": seconds,
        "bandwidth": spec["memory_bandwidth_gb_s"],
        "low": cal["memory_bandwidth_gb_s_low"],
        "high": cal["memory_bandwidth_gb_s_high"],
        "rounds": cal["memory_bandwidth_gb_s_rounds"],
        "copy": cal["copy_gb_s"],
        "gemv": cal["gemv_stream_gb_s"],
        "skinny": cal["skinny_gemm_stream_gb_s"],
        "efficiency": spec["memory_efficiency"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full", action="store_true", help="full calibrations, not --quick")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    runs = [
        calibrate_once(args.device, not args.full, folder / f"run{k}.yaml")
        for k in range(args.runs)
    ]
    print(machine())
    quick = "" if args.full else " --quick"
    print(f"command: perfest calibrate --device {args.device}{quick}, {args.runs} runs in a row\n")
    print("| run | bandwidth GB/s | samples (low–high) | spread | rounds | copy | GEMV | skinny "
          "| memory_efficiency | seconds | load before |")  # fmt: skip
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, r in enumerate(runs, 1):
        spread = (r["high"] - r["low"]) / r["bandwidth"]
        print(
            f"| {k} | {r['bandwidth']:.3f} | {r['low']:.3f}–{r['high']:.3f} | {spread:.1%} | "
            f"{r['rounds']} | {r['copy']:.3f} | {r['gemv']:.3f} | {r['skinny']:.3f} | "
            f"{r['efficiency']:.3f} | {r['seconds']:.1f} | {r['load']:.2f} |"
        )
    pairs = [(i, j) for i in range(len(runs)) for j in range(len(runs)) if i != j]
    inside = sum(runs[i]["low"] <= runs[j]["bandwidth"] <= runs[i]["high"] for i, j in pairs)
    low, high = min(r["low"] for r in runs), max(r["high"] for r in runs)
    covered = sum(low <= r["bandwidth"] <= high for r in runs)
    values = [r["bandwidth"] for r in runs]
    print(
        f"\nbandwidths {min(values):.3f}–{max(values):.3f} GB/s "
        f"({(max(values) - min(values)) / min(values):.1%} apart); "
        f"run j's bandwidth inside run i's sample range: {inside} of {len(pairs)} pairs; "
        f"inside the range of all samples ({low:.3f}–{high:.3f}): {covered} of {len(runs)}"
    )


if __name__ == "__main__":
    main()
