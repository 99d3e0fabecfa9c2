"""Speed of `perfest estimate`: a cold CLI process, and estimates per second in-process.

    python benchmarks/bench_estimate.py [--runs 7] [--n 5000]

Prints the machine, the date and each figure; record them in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import cold_process, machine  # benchmarks/common.py (run as scripts)


def in_process(n: int, distinct: bool, by_name: bool) -> float:
    import perfest

    model, device = perfest.load_model("llama-2-7b"), perfest.load_hardware("a100-80gb-sxm")
    if by_name:
        model, device = "llama-2-7b", "a100-80gb-sxm"
    perfest.estimate(model, device)
    # distinct: every estimate a new (batch, input_len) shape, so no cached pass is reused
    shapes = [(1 + i % 512, 128 + i // 512) if distinct else (1 + i % 64, 512) for i in range(n)]
    start = time.perf_counter()
    for batch, input_len in shapes:
        perfest.estimate(model, device, batch=batch, input_len=input_len, output_len=128)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    print(machine())
    cold = cold_process(["estimate", "--model", "llama-2-7b", "--gpu", "a100-80gb-sxm"], args.runs)
    print(
        f"cold `perfest estimate` process: median {statistics.median(cold):.3f} s "
        f"(min {min(cold):.3f}, max {max(cold):.3f}, {args.runs} runs)"
    )
    for distinct in (True, False):
        for by_name in (False, True):
            rate = in_process(args.n, distinct, by_name)
            kind = "distinct shapes" if distinct else "64 repeating shapes (cached passes)"
            arg = "names" if by_name else "loaded specs"
            print(f"in-process, {kind}, {arg}: {rate:,.0f} estimates/s")


if __name__ == "__main__":
    main()
