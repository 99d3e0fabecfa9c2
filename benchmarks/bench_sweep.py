"""Speed of `perfest sweep`: the 100,000-point sweep of the engine issue, in-process and as a cold
CLI process, and a 1,000-point batch sweep.

    python benchmarks/bench_sweep.py [--runs 5] [--skip-large]

The large sweep is llama-2-7b over batch 1…250 × 10 prompt lengths (128…1280) × 10 output
lengths (32…320) × 4 devices (A100, H100, H200, B200) = 100,000 points. In-process runs clear
the cache of compiled plans first, so every device's plan is built again, as in a fresh
process. The cold process pipes its JSON to a file (compact JSON, as for any script). Prints
the machine, the date and each figure (median of the runs, after one warm-up); record them in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import cold_process, machine  # benchmarks/common.py (run as scripts)

MODEL, DEVICE = "llama-2-7b", "a100-80gb-sxm"
DEVICES = ("a100-80gb-sxm", "h100-sxm", "h200-sxm", "b200")
LARGE = {"batches": "1:250", "input_lens": "128:1280:+128", "output_lens": "32:320:+32"}


def timed(fn, runs: int, cold: bool = True) -> list[float]:
    from perfest import plan

    fn()  # warm-up: imports, catalog parsing, first-call costs
    times = []
    for _ in range(runs):
        if cold:
            plan._plans.clear()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def report(label: str, times: list[float], points: int) -> None:
    median = statistics.median(times)
    print(
        f"{label}: median {median:,.3f} s for {points:,} points "
        f"({median / points * 1e6:,.1f} µs/point; min {min(times):,.3f}, "
        f"max {max(times):,.3f} s; {len(times)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-large", action="store_true", help="only the 1,000-point sweep")
    args = parser.parse_args()

    import perfest
    from perfest.sweeps import sweep

    print(machine())
    model = perfest.load_model(MODEL)
    devices = [perfest.load_hardware(name) for name in DEVICES]

    def by_batch():
        return sweep(model, devices[0], batches=range(1, 1001))

    def estimates():
        for b in range(1, 1001):
            perfest.estimate(model, devices[0], batch=b)

    report(f"in-process sweep, {MODEL} on {DEVICE}, batch 1…1000", timed(by_batch, args.runs), 1000)
    report("  the same 1,000 perfest.estimate calls", timed(estimates, args.runs), 1000)
    if args.skip_large:
        return

    def large():
        return sweep(model, devices, **LARGE)

    assert len(large().points) == 100_000
    report("in-process sweep, 250 batches × 10 inputs × 10 outputs × 4 devices",
           timed(large, args.runs), 100_000)  # fmt: skip

    def to_json():
        from perfest.export import dumps

        dumps(large().to_dict(), None)

    report("  the same, with its compact JSON", timed(to_json, max(3, args.runs // 2)), 100_000)
    argv = ["sweep", "-m", MODEL, "-g", ",".join(DEVICES), "--batch", LARGE["batches"],
            "--input-len", LARGE["input_lens"],
            "--output-len", LARGE["output_lens"], "--json"]  # fmt: skip
    cli = cold_process(argv, max(3, args.runs // 2))
    print(
        f"cold `perfest sweep … --json` process, 100,000 points piped: median "
        f"{statistics.median(cli):.2f} s (min {min(cli):.2f}, max {max(cli):.2f}, {len(cli)} runs)"
    )


if __name__ == "__main__":
    main()
