"""perfest's training predictions against PUBLISHED measurements of real runs (a benchmark, not
a test).

    python benchmarks/bench_train_published.py [--data benchmarks/published_training.yaml]
                                               [--json out.json]

Loads the points of benchmarks/published_training.yaml (each with its source and exact
conditions), runs `perfest.estimate_training` on each with perfest's default efficiencies
(nothing here is tuned to the measurements), and prints predicted against measured per point,
with the median |error| per group — dense models, and mixtures of experts apart — overall and
per source.

    error       = (predicted − measured) / measured, on the metric as published (a throughput)
    time error  = measured / predicted − 1: the step time's error; positive = perfest predicts
                  the run slower than it was (pessimistic)
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

import perfest
from perfest.specs import ModelConfig

HERE = Path(__file__).resolve().parent
CONFIG_KEYS = ("tp", "pp", "cp", "ep", "etp", "interleave", "sequence_parallel", "zero",
               "micro_batch", "global_batch", "seq_len", "dtype", "recompute",
               "attention")  # fmt: skip


def gpt(name: str, sizes: dict) -> ModelConfig:
    """A PTD-P GPT model: 4h GELU MLP, LayerNorm, biases, learned positions, tied, V = 51,200."""
    h = sizes["hidden_size"]
    return ModelConfig(name=name, vocab_size=51200, intermediate_size=4 * h, mlp="classic",
                       activation="gelu", norm="layernorm", position="learned", qkv_bias=True,
                       out_bias=True, mlp_bias=True, tied_embeddings=True,
                       max_position_embeddings=2048, **sizes)  # fmt: skip


def megatron_96(m: ModelConfig, batch: int, s: int) -> float:
    """PTD-P eq. (3): FLOPs of one step with full recomputation."""
    h, L, V = m.h, m.L, m.V
    return 96 * batch * s * L * h * h * (1 + s / (6 * h) + V / (16 * L * h))


def evaluate(pt: dict, models: dict) -> dict:
    model = models.get(pt["model"], pt["model"])
    fields = {k: pt[k] for k in CONFIG_KEYS if k in pt}
    est = perfest.estimate_training(model, pt["hardware"], gpus=pt["gpus"], **fields)
    m = perfest.load_model(model)
    measured = float(pt["value"])
    if pt["metric"] == "tokens_per_s_per_gpu":
        predicted = est.tokens_per_s_per_gpu
    else:  # the paper's TFLOP/s per GPU, from its own FLOP count over the step time
        predicted = megatron_96(m, pt["global_batch"], pt["seq_len"]) / (
            est.step_time_s * pt["gpus"] * 1e12
        )
    return {
        "id": pt["id"],
        "group": "moe" if m.moe else "dense",
        "source": pt["source"].get("repo") or pt["source"]["url"],
        "model": m.name,
        "hardware": pt["hardware"],
        "gpus": pt["gpus"],
        "layout": f"tp{est.layout.tp} pp{est.layout.pp} cp{est.layout.cp} dp{est.layout.dp}"
        + (f" ep{est.layout.ep}" if est.layout.ep > 1 else "")
        + f" v{est.layout.interleave} b{est.layout.micro_batch}",
        "dtype": est.config.dtype,
        "metric": pt["metric"],
        "measured": measured,
        "predicted": predicted,
        "error_pct": 100 * (predicted / measured - 1),
        "time_error_pct": 100 * (measured / predicted - 1),
        "mfu": est.mfu,
        "fits": est.memory.fits,
        "bubble_share": est.breakdown.bubble_s / est.step_time_s,
        "comm_share": est.breakdown.communication_s / est.step_time_s,
    }


def stats(rows: list[dict]) -> dict:
    errors = [abs(r["error_pct"]) for r in rows]
    worst = max(rows, key=lambda r: abs(r["error_pct"]))
    return {
        "points": len(rows),
        "median_abs_error_pct": statistics.median(errors),
        "median_time_error_pct": statistics.median(r["time_error_pct"] for r in rows),
        "worst_abs_error_pct": abs(worst["error_pct"]),
        "worst_id": worst["id"],
    }


def table(rows: list[dict]) -> str:
    lines = ["| id | model | device | GPUs | layout | dtype | metric | measured | predicted | "
             "error | time err | MFU |",
             "|---|---|---|---:|---|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['id']} | {r['model']} | {r['hardware']} | {r['gpus']} | {r['layout']} | "
            f"{r['dtype']} | {r['metric']} | {r['measured']:,.0f} | {r['predicted']:,.0f} | "
            f"{r['error_pct']:+.0f} % | {r['time_error_pct']:+.0f} % | {r['mfu']:.0%}"
            + ("" if r["fits"] else " (does not fit)")
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=HERE / "published_training.yaml")
    ap.add_argument("--json", type=Path, help="write points and summaries as JSON")
    args = ap.parse_args(argv)
    data = yaml.safe_load(args.data.read_text())
    models = {name: gpt(name, sizes) for name, sizes in data.get("models", {}).items()}
    rows = [evaluate(p, models) for p in data["points"]]
    summary = {}
    for group in ("dense", "moe"):
        members = [r for r in rows if r["group"] == group]
        if not members:
            continue
        by_source = defaultdict(list)
        for r in members:
            by_source[r["source"]].append(r)
        summary[group] = {"overall": stats(members),
                          "by_source": {k: stats(v) for k, v in by_source.items()}}  # fmt: skip
    print(table(rows))
    print()
    print("| group | source | points | median abs error | median time error | worst (id) |")
    print("|---|---|---:|---:|---:|---|")
    for group, g in summary.items():
        for name, s in [("all", g["overall"]), *g["by_source"].items()]:
            print(f"| {group} | {name} | {s['points']} | {s['median_abs_error_pct']:.0f} % | "
                  f"{s['median_time_error_pct']:+.0f} % | {s['worst_abs_error_pct']:.0f} % "
                  f"({s['worst_id']}) |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"points": rows, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
