"""perfest's encoder training predictions against PUBLISHED BERT pre-training throughput (a
benchmark, not a test).

    python benchmarks/bench_encoder_training.py [--data benchmarks/published_encoder_training.yaml]
                                                [--json out.json]

Loads the points of benchmarks/published_encoder_training.yaml (NVIDIA DeepLearningExamples'
BERT-large pre-training on DGX A100 80GB: sequences/s at lengths 128 and 512, 1 to 256 GPUs)
and predicts each with perfest's default efficiencies, three ways:

    stated    what the README and the repository's config files state, in perfest's options:
              fp16, the batch, dropout 0.1 (bert_config.json), the masked-LM head over the 20 /
              80 masked positions only (--mlm-positions; the data's max_pred), gradients reduced
              in fp16 (allreduce_post_accumulation_fp16); perfest's defaults for the rest (flash
              attention: the README does not say which attention kernel ran); adamw for
              NVIDIA's LAMB. The comparison RESULTS.md leads with.
    defaults  fp16 and the batch only; perfest's defaults for everything else (no dropout,
              every position scored, fp32 gradients)
    eager     `stated` with unfused attention (scores and probabilities through memory): the
              sensitivity to the one condition the README leaves open

Nothing is tuned to the measurements. Printed per point: measured and predicted sequences/s,

    error       = (predicted − measured) / measured
    time error  = measured / predicted − 1 (positive = perfest predicts the run slower)

and the median |error| per variant and per table (single node, multi-node).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import yaml

import perfest

HERE = Path(__file__).resolve().parent

#: The run's conditions as perfest options (module docstring); `masked`: score the masked
#: positions only.
STATED = {"dropout": True, "grad_dtype": "fp16", "masked": True}
VARIANTS = {"stated": STATED, "defaults": {}, "eager": {**STATED, "attention": "eager"}}


def evaluate(data: dict, pt: dict, variant: str) -> dict:
    fields = dict(VARIANTS[variant])
    if fields.pop("masked", False):
        fields["mlm_positions"] = pt["masked"]
    est = perfest.estimate_training(
        data["model"],
        data["hardware"],
        gpus=pt["gpus"],
        global_batch=pt["per_gpu"] * pt["gpus"],
        micro_batch=pt["micro_batch"],
        seq_len=pt["seq_len"],
        dtype=data["dtype"],
        **fields,
    )
    predicted = est.tokens_per_s / pt["seq_len"]
    measured = float(pt["value"])
    return {
        "id": pt["id"],
        "table": pt["table"],
        "variant": variant,
        "gpus": pt["gpus"],
        "seq_len": pt["seq_len"],
        "micro_batch": pt["micro_batch"],
        "micro_batches": est.layout.micro_batches,
        "measured": measured,
        "predicted": predicted,
        "error_pct": 100 * (predicted / measured - 1),
        "time_error_pct": 100 * (measured / predicted - 1),
        "mfu": est.mfu,
        "comm_share": est.breakdown.communication_s / est.step_time_s,
        "fits": est.memory.fits,
    }


def stats(rows: list[dict]) -> dict:
    worst = max(rows, key=lambda r: abs(r["error_pct"]))
    return {
        "points": len(rows),
        "median_abs_error_pct": statistics.median(abs(r["error_pct"]) for r in rows),
        "median_time_error_pct": statistics.median(r["time_error_pct"] for r in rows),
        "worst_abs_error_pct": abs(worst["error_pct"]),
        "worst_id": worst["id"],
    }


def table(rows: list[dict]) -> str:
    lines = ["| id | variant | GPUs | seq | b × m | measured seq/s | predicted seq/s | error | "
             "time err | MFU | exposed comm |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['id']} | {r['variant']} | {r['gpus']} | {r['seq_len']} | "
            f"{r['micro_batch']} × {r['micro_batches']} | {r['measured']:,.0f} | "
            f"{r['predicted']:,.0f} | {r['error_pct']:+.0f} % | {r['time_error_pct']:+.0f} % | "
            f"{r['mfu']:.0%} | {r['comm_share']:.0%}" + ("" if r["fits"] else " (does not fit)")
            + " |"
        )  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=HERE / "published_encoder_training.yaml")
    ap.add_argument("--json", type=Path, help="write points and summaries as JSON")
    args = ap.parse_args(argv)
    data = yaml.safe_load(args.data.read_text())
    rows = [evaluate(data, p, v) for v in VARIANTS for p in data["points"]]
    summary = {}
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        summary[variant] = {"all": stats(mine)}
        for name in dict.fromkeys(r["table"] for r in mine):
            summary[variant][name] = stats([r for r in mine if r["table"] == name])
    print(table(rows))
    print()
    print("| variant | table | points | median abs error | median time error | worst (id) |")
    print("|---|---|---:|---:|---:|---|")
    for variant, groups in summary.items():
        for name, s in groups.items():
            print(f"| {variant} | {name} | {s['points']} | {s['median_abs_error_pct']:.0f} % | "
                  f"{s['median_time_error_pct']:+.0f} % | {s['worst_abs_error_pct']:.0f} % "
                  f"({s['worst_id']}) |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"points": rows, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
