"""`perfest train` through click's CliRunner: the summary, JSON, CSV, the scaling curve, the
search, and one line + exit 2 for every kind of bad input the issue lists."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from perfest.cli import cli

BASE = ("train", "-m", "llama-3-8b", "-g", "h100-sxm", "--global-batch", "32", "--seq-len", "4096")


def run(*args):
    return CliRunner().invoke(cli, [*BASE, *args])


def test_summary_names_every_part():
    r = run("--gpus", "16", "--tp", "2", "--sequence-parallel", "--zero", "1",
            "--recompute", "selective", "--tokens", "1e12")  # fmt: skip
    assert r.exit_code == 0, r.output
    for text in ("step time", "tokens/s per GPU", "MFU / HFU", "bubble", "communication",
                 "tensor parallel (forward)", "data-parallel gradient reduce-scatter",
                 "memory per device", "days on 16 GPUs"):  # fmt: skip
        assert text in r.output, text


def test_layers_prints_each_phase():
    r = run("--gpus", "8", "--recompute", "full", "--layers")
    assert r.exit_code == 0
    for text in ("forward, per op", "backward, per op", "recompute, per op", "attn_bwd.scores",
                 "optimizer, per op", "update"):  # fmt: skip
        assert text in r.output, text


def test_json_is_the_library_dict():
    r = run("--gpus", "8", "--json")
    data = json.loads(r.stdout)
    assert data["layout"]["dp"] == 8 and data["memory"]["capacity_bytes"] == 80e9
    assert 0 < data["mfu"] < data["hfu"] < 1


def test_csv_has_a_row_per_op():
    rows = list(csv.reader(io.StringIO(run("--gpus", "8", "--csv").stdout)))
    assert rows[0][:2] == ["phase", "name"]
    assert {row[0] for row in rows[1:]} == {"forward", "backward", "optimizer"}


def test_a_list_of_gpu_counts_is_a_scaling_curve():
    r = run("--gpus", "8:32:x2", "--tp", "2")
    assert r.exit_code == 0 and "strong" in r.output
    data = json.loads(run("--gpus", "8,16", "--weak", "--json").stdout)
    assert [(e["layout"]["dp"], e["config"]["global_batch"]) for e in data] == [(8, 32), (16, 64)]


def test_search_ranks_layouts():
    r = CliRunner().invoke(cli, ["train", "-m", "gpt2", "-g", "a100-80gb-sxm", "--gpus", "8",
                                 "--global-batch", "64", "--seq-len", "1024", "--search",
                                 "--top", "3"])  # fmt: skip
    assert r.exit_code == 0 and "layouts in" in r.output and "fastest" in r.output
    args = ["train", "-m", "gpt2", "-g", "a100-80gb-sxm", "--gpus", "4", "--global-batch", "8",
            "--seq-len", "512", "--search", "--json"]  # fmt: skip
    data = json.loads(CliRunner().invoke(cli, args).stdout)
    assert len(data["top"]) == 10 and data["evaluated"] == len(data["candidates"])


def test_a_mixture_of_experts_with_expert_parallelism():
    r = CliRunner().invoke(cli, ["train", "-m", "mixtral-8x7b", "-g", "h100-sxm", "--gpus", "16",
                                 "--ep", "8", "--zero", "1", "--global-batch", "32", "--seq-len",
                                 "4096"])  # fmt: skip
    assert r.exit_code == 0, r.output
    # dp 16, ep 8, etp 1: the experts' replicas are 16/8 = 2
    for text in ("ep 8 · etp 1 · expert dp 2", "expert all-to-all and gathers (forward)",
                 "expert all-to-all and gathers (backward)"):  # fmt: skip
        assert text in r.output, text
    # on 8 GPUs with tp 2 (etp 2 by default), etp·ep = 16 does not fit the 8 ranks of a stage
    bad = CliRunner().invoke(cli, ["train", "-m", "mixtral-8x7b", "-g", "h100-sxm", "--gpus",
                                   "8", "--tp", "2", "--ep", "8", "--sequence-parallel",
                                   "--global-batch", "32", "--seq-len", "4096"])  # fmt: skip
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: --ep: etp·ep = 2·8 does not divide the tp·cp·dp")


def test_a_layout_that_does_not_fit_is_reported():
    r = CliRunner().invoke(cli, ["train", "-m", "llama-3.1-70b", "-g", "h100-sxm", "--gpus", "8",
                                 "--global-batch", "8", "--seq-len", "4096"])  # fmt: skip
    assert r.exit_code == 0 and "does not fit" in r.output
    assert r.stderr.startswith("warning: memory: needs")


@pytest.mark.parametrize(
    "args, message",
    [
        (("--gpus", "8", "--tp", "2", "--dp", "2"), "--gpus: tp·pp·cp·dp = 2·1·1·2 = 4 is not"),
        (("--gpus", "8", "--tp", "3"), "--tp: 3 does not divide the 32 attention heads"),
        (("--gpus", "64", "--pp", "64"), "--pp: 64 pipeline stages exceed the 32 layers"),
        (("--gpus", "8", "--micro-batch", "3"), "--global-batch: 32 is not divisible by"),
        (("--gpus", "8", "--cp", "8", "--seq-len", "4100"), "--cp: 8 does not divide the seq"),
        (("--gpus", "8", "--optimizer", "adagrad"), "'adagrad' is not one of"),
        (("--gpus", "8", "--zero", "4"), "--zero: must be at most 3 (got 4)"),
        (("--gpus", "8", "--dtype", "fp8", "-g", "a100-80gb-sxm"), "--dtype: a100-80gb-sxm"),
        (("--gpus", "8", "--interleave", "2"), "--interleave: virtual stages need"),
        (("--gpus", "0"), "--gpus: 0 must be a positive whole number"),
        (("--gpus", "8,16", "--dp", "2"), "--dp: a list of GPU counts derives dp"),
        (("--gpus", "8,16", "--search"), "--gpus: --search ranks the layouts of one GPU count"),
        (("--gpus", "8", "--tokens", "-1"), "--tokens: -1 must be positive"),
        (("--gpus", "8", "--ep", "8"), "--ep: llama-3-8b has no experts to divide"),
        (("--gpus", "8", "-m", "t5-base"), "--model: training an encoder-decoder (t5-base) is"),
        (
            ("--gpus", "8", "-m", "bert-base-uncased", "--tp", "8"),
            "--tp: 8 does not divide the 12 attention heads of bert-base-uncased",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    r = run(*args)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.stderr.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_an_encoder_trains_masked_lm():
    args = ("train", "-m", "bert-large-uncased", "-g", "a100-80gb-sxm", "--gpus", "8",
            "--global-batch", "256", "--micro-batch", "32", "--seq-len", "128")  # fmt: skip
    r = CliRunner().invoke(cli, [*args, "--tp", "2", "--sequence-parallel", "--layers"])
    assert r.exit_code == 0, r.output
    for text in ("335.2 M parameters", "MFU / HFU", "mlm_decoder", "mlm_transform.wgrad",
                 "loss", "memory per device", "tensor parallel (backward)"):  # fmt: skip
        assert text in r.output, text
    data = json.loads(CliRunner().invoke(cli, [*args, "--json"]).stdout)
    assert data["parameters"] == 335_174_458 and data["memory"]["fits"]
    r = CliRunner().invoke(cli, [*args[:-4], "--seq-len", "128", "--search", "--top", "3"])
    assert r.exit_code == 0 and "fastest" in r.output
