"""Speed of `perfest estimate`: a cold CLI process, and estimates per second in-process.

    python benchmarks/bench_estimate.py [--runs 9] [--n 20000]

In-process, every estimate is a new (batch, input length) shape of llama-2-7b on
a100-80gb-sxm, in two orders: a batch sweep per length (batch 1…512, then the next length), and
random pairs (batch 1…512, input 1…4096, output 1…512), where no point shares a length with the
one before. Specs are loaded once, or named at each call. The compiled plan of the (model,
device, dtypes) is built once per process, as in any sweep. Prints the machine, the date and
each figure (median of --runs for the cold process, best of 3 in-process); record them in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from common import cold_process, machine  # benchmarks/common.py (run as scripts)


def in_process(shapes: list[tuple[int, int, int]], by_name: bool) -> float:
    import perfest

    model, device = perfest.load_model("llama-2-7b"), perfest.load_hardware("a100-80gb-sxm")
    if by_name:
        model, device = "llama-2-7b", "a100-80gb-sxm"
    perfest.estimate(model, device)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for batch, input_len, output_len in shapes:
            perfest.estimate(model, device, batch=batch, input_len=input_len, output_len=output_len)
        best = max(best, len(shapes) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    print(machine())
    base = ["estimate", "--model", "llama-2-7b", "--gpu", "a100-80gb-sxm"]
    for argv in (base, [*base, "--json"]):
        cold = cold_process(argv, args.runs)
        print(
            f"cold `perfest {' '.join(argv)}` process: median {statistics.median(cold):.3f} s "
            f"(min {min(cold):.3f}, max {max(cold):.3f}, {args.runs} runs)"
        )
    rng = random.Random(0)
    orders = {
        "batch sweeps per length": [(1 + i % 512, 128 + i // 512, 128) for i in range(args.n)],
        "random shapes": [
            (rng.randint(1, 512), rng.randint(1, 4096), rng.randint(1, 512)) for _ in range(args.n)
        ],
    }
    for label, shapes in orders.items():
        for by_name in (False, True):
            rate = in_process(shapes, by_name)
            arg = "names" if by_name else "loaded specs"
            print(f"in-process, {label}, {arg}: {rate:,.0f} estimates/s")


if __name__ == "__main__":
    main()
