"""perfest's predictions against PUBLISHED measurements of real runs (a benchmark, not a test).

    python benchmarks/bench_published.py [--data benchmarks/published.yaml] [--json out.json]
                                         [--markdown]

Loads the data points of benchmarks/published.yaml (each with its source and exact conditions),
runs `perfest.estimate` on each with perfest's default efficiencies (nothing here is tuned to the
measurements), and prints predicted against measured, per point and summarised by source, metric,
device and model.

Two errors are reported per point:

- `error` = (predicted − measured) / measured, on the metric as published (a throughput that is
  predicted too high has a positive error, a time that is predicted too long has a positive error);
- `time error` = predicted time / measured time − 1, where a throughput counts as its inverse (the
  time per token). Its sign means the same for every metric: positive = perfest predicts the run
  slower than it was (pessimistic), negative = faster (optimistic). Medians of the signed time error
  show a bias; medians of |error| show the size.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import yaml

import perfest

HERE = Path(__file__).resolve().parent

#: metric -> (prediction, pure-roofline bound, True if the metric is a throughput); each a
#: function of the generation estimate g and the data point pt
METRICS = {
    "ttft_s": (lambda g, pt: g.ttft_s, lambda g, pt: g.roofline_ttft_s, False),
    "tpot_s": (lambda g, pt: g.tpot_s, lambda g, pt: g.roofline_tpot_s, False),
    "e2e_latency_s": (
        lambda g, pt: g.e2e_latency_s,
        lambda g, pt: g.roofline_ttft_s + (pt["output_len"] - 1) * g.roofline_tpot_s,
        False,
    ),
    "output_tokens_per_s": (
        lambda g, pt: g.output_tokens_per_s,
        lambda g, pt: g.roofline_output_tokens_per_s,
        True,
    ),
    "output_tokens_per_s_per_gpu": (
        lambda g, pt: g.output_tokens_per_s / pt.get("tp", 1),
        lambda g, pt: g.roofline_output_tokens_per_s / pt.get("tp", 1),
        True,
    ),
    "decode_tokens_per_s": (
        lambda g, pt: pt["batch"] / g.tpot_s,
        lambda g, pt: pt["batch"] / g.roofline_tpot_s,
        True,
    ),
}

WORKLOAD_KEYS = ("batch", "input_len", "output_len", "dtype", "weight_dtype", "kv_dtype", "tp")


def source_name(pt: dict) -> str:
    src = pt["source"]
    if "repo" in src:
        return src["repo"]
    url = src["url"].split("//", 1)[-1]
    host = url.split("/", 1)[0]
    if host.endswith("buildkite.com"):
        return "vLLM CI (buildkite)"
    if "nemo-framework" in url:
        return "NVIDIA NeMo docs"
    if "/nim/" in url:
        return "NVIDIA NIM docs"
    if "oracle" in host:
        return "Oracle OCI blog"
    return host


def evaluate(pt: dict) -> dict:
    fields = {k: pt[k] for k in WORKLOAD_KEYS if k in pt}
    est = perfest.estimate(pt["model"], pt["hardware"], **fields)
    get, get_roofline, is_rate = METRICS[pt["metric"]]
    predicted = get(est.generation, pt)
    roofline = get_roofline(est.generation, pt)
    measured = float(pt["value"])
    # a measurement faster than the pure roofline (datasheet peaks, no overhead) contradicts the
    # stated conditions: flag it rather than read it as a model error
    beats_roofline = measured > roofline if is_rate else measured < roofline
    error = (predicted - measured) / measured
    time_error = (measured / predicted - 1) if is_rate else error
    return {
        "id": pt["id"],
        "source": source_name(pt),
        "model": pt["model"],
        "hardware": pt["hardware"],
        "batch": pt["batch"],
        "input_len": pt["input_len"],
        "output_len": pt["output_len"],
        "dtype": pt.get("dtype", "bf16"),
        "weight_dtype": pt.get("weight_dtype"),
        "tp": pt.get("tp", 1),
        "metric": pt["metric"],
        "measured": measured,
        "predicted": predicted,
        "roofline": roofline,
        "beats_roofline": beats_roofline,
        "error_pct": 100 * error,
        "time_error_pct": 100 * time_error,
        "fits": est.memory.fits,
        "decode_bound": est.decode.bound,
        "prefill_bound": est.prefill.bound,
        "tpot_s": est.generation.tpot_s,
        "ttft_s": est.generation.ttft_s,
        "decode_overhead_s": est.decode.overhead_s,
        "decode_comm_s": est.decode.comm_time_s,
        "roofline_tpot_s": est.generation.roofline_tpot_s,
    }


def stats(rows: list[dict]) -> dict:
    errs = [abs(r["error_pct"]) for r in rows]
    terrs = [r["time_error_pct"] for r in rows]
    worst = max(rows, key=lambda r: abs(r["error_pct"]))
    return {
        "points": len(rows),
        "median_abs_error_pct": statistics.median(errs),
        "worst_abs_error_pct": abs(worst["error_pct"]),
        "worst_id": worst["id"],
        "median_time_error_pct": statistics.median(terrs),
    }


def grouped(rows: list[dict], key) -> dict:
    groups = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {k: stats(v) for k, v in sorted(groups.items())}


def fmt(value: float, metric: str) -> str:
    if metric in ("ttft_s", "tpot_s", "e2e_latency_s"):
        return f"{value * 1e3:,.1f} ms" if value < 1 else f"{value:,.3f} s"
    return f"{value:,.1f}/s"


def table(rows: list[dict]) -> str:
    lines = [
        "| id | model | device | b | in/out | dtype | tp | metric | measured | predicted "
        "| error | time err |",
        "|---|---|---|---:|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        dt = r["dtype"] + (f"/w{r['weight_dtype']}" if r["weight_dtype"] else "")
        lines.append(
            f"| {r['id']} | {r['model']} | {r['hardware']} | {r['batch']} | "
            f"{r['input_len']}/{r['output_len']} | {dt} | {r['tp']} | {r['metric']} | "
            f"{fmt(r['measured'], r['metric'])} | {fmt(r['predicted'], r['metric'])} | "
            f"{r['error_pct']:+.0f} % | {r['time_error_pct']:+.0f} %"
            + ("" if r["fits"] else " (does not fit)")
            + (" (measured beats the roofline)" if r["beats_roofline"] else "")
            + " |"
        )
    return "\n".join(lines)


def summary_table(title: str, groups: dict) -> str:
    lines = [
        f"| {title} | points | median abs error | worst abs error (id) | median time error |",
        "|---|---:|---:|---|---:|",
    ]
    for name, s in groups.items():
        lines.append(
            f"| {name} | {s['points']} | {s['median_abs_error_pct']:.0f} % | "
            f"{s['worst_abs_error_pct']:.0f} % ({s['worst_id']}) | "
            f"{s['median_time_error_pct']:+.0f} % |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=HERE / "published.yaml")
    ap.add_argument("--json", type=Path, help="write points and summaries as JSON")
    args = ap.parse_args(argv)

    points = yaml.safe_load(args.data.read_text())["points"]
    ids = [p["id"] for p in points]
    if len(ids) != len(set(ids)):
        raise SystemExit("duplicate ids in " + str(args.data))
    rows = [evaluate(p) for p in points]

    summary = {
        "overall": stats(rows),
        "by_source": grouped(rows, lambda r: r["source"]),
        "by_metric": grouped(rows, lambda r: r["metric"]),
        "by_device": grouped(rows, lambda r: r["hardware"]),
        "by_model": grouped(rows, lambda r: r["model"]),
        "by_precision": grouped(
            rows, lambda r: r["dtype"] + (f"/w{r['weight_dtype']}" if r["weight_dtype"] else "")
        ),
        "by_tp": grouped(rows, lambda r: f"tp{r['tp']}"),
    }
    o = summary["overall"]
    print(
        f"date {datetime.date.today()}  python {platform.python_version()}  "
        f"perfest {perfest.__version__}  {len(rows)} published points from {args.data.name}\n"
    )
    print(table(rows))
    flagged = [r["id"] for r in rows if r["beats_roofline"]]
    if flagged:
        print(
            "\nmeasured faster than the pure roofline (conditions doubtful): " + ", ".join(flagged)
        )
        c = stats([r for r in rows if not r["beats_roofline"]])
        summary["overall_without_flagged"] = c
        print(
            f"without them ({c['points']} points): median |error| "
            f"{c['median_abs_error_pct']:.1f} %, worst {c['worst_abs_error_pct']:.0f} % "
            f"({c['worst_id']}), median time error {c['median_time_error_pct']:+.1f} %"
        )
    print(
        f"\noverall: median |error| {o['median_abs_error_pct']:.1f} %, worst "
        f"{o['worst_abs_error_pct']:.0f} % ({o['worst_id']}), median time error "
        f"{o['median_time_error_pct']:+.1f} % (+ = perfest predicts slower than measured)\n"
    )
    for key, title in (("by_source", "source"), ("by_metric", "metric"),
                       ("by_device", "device"), ("by_model", "model"),
                       ("by_precision", "precision"), ("by_tp", "tensor parallel")):  # fmt: skip
        print(summary_table(title, summary[key]))
        print()
    if args.json:
        args.json.write_text(json.dumps({"points": rows, "summary": summary}, indent=2))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
