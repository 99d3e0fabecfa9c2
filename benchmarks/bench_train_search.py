"""Speed of `perfest train --search`: layouts evaluated per second (a benchmark, not a test).

    python benchmarks/bench_train_search.py [--runs 3]

Each scenario runs the library's search in this process (best of --runs; the first run also
compiles each (tp, cp) shape's plans, which later runs find cached, so both are reported).
"""

from __future__ import annotations

import argparse
import sys
import time

from common import machine

from perfest.training import compiled
from perfest.training.search import search

SCENARIOS = (
    ("llama-3-8b", "h100-sxm", {"gpus": 8, "global_batch": 128, "seq_len": 8192}),
    ("llama-3.1-70b", "h100-sxm", {"gpus": 64, "global_batch": 128, "seq_len": 8192}),
    ("gpt3-175b", "a100-80gb-sxm", {"gpus": 1024, "global_batch": 1536, "seq_len": 2048}),
    # a mixture of experts: ep and etp searched too (each (tp, cp, ep, etp) compiled once)
    ("qwen3-30b-a3b", "h100-sxm", {"gpus": 16, "global_batch": 1024, "seq_len": 4096}),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(machine(), file=sys.stderr)
    print("| model | device | GPUs | layouts | cold run | layouts/s (cold) | best warm run "
          "| layouts/s (warm) |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for model, hw, fields in SCENARIOS:
        compiled._CACHE.clear()
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            result = search(model, hw, **fields)
            times.append(time.perf_counter() - start)
        n = result.evaluated
        best = min(times[1:]) if len(times) > 1 else times[0]
        print(f"| {model} | {hw} | {fields['gpus']} | {n:,} | {times[0]:.2f} s | "
              f"{n / times[0]:,.0f} | {best:.2f} s | {n / best:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
