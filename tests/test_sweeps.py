"""Sweeps: axis parsing, the batch curve's shape (throughput, knee, memory), and the CLI."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import FrozenInstanceError
from itertools import pairwise

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

import perfest
from perfest.cli import cli
from perfest.errors import SpecError, UnknownNameError
from perfest.options import progress
from perfest.render.sweep import knee_sentence
from perfest.roofline import Bound
from perfest.specs import Workload
from perfest.sweep_cli import PROGRESS_MIN_POINTS
from perfest.sweeps import SweepPoint, SweepSummary, parse_axis, sweep

POWERS = "1:1024:x2"


def run(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def llama_h100():
    """llama-2-7b on h100-sxm, 512 in / 128 out: 181 sequences fit (13.5 GB of weights plus
    0.34 GB of KV cache and activations per sequence, of 80 GB), so batch 256 and up do not."""
    return sweep("llama-2-7b", "h100-sxm", batches=POWERS, input_lens=512, output_lens=128)


# ---------------------------------------------------------------------------------------------
# Axes


@pytest.mark.parametrize(
    "text, values",
    [
        ("1,2,4,8", (1, 2, 4, 8)),
        ("8, 2,4,2", (2, 4, 8)),  # sorted, each once
        ("1:1024:x2", tuple(2**k for k in range(11))),
        ("3:100:x3", (3, 9, 27, 81)),
        ("1:64:+8", (1, 9, 17, 25, 33, 41, 49, 57)),  # 64 is not on the grid: never exceeded
        ("8:64:8", (8, 16, 24, 32, 40, 48, 56, 64)),  # stop on the grid: included
        ("5:8", (5, 6, 7, 8)),
        ("4:4:x2", (4,)),
        ("1,2,4:16:x2", (1, 2, 4, 8, 16)),
        # 1, 1.5, 2.25, 3.375, 5.06, 7.59 rounded, each once
        ("1:8:x1.5", (1, 2, 3, 5, 8)),
    ],
)
def test_parse_axis(text, values):
    assert parse_axis(text) == values


@pytest.mark.parametrize(
    "text, message",
    [
        ("1:0:x2", "0 must be a positive whole number"),
        ("8:2:x2", "ends (2) before it starts (8)"),
        ("x", "'x' is not a whole number"),
        ("-4", "-4 must be a positive whole number"),
        ("0", "0 must be a positive"),
        ("1:64:+0", "must be at least +1"),
        ("1:64:-2", "must be at least +1"),
        ("1:64:x1", "must be greater than 1"),
        ("1:64:x0.5", "must be greater than 1"),
        ("1:64:xq", "is not a number"),
        ("1:64:q", "is not a whole number"),
        ("1:2:3:4", "is not a range"),
        ("1.5", "is not a whole number"),
        ("", "empty list"),
        (",", "empty list"),
        ("1,,2", "empty item"),
        ("1:100000000", "more than 100,000 values"),
    ],
)
def test_parse_axis_rejects_with_the_option_name(text, message):
    with pytest.raises(SpecError) as err:
        parse_axis(text, "--input-len")
    assert str(err.value).startswith("--input-len: ") and message in str(err.value)


@given(
    start=st.integers(1, 500),
    span=st.integers(0, 5000),
    step=st.integers(1, 600),
    geometric=st.booleans(),
)
def test_ranges_stay_within_bounds_and_step_evenly(start, span, step, geometric):
    stop = start + span
    factor = step % 7 + 2  # 2…8
    text = f"{start}:{stop}:x{factor}" if geometric else f"{start}:{stop}:+{step}"
    values = parse_axis(text)
    assert values[0] == start and values[-1] <= stop
    assert all(a < b for a, b in pairwise(values))
    if geometric:
        assert all(b == a * factor for a, b in pairwise(values))
        assert values[-1] * factor > stop
    else:
        assert all(b - a == step for a, b in pairwise(values))
        assert values[-1] + step > stop


# ---------------------------------------------------------------------------------------------
# The batch curve


@pytest.mark.parametrize("device", ["a100-80gb-sxm", "h100-sxm"])
def test_throughput_never_decreases_with_batch_while_it_fits(device):
    result = sweep("llama-2-7b", device, batches=POWERS)
    fitting = [p for p in result.points if p.fits]
    assert len(fitting) >= 8  # batch 1 … 128 at least
    rates = [p.output_tokens_per_s for p in fitting]
    assert rates == sorted(rates)
    # … while each sequence gets slower: per-sequence tokens/s falls, TPOT grows
    per_seq = [p.per_sequence_tokens_per_s for p in fitting]
    assert per_seq == sorted(per_seq, reverse=True)


def test_throughput_never_decreases_across_the_catalog():
    """Every catalogued model that generates on every catalogued device, doubling the batch
    (an encoder's sweep: tests/test_encoders.py)."""
    generators = [m for m in perfest.list_models() if perfest.load_model(m).L_dec]
    for model in generators:
        result = sweep(model, perfest.list_hardware(), batches="1:512:x2", input_lens=512)
        for summary in result.summaries:
            rates = [p.output_tokens_per_s for p in result.series(summary) if p.fits]
            assert rates == sorted(rates), (model, summary.hardware)


def test_knee_is_where_decode_bound_flips():
    """llama-3-8b (GQA: 4× less KV per sequence than llama-2-7b) at a short prompt on an A100:
    the weight matmuls take over decode, which turns compute-bound within the sweep."""
    result = sweep("llama-3-8b", "a100-80gb-sxm", batches=POWERS, input_lens=128)
    (s,) = result.summaries
    assert s.knee_batch is not None
    bounds = {p.batch: p.decode_bound for p in result.points}
    assert bounds[s.knee_batch] == "compute"
    assert all(bounds[b] != "compute" for b in bounds if b < s.knee_batch)
    # the same from the estimate itself, one swept batch below and at the knee
    below = s.knee_batch // 2
    assert (
        perfest.estimate("llama-3-8b", "a100-80gb-sxm", batch=below, input_len=128).decode.bound
        != "compute"
    )
    assert (
        perfest.estimate(
            "llama-3-8b", "a100-80gb-sxm", batch=s.knee_batch, input_len=128
        ).decode.bound
        == "compute"
    )
    # decode can only be compute-bound once its weight matmuls are
    assert s.weights_knee_batch is not None and s.weights_knee_batch <= s.knee_batch


def test_ridge_batch_by_hand():
    """A100: 312 TFLOP/s bf16 / 2039 GB/s = 153.0 FLOP/B. Weights of w bytes: a [b, h] @ [h, n]
    product does 2·b·h·n FLOPs on h·n·w bytes, intensity 2b/w, so b_ridge = 153.0·w/2:
    153.0 for bf16 weights, 38.3 for int4 (w = 0.5)."""
    bf16 = sweep("llama-2-7b", "a100-80gb-sxm", batches=[1]).summaries[0]
    assert bf16.ridge_point == pytest.approx(312e12 / 2039e9)
    assert bf16.ridge_batch == pytest.approx(312e12 / 2039e9)
    int4 = sweep("llama-2-7b", "a100-80gb-sxm", batches=[1], weight_dtype="int4").summaries[0]
    assert int4.ridge_batch == pytest.approx(312e12 / 2039e9 * 0.5 / 2)


@pytest.mark.parametrize("device", ["a100-80gb-sxm", "h100-sxm"])
def test_weight_matmuls_flip_near_the_analytic_ridge_batch(device):
    """Batch by batch, the weight matmuls turn compute-bound within a factor of 1.5 of
    ridge_point·w/2 (tile padding and the efficiencies move it; the closed form ignores them)."""
    (s,) = sweep("llama-2-7b", device, batches="16:512:+1").summaries
    assert s.ridge_batch / 1.5 <= s.weights_knee_batch <= s.ridge_batch * 1.5


def test_decode_time_is_near_continuous_in_batch_while_memory_bound():
    # llama-2-7b on an A100, 512 in / 128 out, every batch from 1 to 300: decode stays
    # memory-bound. One more sequence adds its own KV-cache reads (2·32·4096·2 B·576 tokens
    # = 302 MB at 2039 GB/s·0.9 ≈ 0.16 ms) and, when it starts a new row tile, the compute
    # of one more 16-row tile — the smallest the GEMM library has, as it picks the cheapest
    # shape: 16 rows · 2 FLOPs · 6.61e9 matmul weights / (312 TFLOP/s · 0.8) ≈ 0.85 ms. So no
    # step exceeds ≈ 1.0 ms, and past the largest tile (batch 128, where charging a second
    # 128-row tile made batch 129 17 % slower) no step exceeds 3 %.
    result = sweep("llama-2-7b", "a100-80gb-sxm", batches="1:300")
    assert {p.decode_bound for p in result.points} == {Bound.MEMORY}
    tpot = {p.batch: p.tpot_s for p in result.points}
    for b in range(1, 300):
        assert tpot[b + 1] - tpot[b] < 1.05e-3, b
        if b >= 128:
            assert tpot[b + 1] / tpot[b] - 1 < 0.03, b


def test_long_context_attention_keeps_decode_memory_bound(llama_h100):
    """llama-2-7b (MHA) on H100 at 512 in: the weight matmuls flip, decode never does — each
    sequence's KV products outweigh the shared weights at every batch."""
    (s,) = llama_h100.summaries
    assert s.knee_batch is None and s.weights_knee_batch is not None
    assert {p.decode_bound for p in llama_h100.points} == {"memory"}
    decode = perfest.estimate("llama-2-7b", "h100-sxm", batch=1024).decode
    # the products with the KV cache: matmuls whose second operand is no weight
    kv = sum(r.time for r in decode.rows if r.op.gemm is not None and r.op.activation_product)
    weights = sum(op.time_s for op in decode.layers if op.kind == "matmul") - kv
    assert kv > weights


def test_points_that_do_not_fit_are_kept_and_flagged(llama_h100):
    (s,) = llama_h100.summaries
    assert s.max_batch == 181
    assert [p.batch for p in llama_h100.points] == [2**k for k in range(11)]
    for p in llama_h100.points:
        assert p.fits == (p.batch <= s.max_batch) == (p.memory_bytes <= p.capacity_bytes)
    assert s.best_batch == 128  # the largest fitting swept batch, throughput rising with batch
    assert s.best_tokens_per_s == max(p.output_tokens_per_s for p in llama_h100.points if p.fits)


def test_nothing_fits():
    result = sweep("llama-2-70b", "l4", batches=[1, 2])
    assert [p.fits for p in result.points] == [False, False]
    assert result.summaries[0].best_batch is None and result.summaries[0].max_batch == 0


def test_points_are_estimates():
    """Each point is `perfest.estimate` at its shape, not a second model."""
    result = sweep("mistral-7b", "h200-sxm", batches=[4, 32], input_lens=[256], output_lens=[64])
    for p in result.points:
        est = perfest.estimate(
            "mistral-7b", "h200-sxm", batch=p.batch, input_len=256, output_len=64
        )
        assert p.tpot_s == est.generation.tpot_s and p.ttft_s == est.generation.ttft_s
        assert p.output_tokens_per_s == est.generation.output_tokens_per_s
        assert p.decode_intensity == est.decode.intensity
        assert p.memory_bytes == est.memory.total_bytes


def test_every_axis_and_device():
    devices = ["a100-80gb-sxm", "h100-sxm", "h200-sxm"]
    result = sweep("gpt2", devices, batches="1,8", input_lens="128,512", output_lens=[32, 64, 128])
    assert len(result.points) == 3 * 2 * 3 * 2 and len(result.summaries) == 3 * 2 * 3
    assert result.hardware == tuple(devices)
    assert (result.batches, result.input_lens, result.output_lens) == (
        (1, 8),
        (128, 512),
        (32, 64, 128),
    )
    for s in result.summaries:
        series = result.series(s)
        assert [p.batch for p in series] == [1, 8]
        assert {(p.hardware, p.input_len, p.output_len) for p in series} == {
            (s.hardware, s.input_len, s.output_len)
        }


def test_shared_workload_fields_and_loaded_specs():
    model, hw = perfest.load_model("llama-2-13b"), perfest.load_hardware("h100-sxm")
    workload = Workload(dtype="fp8", tp=2)
    result = sweep(model, [hw, "h100"], workload, batches=[1, 2])  # h100 is an alias: once
    assert result.hardware == ("h100-sxm",)
    assert result.workload["dtype"] == "fp8" and result.workload["tp"] == 2
    assert "batch" not in result.workload


def test_axis_left_out_takes_the_workload_value():
    result = sweep("gpt2", "l4", batch=3, input_len=64)
    assert (result.batches, result.input_lens, result.output_lens) == ((3,), (64,), (128,))


def test_results_are_frozen(llama_h100):
    with pytest.raises(FrozenInstanceError):
        llama_h100.points[0].batch = 2
    with pytest.raises(FrozenInstanceError):
        llama_h100.model = "x"


def test_progress_is_reported_per_point():
    calls = []
    sweep("gpt2", ["l4", "l40s"], batches="1:8:x2", progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 8) for i in range(1, 9)]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"batches": []}, SpecError, "^batches: empty list"),
        ({"batches": [4, 0]}, SpecError, "^batches: 0 must be"),
        ({"input_lens": [-1]}, SpecError, "^input_lens: -1 must be"),
        ({"output_lens": "0:4"}, SpecError, "^output_lens: 0 must be"),
        (
            {"hardware": ["h100", "nope-9000"]},
            UnknownNameError,
            "^hardware: unknown device 'nope-9000'",
        ),
        ({"hardware": []}, SpecError, "^hardware: empty list"),
        ({"batches": "1:1000", "input_lens": "1:200"}, SpecError, "points; at most 100,000"),
        ({"dtype": "int4"}, SpecError, "dtype: int4 is a weight format"),
    ],
)
def test_bad_sweeps_fail_naming_the_option(kwargs, error, message):
    kwargs = {"hardware": "h100", **kwargs}
    with pytest.raises(error, match=message):
        sweep("gpt2", kwargs.pop("hardware"), **kwargs)


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_table_with_summary():
    r = run("sweep", "-m", "llama-2-7b", "-g", "h100-sxm", "--batch", POWERS)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "tok/s" in out and "TPOT" in out and "bound" in out
    assert "memory capacity per device: 80.00 GB" in out
    assert "knee: none up to batch 1,024 — decode never turns compute-bound" in out
    assert "its weight matmuls do at batch 512" in out
    assert "attention also reads each sequence's own 0.30 GB KV cache" in out
    assert "memory: the largest batch that fits is 181" in out
    assert "best throughput that fits: batch 128" in out
    assert out.count(" no ") >= 3  # batch 256, 512 and 1024 are marked as not fitting
    assert r.stderr == ""  # no progress bar when not on a terminal, no warnings


def test_cli_knee_sentence_when_decode_flips():
    r = run("sweep", "-m", "llama-3-8b", "-g", "a100", "-b", POWERS, "-i", "128")
    assert r.exit_code == 0, r.output
    assert "knee: decode turns compute-bound at batch" in r.stdout
    assert "analytic ridge-point batch ≈ 153" in r.stdout


def test_cli_json_carries_every_point_and_the_summary():
    r = run("sweep", "-m", "llama-2-7b", "-g", "a100-80gb-sxm,h100-sxm", "-b", POWERS, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert len(data["points"]) == 2 * 11
    assert set(data["points"][0]) == set(SweepPoint.__dataclass_fields__)
    assert {p["hardware"] for p in data["points"]} == {"a100-80gb-sxm", "h100-sxm"}
    assert [p["fits"] for p in data["points"]].count(False) == 2 * 3
    assert [s["max_batch"] for s in data["summaries"]] == [181, 181]
    assert data["summaries"][1]["weights_knee_batch"] == 512


def test_cli_csv_carries_every_point():
    r = run("sweep", "-m", "gpt2", "-g", "l4", "-b", "1:64:+8", "-i", "128,256", "--csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 8 * 2
    assert list(rows[0]) == list(SweepPoint.__dataclass_fields__)
    assert [int(row["batch"]) for row in rows[:8]] == list(range(1, 64, 8))
    assert {row["fits"] for row in rows} == {"True"}


def test_cli_several_series_print_a_summary_table():
    r = run("sweep", "-m", "gpt2", "-g", "l4,h100", "-b", "1,2", "--output-len", "16,32")
    assert r.exit_code == 0, r.output
    assert "summary" in r.stdout and "matmul knee" in r.stdout and "ridge batch" in r.stdout


def test_cli_passes_the_workload_options():
    r = run(
        "sweep",
        "-m",
        "llama-2-70b",
        "-g",
        "h100",
        "-b",
        "1,2",
        "--tp",
        "4",
        "--json",
        "--weight-dtype",
        "int4",
        "--compute-efficiency",
        "0.5",
    )
    data = json.loads(r.stdout)
    assert data["workload"]["tp"] == 4 and data["workload"]["weight_dtype"] == "int4"
    assert data["summaries"][0]["bytes_per_weight"] == 0.5


@pytest.mark.parametrize(
    "args, message",
    [
        (["-b", "64:1:x2"], "error: --batch: range '64:1:x2' ends (1) before it starts (64)"),
        (["-b", "1:0:x2"], "error: --batch: 0 must be a positive whole number"),
        (["-b", "x"], "error: --batch: 'x' is not a whole number"),
        (["-b", "-2"], "error: --batch: -2 must be a positive whole number"),
        (["-b", "1:8:+0"], "error: --batch: step '+0' in '1:8:+0' must be at least +1"),
        (["-b", ""], "error: --batch: empty list"),
        (["-i", "0,5"], "error: --input-len: 0 must be"),
        (["--output-len", "1:4:x"], "error: --output-len: factor 'x' in '1:4:x' is not a number"),
        (["-g", "h100,h1000"], "error: --gpu: unknown device 'h1000'; closest: "),
        (["-g", ","], "error: --gpu: empty list of devices"),
        (["-g", "h100,,l4"], "error: --gpu: empty name in 'h100,,l4'"),
        (["--plot", "x.jpg"], "'--plot': 'x.jpg' must end in .png or .svg"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args, message):
    argv = ["sweep", "-m", "gpt2", *(["-g", "h100"] if "-g" not in args else []), *args]
    r = run(*argv)
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and message in r.output


def test_progress_bar_only_on_a_terminal_and_for_long_sweeps():
    def drive(console, total):
        with progress(total, "sweeping", minimum=PROGRESS_MIN_POINTS, console=console) as tick:
            for done in range(1, total + 1):
                tick(done=done)
        return console.file.getvalue()

    assert "sweeping" in drive(Console(file=io.StringIO(), force_terminal=True, width=80), 200)
    assert drive(Console(file=io.StringIO(), force_terminal=True, width=80), 49) == ""
    assert drive(Console(file=io.StringIO(), force_terminal=False), 10_000) == ""


def test_records_to_dict_hold_exactly_their_declared_fields(llama_h100):
    for record in (*llama_h100.points, *llama_h100.summaries):
        assert list(record.to_dict()) == list(type(record).__dataclass_fields__)


def _series(bounds: str, **summary):
    """Points at batch 1, 2, 4, … with decode bounds c(ompute)/m(emory), and their summary."""
    points = tuple(
        SweepPoint(
            hardware="dev",
            batch=2**k,
            input_len=512,
            output_len=128,
            output_tokens_per_s=1.0,
            per_sequence_tokens_per_s=1.0,
            ttft_s=1.0,
            tpot_s=1.0,
            e2e_latency_s=1.0,
            decode_intensity=1.0,
            decode_bound={"c": "compute", "m": "memory"}[b],
            weights_bound="compute",
            memory_bytes=1.0,
            capacity_bytes=2.0,
            fits=True,
        )
        for k, b in enumerate(bounds)
    )
    knee = next((p.batch for p in points if p.decode_bound == "compute"), None)
    fields = dict(
        hardware="dev",
        input_len=512,
        output_len=128,
        ridge_point=150.0,
        bytes_per_weight=2.0,
        ridge_batch=150.0,
        knee_batch=knee,
        weights_knee_batch=knee,
        max_batch=1000,
        best_batch=1,
        best_tokens_per_s=1.0,
        largest_swept_batch=points[-1].batch,
        decode_context_len=576,
        kv_bytes_per_sequence=3e8,
    )
    return SweepSummary(**{**fields, **summary}), points


@pytest.mark.parametrize(
    "bounds, says",
    [
        ("mmmmmmmmcc", ["decode turns compute-bound at batch 256", "throughput flattens"]),
        (
            "cccmmm",
            [
                "compute-bound already at batch 1, below the analytic ridge-point batch",
                "from batch 8 it is memory-bound again",
            ],
        ),
        ("mmmmcm", ["turns compute-bound at batch 16", "from batch 32 it is memory-bound again"]),
        ("mmmm", ["none up to batch 8", "sweep past batch 150"]),
    ],
)
def test_the_knee_sentence_follows_the_bounds(bounds, says):
    summary, points = _series(bounds)
    text = knee_sentence(summary, points)
    assert text.count(". ") == 0 and text.endswith(".")  # one sentence
    for phrase in says:
        assert phrase in text


def test_moe_ridge_batch_by_hand():
    from perfest.sweeps import experts_touched, moe_ridge_batch

    # top-2 of 8 experts, 2 B weights, ridge point 300: once a batch touches all 8 experts
    # their intensity is 2·b·2 / (2 B · 8) = b/4 FLOP/B, so b_ridge = 300·4 = 1,200 — 8/2 = 4×
    # the dense 300·2/2 = 300
    assert moe_ridge_batch(300, 2, 8, 2) == pytest.approx(1_200)
    # 256 experts, top-8, 1 B (fp8), --experts-touched 16: min(16, 8b) experts of 1 B, so
    # 2·b·8 / 16 = b FLOP/B: b_ridge = the ridge point itself, 100
    assert moe_ridge_batch(100, 1, 256, 8, override=16) == pytest.approx(100)
    # a single token reads its own k experts: 2 FLOP per 2 B weight, 1 FLOP/B
    assert experts_touched(8, 2, 1) == 2


def test_an_moe_knee_is_explained_with_experts_touched():
    result = sweep("mixtral-8x7b", "h100-sxm", batches="1,64,1024", input_lens=128, tp=2)
    (summary,) = result.summaries
    assert (summary.experts, summary.experts_per_token) == (8, 2)
    # ridge point 989.4/3.35 = 295.3 FLOP/B, all 8 experts touched: 295.3·2·8/(2·2) ≈ 1,181
    assert summary.ridge_batch == pytest.approx(989.4 / 3.35 * 4, rel=1e-3)
    assert summary.ridge_experts_touched == pytest.approx(8)
    sentence = knee_sentence(summary, result.series(summary))
    assert "experts' weight matmuls" in sentence and "8·(1 − (1 − 2/8)^b)" in sentence


@pytest.mark.parametrize(
    "model, fields",
    [
        ("mixtral-8x7b", {"tp": 2}),
        ("deepseek-v3", {"tp": 8, "ep": 8, "weight_dtype": "fp8"}),
    ],
)
def test_moe_weight_matmuls_flip_near_the_moe_ridge_batch(model, fields):
    """The plan's expert products (tile padding, experts touched as derived symbols, every
    efficiency) turn compute-bound within 1.5× of the closed form's batch, E/k times past the
    dense ridge-point batch — for experts wide enough that their activations are a small part
    of their bytes (a row moves 2k + 2n bytes for 2·k·n FLOPs: k·n/(k + n) FLOP/B at most, here
    3,200 and 1,600 against a ridge point of 295)."""
    (s,) = sweep(model, "h100-sxm", batches="16:8192:x1.1", input_lens=128, output_lens=16,
                 **fields).summaries  # fmt: skip
    assert s.ridge_batch / 1.5 <= s.weights_knee_batch <= s.ridge_batch * 1.5
    assert s.ridge_batch > 3 * s.ridge_point * s.bytes_per_weight / 2


def test_thin_experts_turn_compute_bound_past_the_closed_form():
    # qwen3-30b-a3b's experts are [h = 2048, i_e = 768]: a row of one moves 2·(2048 + 768) B
    # of activations for 2·2048·768 FLOPs, at most 558 FLOP/B, so activations keep them
    # memory-bound longer than the closed form (which counts weights only) says
    (s,) = sweep("qwen3-30b-a3b", "h100-sxm", batches="16:16384:x1.1", input_lens=128,
                 output_lens=16).summaries  # fmt: skip
    assert s.weights_knee_batch > s.ridge_batch
