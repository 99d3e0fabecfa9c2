"""Speed of `perfest sweep`: a 1,000-point sweep in-process, and as a cold CLI process.

    python benchmarks/bench_sweep.py [--runs 7]

Each in-process run clears the cache of compiled plans first, so every device's plan is built
again, as in a fresh process; the "warm" figure repeats a sweep whose plans are cached. The
cost of the sweep's own work (records, summaries) is the sweep's time minus the same 1,000
`perfest.estimate` calls. Prints the machine, the date and each figure (median of the
runs, after one warm-up); record them in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import cold_process, machine  # benchmarks/common.py (run as scripts)

MODEL, DEVICE = "llama-2-7b", "a100-80gb-sxm"


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
        f"{label}: median {median * 1e3:,.0f} ms for {points:,} points "
        f"({median / points * 1e6:,.0f} µs/point; min {min(times) * 1e3:,.0f}, "
        f"max {max(times) * 1e3:,.0f} ms; {len(times)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    import perfest
    from perfest.sweeps import sweep

    print(machine())
    model, device = perfest.load_model(MODEL), perfest.load_hardware(DEVICE)
    batches = range(1, 1001)

    def by_batch():
        return sweep(model, device, batches=batches)

    def estimates():
        for b in batches:
            perfest.estimate(model, device, batch=b)

    devices = [
        perfest.load_hardware(name) for name in ("a100-80gb-sxm", "h100-sxm", "h200-sxm", "b200")
    ]

    def mixed():  # 4 devices × 5 prompt lengths × 50 batches: passes repeat across devices
        return sweep(model, devices, batches="1:50", input_lens="128,256,512,1024,2048")

    assert len(by_batch().points) == len(mixed().points) == 1000
    sweep_times = timed(by_batch, args.runs)
    report(f"in-process sweep, {MODEL} on {DEVICE}, batch 1…1000, cold passes", sweep_times, 1000)
    estimate_times = timed(estimates, args.runs)
    report("  the same 1,000 perfest.estimate calls alone", estimate_times, 1000)
    overhead = statistics.median(sweep_times) - statistics.median(estimate_times)
    print(
        f"  the sweep's own work (the difference): {overhead * 1e3:,.0f} ms "
        f"({overhead * 1e3:.0f} µs/point)"
    )
    report(
        "in-process sweep, same, passes cached (warm)", timed(by_batch, args.runs, cold=False), 1000
    )
    report(
        "in-process sweep, 4 devices × 5 input lengths × 50 batches", timed(mixed, args.runs), 1000
    )
    cli = cold_process(
        ["sweep", "-m", MODEL, "-g", DEVICE, "--batch", "1:1000", "--json"], max(3, args.runs // 2)
    )
    median = statistics.median(cli)
    print(
        f"cold `perfest sweep --batch 1:1000 --json` process: median {median:.3f} s "
        f"(min {min(cli):.3f}, max {max(cli):.3f}, {len(cli)} runs)"
    )


if __name__ == "__main__":
    main()
