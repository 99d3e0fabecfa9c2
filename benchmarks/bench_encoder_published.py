"""perfest's encoder predictions against PUBLISHED BERT latencies on a GPU (a benchmark, not a
test): NVIDIA's TensorRT BERT tables on an A100 (benchmarks/published_encoders.yaml).

    python benchmarks/bench_encoder_published.py [--fusion none|default|full] [--json out.json]
                                                 [--markdown]

Each point runs `perfest.estimate` with the device's default efficiencies (nothing is tuned to
these numbers) and compares the predicted encode latency with the published average.
`error` = predicted / measured − 1: positive means perfest predicts the run slower than it was.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

import perfest
from benchmarks.common import machine

HERE = Path(__file__).resolve().parent


def run(path: Path, fusion: str = "default") -> tuple[dict, list[dict]]:
    data = yaml.safe_load(path.read_text())
    fixed = {key: data[key] for key in ("dtype", "head")}
    fixed["fusion"] = fusion
    rows = []
    for pt in data["points"]:
        est = perfest.estimate(pt["model"], data["hardware"], batch=pt["batch"],
                               input_len=pt["input_len"], **fixed)  # fmt: skip
        measured = pt["latency_ms"] / 1e3
        enc = est.encoding
        rows.append(
            {
                **pt,
                "predicted_ms": enc.latency_s * 1e3,
                "roofline_ms": enc.roofline_latency_s * 1e3,
                "error": enc.latency_s / measured - 1,
                "roofline_error": enc.roofline_latency_s / measured - 1,
                "bound": est.encode.bound.value,
            }
        )
    return data, rows


def summary(rows: list[dict]) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups["all"].append(row)
        groups[f"{row['model']}, s = {row['input_len']}"].append(row)
        groups["batch ≤ 4" if row["batch"] <= 4 else "batch ≥ 8"].append(row)
    return {
        name: {
            "points": len(group),
            "median_abs_error": statistics.median(abs(r["error"]) for r in group),
            "median_error": statistics.median(r["error"] for r in group),
            "worst_error": max((r["error"] for r in group), key=abs),
            "roofline_median_error": statistics.median(r["roofline_error"] for r in group),
        }
        for name, group in groups.items()
    }


def markdown(rows: list[dict], sums: dict) -> str:
    out = ["| model | s | batch | measured | predicted | error | roofline | bound |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in rows:
        out.append(
            f"| {r['model']} | {r['input_len']} | {r['batch']} | {r['latency_ms']:.2f} ms | "
            f"{r['predicted_ms']:.2f} ms | {r['error']:+.0%} | {r['roofline_ms']:.2f} ms | "
            f"{r['bound']} |"
        )
    out += ["", "| group | points | median abs error | median error | worst | roofline median |",
            "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, s in sums.items():
        out.append(
            f"| {name} | {s['points']} | {s['median_abs_error']:.0%} | {s['median_error']:+.0%} "
            f"| {s['worst_error']:+.0%} | {s['roofline_median_error']:+.0%} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=HERE / "published_encoders.yaml")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--fusion", default="default", choices=("none", "default", "full"))
    args = parser.parse_args()
    data, rows = run(args.data, args.fusion)
    sums = summary(rows)
    print(machine())
    print(f"source: {data['source']}; perfest --fusion {args.fusion}")
    if args.markdown:
        print(markdown(rows, sums))
    else:
        for name, s in sums.items():
            print(f"{name:30s} n={s['points']:3d}  median |error| {s['median_abs_error']:.0%}  "
                  f"median {s['median_error']:+.0%}  worst {s['worst_error']:+.0%}  "
                  f"roofline median {s['roofline_median_error']:+.0%}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": sums}, indent=2))


if __name__ == "__main__":
    main()
