"""Every case of the hardening issue (#8), reproduced: bad input gets one line and exit code 2
(or the documented warning), never a traceback, a hang or silent nonsense.

The CLI cases run through click's CliRunner (the FIFO through a subprocess with a timeout);
library cases call perfest directly. A hypothesis property test at the end feeds random bytes
and random YAML/JSON documents to the model and hardware loaders.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import perfest
from perfest.cli import cli
from perfest.errors import ArgumentTypeError, PerfestError, SpecError, UnsupportedError
from perfest.results import NoteKind

TINY = dict(vocab_size=64, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32)
LLAMA_CONFIG = {
    "model_type": "llama",
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 4096,
}


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def one_line_error(result, *fragments: str) -> str:
    """The CLI gave exactly one `error:` line on stderr and exit code 2, and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def write(path: Path, text: str | bytes) -> str:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------------------------
# Tracebacks and a hang.


@pytest.mark.parametrize("name", ["bad.yaml", "config.json"])
def test_non_utf8_bytes_are_one_line(tmp_path, name):
    path = write(tmp_path / name, b"vocab_size: 10\nname: \xff\xfe caf\xe9\n")
    one_line_error(run("estimate", "-m", path, "-g", "h100"), "not UTF-8 text", "0xff")
    with pytest.raises(PerfestError, match="not UTF-8 text"):
        perfest.load_model(path)


def test_symlink_loop_is_one_line(tmp_path):
    loop = tmp_path / "loop.yaml"
    os.symlink(loop, loop)
    one_line_error(run("estimate", "-m", str(loop), "-g", "h100"), "cannot read")
    with pytest.raises(PerfestError):
        perfest.load_hardware(loop)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "model.yaml"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "perfest.cli", "estimate", "-m", str(fifo), "-g", "h100"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {fifo}: not a regular file (a FIFO, device or socket)"
    ]


def test_oversized_file_is_refused(tmp_path):
    path = write(tmp_path / "big.yaml", "# " + "x" * 2_000_000 + "\n")
    one_line_error(run("estimate", "-m", path, "-g", "h100"), "a spec file is at most")


HUGE = "9" * 400


@pytest.mark.parametrize(
    "args, flag",
    [
        (["estimate", "-b", HUGE], "--batch"),
        (["estimate", "-i", HUGE], "--input-len"),
        (["estimate", "--output-len", HUGE], "--output-len"),
        (["sweep", "-b", HUGE], "--batch"),
        (["sweep", "-b", f"1:{HUGE}"], "--batch"),
        (["sweep", "-i", f"1:{HUGE}:x2"], "--input-len"),
        (["sweep", "-b", "9" * 5000], "--batch"),  # past Python's int-parsing digit limit
    ],
)
def test_huge_sizes_are_bounded(args, flag):
    line = one_line_error(run(*args[:1], "-m", "gpt2", "-g", "h100", *args[1:]), flag)
    assert "digit" in line and "physically meaningful" in line


@pytest.mark.parametrize("name", ["huge.yaml", "config.json"])
def test_500_digit_integer_in_a_config(tmp_path, name):
    if name.endswith(".json"):
        text = json.dumps({**LLAMA_CONFIG, "hidden_size": 10**500})
    else:
        text = yaml.safe_dump({**TINY, "name": "huge"}).replace("16\n", "1" + "0" * 500 + "\n", 1)
    line = one_line_error(run("estimate", "-m", write(tmp_path / name, text), "-g", "h100"))
    assert "hidden_size: must be at most" in line and "501-digit number" in line


@pytest.mark.parametrize("command", [["calibrate", "--quick"], ["validate", "-m", "gpt2"]])
def test_perfest_home_that_is_a_file_fails_before_measuring(tmp_path, monkeypatch, command):
    pytest.importorskip("torch")
    import perfest.validate.calibrate as calibrate

    def never(*args, **kwargs):
        raise AssertionError("measured before checking where the result goes")

    monkeypatch.setattr(calibrate, "calibrate", never)
    home = write(tmp_path / "home", "a file, not a folder")
    line = one_line_error(run(*command, env={"PERFEST_HOME": home}), "PERFEST_HOME: ")
    assert "is a file, not a folder" in line


def test_calibrate_output_that_cannot_be_written_fails_first(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import perfest.validate.calibrate as calibrate

    monkeypatch.setattr(calibrate, "calibrate", lambda *a, **k: pytest.fail("measured first"))
    one_line_error(run("calibrate", "-o", str(tmp_path)), "'--output' / '-o'", "is a directory")
    inside_a_file = tmp_path / write(tmp_path / "f", "x") / "spec.yaml"
    one_line_error(run("calibrate", "-o", str(inside_a_file)), "--output: ", "is a file, not")


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: perfest.estimate(None, 3), "model"),
        (lambda: perfest.estimate(123, "h100"), "model"),
        (lambda: perfest.estimate("gpt2", 3), "hardware"),
        (lambda: perfest.load_hardware(42), "hardware"),
        (lambda: perfest.load_model(3.5), "model"),
        (lambda: perfest.sweep(None, None), "model"),
        (lambda: perfest.sweep("gpt2", None), "hardware"),
        (lambda: perfest.sweep("gpt2", "h100", batches=2.5), "batches"),
        (lambda: perfest.estimate("gpt2", "h100", workload={"batch": 2}), "workload"),
    ],
)
def test_library_arguments_of_the_wrong_type_name_the_argument(call, argument):
    with pytest.raises(TypeError) as info:
        call()
    assert isinstance(info.value, ArgumentTypeError) and isinstance(info.value, PerfestError)
    message = str(info.value)
    assert message.startswith(f"{argument}: expected ") and "\n" not in message


def test_paths_and_dicts_are_accepted_everywhere():
    root = Path(__file__).resolve().parent.parent
    model, hw = root / "models" / "gpt2.yaml", root / "hardware" / "h100-sxm.yaml"
    assert perfest.load_model(model).name == "gpt2"
    assert perfest.load_hardware(hw).name == "h100-sxm"
    by_path = perfest.estimate(model, hw, batch=2)
    assert by_path.generation.tpot_s == perfest.estimate("gpt2", "h100", batch=2).generation.tpot_s
    assert perfest.sweep(model, [hw, "l4"], batches=[1, 2]).hardware == ("h100-sxm", "l4")
    spec = perfest.load_hardware(hw).model_dump()
    est = perfest.estimate(TINY, spec)
    assert est.model == "custom" and est.hardware == "h100-sxm"
    with pytest.raises(SpecError, match=r"^model \(dict\): hidden_size: must be a whole number"):
        perfest.load_model({**TINY, "hidden_size": "16"})


# ---------------------------------------------------------------------------------------------
# Nonsense accepted silently.


@pytest.mark.parametrize("layers", ["-1", "0"])
def test_validate_layers_must_be_positive(layers):
    line = one_line_error(run("validate", "-m", "gpt2", "-g", "h100", "--layers", layers))
    assert "'--layers'" in line and "x>=1" in line


def test_validate_layers_in_the_library():
    pytest.importorskip("torch")
    from perfest.validate.run import validate

    for bad in (0, -1, True, 2.0):
        with pytest.raises(SpecError, match="^layers: "):
            validate("gpt2", "h100", layers=bad)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("hidden_size", True, "hidden_size: must be a whole number (got true)"),
        ("hidden_size", 1e29, "hidden_size: must be a whole number (got 1e+29)"),
        ("hidden_size", 2**40, "hidden_size: must be at most 1,048,576"),
        ("num_layers", 12.0, "num_layers: must be a whole number (got 12.0)"),
        ("qkv_bias", "yes", "qkv_bias: must be true or false"),
    ],
)
def test_model_fields_are_strict_and_bounded(tmp_path, field, value, message):
    path = write(tmp_path / "m.yaml", yaml.safe_dump({**TINY, field: value}))
    assert message in one_line_error(run("estimate", "-m", path, "-g", "h100"))


H100 = {"fp32_tflops": 67, "bf16_tflops": 989, "memory_gb": 80, "memory_bandwidth_gb_s": 3350}


@pytest.mark.parametrize(
    "text, message",
    [
        ("bf16_tflops: .inf", "bf16_tflops: must be a finite number (got inf)"),
        ("bf16_tflops: .nan", "bf16_tflops: must be a finite number (got nan)"),
        ("bf16_tflops: 1e300", "bf16_tflops: must be at most 100,000 (got 1e+300"),
        ("bf16_tflops: 1.0e+300", "bf16_tflops: must be at most 100,000 (got 1e+300"),
        ("memory_gb: true", "memory_gb: must be a finite number (got true)"),
        ("tile_m_min: 256\ntile_m_max: 16", "tile_m_min: 256 exceeds tile_m_max 16"),
        ("tile_n_min: 512", "tile_n_min: 512 exceeds tile_n 256"),
        ("compute_efficiency: 1.5", "compute_efficiency: must be at most 1"),
        ("kernel_launch_us: -1", "kernel_launch_us: must be at least 0"),
    ],
)
def test_hardware_numbers_are_finite_bounded_and_consistent(tmp_path, text, message):
    body = yaml.safe_dump({"name": "x", **H100}) + text + "\n"
    body = body.replace("bf16_tflops: 989\n", "") if "bf16_tflops" in text else body
    body = body.replace("memory_gb: 80\n", "") if "memory_gb" in text else body
    path = write(tmp_path / "hw.yaml", body)
    assert message in one_line_error(run("estimate", "-m", "gpt2", "-g", path))


def test_nan_efficiency_override_is_not_a_number():
    one_line_error(
        run("estimate", "-m", "gpt2", "-g", "h100", "--compute-efficiency", "nan"),
        "--compute-efficiency: must be a finite number",
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dtype", "fp8", "--weight-dtype", "bf16"], "--weight-dtype: bf16 weights are wider"),
        (["--kv-dtype", "tf32"], "--kv-dtype: tf32 is a compute mode, not a storage dtype"),
        (["--weight-dtype", "tf32"], "--weight-dtype: tf32 is a compute mode"),
        (["--dtype", "int8", "--weight-dtype", "bf16"], "--weight-dtype: bf16 weights are wider"),
        (["--dtype", "int8", "--weight-dtype", "fp8"], "--weight-dtype: fp8 weights with int8"),
        (["--dtype", "fp16", "--weight-dtype", "bf16"], "use fp16 weights"),
        (["--kv-dtype", "fp32"], "--kv-dtype: a fp32 cache is wider than the bf16 compute"),
        (["--dtype", "int4"], "--dtype: int4 is a weight format"),
        (["--kv-dtype", "int4"], "--kv-dtype: int4 KV caches are not modelled"),
    ],
)
def test_illegal_dtype_combinations_are_refused_everywhere(args, message):
    one_line_error(run("estimate", "-m", "gpt2", "-g", "h100", *args), message)
    one_line_error(run("sweep", "-m", "gpt2", "-g", "h100", "-b", "1,2", *args), message)
    pairs = zip(args[::2], args[1::2], strict=True)
    library = {a.lstrip("-").replace("-", "_"): b for a, b in pairs}
    with pytest.raises(SpecError, match=message.removeprefix("--").replace("-", "_", 1)):
        perfest.estimate("gpt2", "h100", **library)


@pytest.mark.parametrize(
    "workload",
    [
        {"dtype": "int8", "weight_dtype": "int4"},  # W4A8
        {"dtype": "fp8", "kv_dtype": "bf16"},  # W8A8 fp8, a 16-bit cache
        {"weight_dtype": "int4", "kv_dtype": "fp8"},
        {"dtype": "tf32"},  # fp32 storage, TF32 math
        {"dtype": "fp32", "weight_dtype": "bf16"},
    ],
)
def test_meaningful_dtype_combinations_run(workload):
    est = perfest.estimate("llama-2-7b", "h100", **workload)
    assert est.generation.tpot_s > 0


def test_json_and_csv_are_exclusive():
    for command in (["estimate"], ["sweep", "-b", "1,2"]):
        line = one_line_error(
            run(command[0], "-m", "gpt2", "-g", "h100", *command[1:], "--json", "--csv")
        )
        assert "--json, --csv: choose one" in line


@pytest.mark.parametrize(
    "model, tp, says",
    [
        ("llama-2-7b", "16", "tp: 16 devices span 2 nodes of 8 h100-sxm"),
        ("llama-2-7b", "32", "tp: 32 devices span 4 nodes of 8 h100-sxm"),
        ("falcon-7b", "71", "tp: 71 devices span 9 nodes of 8 h100-sxm"),
    ],
)
def test_tensor_parallel_past_a_node_runs_with_a_warning(model, tp, says):
    r = run("estimate", "-m", model, "-g", "h100", "--tp", tp)
    assert r.exit_code == 0, r.output
    assert f"warning: {says}" in r.stderr and "network between nodes" in r.stderr
    est = perfest.estimate(model, "h100", tp=int(tp))
    assert [note.kind for note in est.warnings] == [NoteKind.LAYOUT]
    # the all-reduces cross the network: slower than on one node of that many devices
    one_node = perfest.load_hardware("h100").model_copy(update={"devices_per_node": None})
    inside = perfest.estimate(model, one_node, tp=int(tp))
    assert inside.warnings == () and inside.decode.comm_time_s < est.decode.comm_time_s


def test_kv_heads_split_unevenly_warns():
    model = {**TINY, "hidden_size": 48, "num_heads": 6, "num_kv_heads": 2, "name": "odd"}
    est = perfest.estimate(model, "h100", tp=3)
    assert [n.text for n in est.warnings] == [
        "tp: 3 devices and odd's 2 kv heads do not divide each other; each device is charged "
        "1 kv heads"
    ]


def hf_config(tmp_path, name="config.json", **extra) -> str:
    return write(tmp_path / name, json.dumps({**LLAMA_CONFIG, **extra}))


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"num_local_experts": 8, "num_experts_per_tok": 2}, "num_local_experts"),
        ({"num_experts": 60}, "num_experts"),
        ({"n_routed_experts": 64}, "n_routed_experts"),
        ({"sliding_window": 1024}, "sliding_window"),
    ],
)
def test_unmodelled_architecture_fields_are_refused(tmp_path, extra, field):
    line = one_line_error(run("estimate", "-m", hf_config(tmp_path, **extra), "-g", "h100"))
    assert f": {field}: " in line and "not modelled" in line


def test_a_window_that_caps_nothing_is_no_window(tmp_path):
    for extra in ({"sliding_window": 4096}, {"sliding_window": 1024, "use_sliding_window": False}):
        assert perfest.load_model(hf_config(tmp_path, **extra)).L == 32


@pytest.mark.parametrize(
    "quantization, dtype",
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "int4"),
        ({"quant_method": "gptq", "bits": 4}, "int4"),
        ({"quant_method": "gptq", "bits": 8}, "int8"),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "int4"),
        ({"quant_method": "fp8", "activation_scheme": "dynamic"}, "fp8"),
    ],
)
def test_quantization_config_sets_the_weight_dtype(tmp_path, quantization, dtype):
    path = hf_config(tmp_path, quantization_config=quantization)
    model = perfest.load_model(path)
    assert model.weight_dtype == dtype
    est = perfest.estimate(path, "h100")
    assert est.workload.weight_dtype == dtype
    plain = perfest.estimate(hf_config(tmp_path, name="plain.json"), "h100")
    assert est.memory.weights_bytes < plain.memory.weights_bytes
    # the user's own choice wins
    assert perfest.estimate(path, "h100", weight_dtype="bf16").workload.weight_dtype == "bf16"


def test_unsupported_quantization_is_refused(tmp_path):
    path = hf_config(tmp_path, quantization_config={"quant_method": "gptq", "bits": 3})
    with pytest.raises(UnsupportedError, match="quantization_config: gptq quantization with 3-bit"):
        perfest.load_model(path)


def test_model_yaml_may_store_quantized_weights(tmp_path):
    path = write(tmp_path / "q.yaml", yaml.safe_dump({**TINY, "weight_dtype": "int8"}))
    assert perfest.estimate(path, "h100").workload.weight_dtype == "int8"
    with pytest.raises(SpecError, match=r"^weight_dtype: q stores int8 weights .*use fp8 weights"):
        perfest.estimate(path, "h100", dtype="fp8")


@pytest.mark.parametrize(
    "args", [["-m", "llama-3-70b", "-g", "h100"], ["-m", "gpt2", "-g", "h100", "-b", "1000000"]]
)
def test_roofline_has_the_memory_policy_of_estimate(tmp_path, args):
    pytest.importorskip("matplotlib")
    estimate = run("estimate", *args)
    roofline = run("roofline", *args, "-o", str(tmp_path / "r.png"))
    assert estimate.exit_code == roofline.exit_code == 2
    error = [line for line in roofline.stderr.splitlines() if line.startswith("error:")]
    assert error == [line for line in estimate.stderr.splitlines() if line.startswith("error:")]
    assert error[0].startswith("error: memory: needs")


def test_sweep_where_nothing_fits_is_an_error():
    r = run("sweep", "-m", "llama-3-70b", "-g", "h100", "-b", "1,2")
    assert r.exit_code == 2 and "no swept point fits" in r.stderr
    assert run("sweep", "-m", "llama-2-7b", "-g", "h100", "-b", "1,1024").exit_code == 0


def test_bare_perfest_prints_the_help():
    r = run()
    assert r.exit_code == 0
    assert r.stdout.startswith("Usage: ") and "Commands:" in r.stdout and "estimate" in r.stdout


def test_library_sweep_names_the_keyword_and_the_cli_the_flag():
    with pytest.raises(SpecError, match="^batches: 0 must be"):
        perfest.sweep("gpt2", "h100", batches=[0])
    with pytest.raises(SpecError, match="^input_lens: "):
        perfest.sweep("gpt2", "h100", input_lens="0:4")
    one_line_error(run("sweep", "-m", "gpt2", "-g", "h100", "-b", "0"), "--batch: 0 must be")
    one_line_error(
        run("sweep", "-m", "gpt2", "-g", "h100", "-b", "1:1000", "-i", "1:200"),
        "--batch, --input-len, --gpu: 1000 × 200 × 1 = 200,000 points",
    )


# ---------------------------------------------------------------------------------------------
# Calibration that cannot lie.


def test_impossible_rates_are_refused():
    from perfest.validate.robust import fraction, plausible

    with pytest.raises(UnsupportedError, match="above any plausible cpu"):
        plausible("copy bandwidth", 14_340_000_000e9, "cpu", "bandwidth")  # the YAML
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(UnsupportedError, match="impossible|plausible"):
            plausible("copy bandwidth", bad, "cpu", "bandwidth")
    for bad in (6.17e-10 * 0, 1.2, math.nan):
        with pytest.raises(UnsupportedError, match=r"outside \(0, 1\]"):
            fraction("gemm_memory_efficiency", bad)
    assert plausible("copy", 25e9, "cpu", "bandwidth") == 25e9


def test_gemv_line_through_noise_never_claims_infinite_bandwidth():
    from perfest.validate.calibrate import STREAM_SHAPES, gemv_line

    (k1, n1), (k2, n2) = STREAM_SHAPES
    # a clean line: 20 GB/s and 50 ns per row → both shapes' times, then back
    t1 = n1 * (4 * k1 / 20e9 + 50e-9)
    t2 = n2 * (4 * k2 / 20e9 + 50e-9)
    rate, row = gemv_line(t1, t2)
    assert rate == pytest.approx(20e9) and row == pytest.approx(50e-9)
    # noise made the long rows cheaper per row than the short ones (a tenth of the time): no
    # line, but the long-row shape's own rate and no per-row term
    rate, row = gemv_line(t1, t2 / 10)
    assert rate == pytest.approx(4 * k2 * n2 / (t2 / 10)) and row == 0.0


def test_stable_reports_the_spread_and_stops_when_samples_agree():
    from perfest.validate.robust import stable

    samples = iter([10.0, 10.2, 9.9, 10.05, 10.1, 50.0])
    quiet = stable(lambda: next(samples))
    assert (quiet.value, quiet.low, quiet.high, quiet.rounds) == (10.05, 9.9, 10.2, 5)
    noisy = iter([10.0, 20.0, 15.0, 12.0, 30.0, 11.0, 14.0, 16.0, 13.0])
    reading = stable(lambda: next(noisy))
    assert reading.rounds == 9 and not reading.stable
    assert (reading.low, reading.value, reading.high) == (10.0, 14.0, 30.0)
    assert reading.record("copy_gb_s")["copy_gb_s_rounds"] == 9


def test_validate_warns_above_the_spec_peak():
    from perfest.validate.run import PhaseCheck, above_peak

    hw = perfest.load_hardware("h100")
    phase = PhaseCheck("decode", "eager", "none", 1.0, 1.0, 0.0, 1e12, 1e12, 1e12, 1.17 * 3.35e12)
    (warning,) = above_peak((phase,), hw, "bf16")
    assert warning.startswith("decode (eager) measured 117% of h100-sxm's peak bandwidth")
    below = PhaseCheck("decode", "eager", "none", 1.0, 1.0, 0.0, 1e12, 1e12, 1e12, 0.9 * 3.35e12)
    assert above_peak((below,), hw, "bf16") == ()


def test_validate_help_shows_what_it_runs():
    text = " ".join(run("validate", "--help").stdout.split())
    assert "[fp32|tf32|bf16|fp16]" in text and "fp32 on cpu, bf16 on cuda" in text
    for absent in ("--tp", "--weight-dtype", "--kv-dtype", "fp8", "int4"):
        assert absent not in text, absent


@pytest.mark.torch
def test_first_validate_says_it_calibrates_before_it_starts(tmp_path, monkeypatch, gated):
    import perfest.validate.calibrate as calibrate

    def quick(device, quick=False, progress=None):  # the real thing takes ~25 s
        hw = perfest.load_hardware("h100").model_copy(update={"name": "calibrated-cpu"})
        return hw, {}

    monkeypatch.setattr(calibrate, "calibrate", quick)
    model = write(tmp_path / "tiny.yaml", yaml.safe_dump(gated.model_dump(mode="json")))
    r = run(
        "validate", "-m", model, "-i", "8", "--output-len", "2", "--repeats", "1", "--json",
        env={"PERFEST_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    first = r.stderr.splitlines()[0]
    assert first.startswith("note: no calibrated spec for cpu yet: measuring it first (about 25 s")
    assert (tmp_path / "home" / "calibrated-cpu.yaml").is_file()


@pytest.mark.torch
def test_compile_raises_the_recompile_limit():
    import torch

    from perfest.validate.run import _compile

    _compile(torch.nn.Linear(2, 2))
    config = torch._dynamo.config
    limit = getattr(config, "recompile_limit", getattr(config, "cache_size_limit", 0))
    assert limit >= 256


# ---------------------------------------------------------------------------------------------
# Model-output artifacts and friction.


def test_positions_warning_counts_the_positions_a_request_needs():
    # -i 4096 --output-len 1: the prompt's 4096 positions, the one output token is never fed
    # back: 4096 + 1 − 1 = 4096 ≤ 4096, no warning; --output-len 2 needs 4097
    ok = run("estimate", "-m", "llama-2-7b", "-g", "h100", "-i", "4096", "--output-len", "1")
    assert ok.exit_code == 0 and "warning" not in ok.stderr
    over = run("estimate", "-m", "llama-2-7b", "-g", "h100", "-i", "4096", "--output-len", "2")
    assert "warning: input_len + output_len - 1 = 4097 positions exceed" in over.stderr


def test_csv_columns_have_one_number_format():
    import csv
    import io

    rows = list(
        csv.DictReader(io.StringIO(run("estimate", "-m", "gpt2", "-g", "h100", "--csv").stdout))
    )
    for column in ("flops", "matmul_flops", "bytes_read", "bytes", "time_s"):
        assert all("." in row[column] or "e" in row[column] for row in rows), column
    assert all(row["count"].isdigit() for row in rows)


def test_short_flags_mean_one_thing():
    """-o is an output file wherever it exists; no short flag means two things."""
    from perfest.cli import cli as group

    ctx = group.make_context("perfest", ["list", "models"])
    meanings: dict[str, set[str]] = {}
    for name in group.list_commands(ctx):
        for param in group.get_command(ctx, name).params:
            for opt in param.opts + param.secondary_opts:
                if len(opt) == 2 and opt.startswith("-"):
                    meanings.setdefault(opt, set()).add(param.opts[0] if param.opts else param.name)
    clashes = {flag: names for flag, names in meanings.items() if len(names) > 1}
    assert clashes == {}
    assert meanings["-o"] == {"--output"}


def test_hf_models_are_named_by_name_or_path_or_folder(tmp_path):
    folder = tmp_path / "Llama-2-7b-hf"
    folder.mkdir()
    write(folder / "config.json", json.dumps(LLAMA_CONFIG))
    assert perfest.load_model(folder / "config.json").name == "Llama-2-7b-hf"
    assert perfest.load_model(folder).name == "Llama-2-7b-hf"  # the folder itself
    r = run("estimate", "-m", str(folder), "-g", "h100")
    assert r.exit_code == 0 and "Llama-2-7b-hf on h100-sxm" in r.stdout
    named = hf_config(tmp_path, _name_or_path="meta-llama/Llama-2-7b-hf")
    assert perfest.load_model(named).name == "meta-llama/Llama-2-7b-hf"
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(
        run("estimate", "-m", str(empty), "-g", "h100"), "a folder without a config.json"
    )


def test_out_of_memory_names_the_smallest_tp_that_fits():
    line = one_line_error(run("estimate", "-m", "llama-3-70b", "-g", "h100"))
    assert "largest batch that fits: 0; fits with tp 2" in line
    nothing = perfest.estimate("gpt2", "h100", batch=10**7)
    assert "no tp up to 12 fits" in nothing.warnings[0].text


def test_show_model_gives_weight_bytes_per_dtype_and_kv_bytes_per_token():
    text = run("show", "model", "llama-2-7b").stdout
    # 6,738,415,616 parameters × 2 B = 13.48 GB; KV: 2·32 layers·4096·2 B = 524,288 B/token
    assert "bf16 13.48 GB" in text and "fp32 26.95 GB" in text and "bf16 524.3 KB" in text
    data = json.loads(run("show", "model", "llama-2-7b", "--json").stdout)
    assert data["weight_bytes"]["bf16"] == 2 * 6_738_415_616
    assert data["kv_cache_bytes_per_token"] == {
        "fp32": 1_048_576, "bf16": 524_288, "fp16": 524_288, "fp8": 262_144, "int8": 262_144
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The loaders against anything: random bytes and random documents give one-line PerfestErrors.

LOADERS = (perfest.load_model, perfest.load_hardware)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.integers(min_value=-(10**600), max_value=10**600)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
FIELD_NAMES = (
    *perfest.ModelConfig.model_fields, *perfest.HardwareSpec.model_fields, "model_type",
    "n_embd", "num_hidden_layers", "num_attention_heads", "quantization_config",
    "sliding_window", "num_local_experts", "hidden_act", "partial_rotary_factor", "junk",
)  # fmt: skip
FIELDS = st.sampled_from(FIELD_NAMES)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(FIELDS | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=25,
)
VALID = {**TINY, "name": "t"}
#: Text built from YAML's and JSON's syntax, so the parsers see more than noise.
YAML_PIECES = (*FIELD_NAMES, ": ", "\n", "- ", "[", "]", "{", "}", "&a ", "*a", "~", ".nan")
YAML_PIECES += ("!!python/object ", "!!binary ", "1e400", "9" * 5000, "2001-13-45", "? ")
YAMLISH = st.text(alphabet=":-[]{}&*!|>'\"%@#,?\n\t .+_019eE\\xé\x00\x85", max_size=200) | (
    st.lists(st.sampled_from(YAML_PIECES), max_size=30).map("".join)
)


def _loads_or_says_why(path: Path) -> None:
    for load in LOADERS:
        try:
            load(path)
        except PerfestError as exc:
            message = str(exc)
            assert message and "\n" not in message, repr(message)


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    max_examples=int(os.environ.get("FUZZ", 120)),
)
@given(
    data=st.binary(max_size=400) | YAMLISH.map(lambda text: text.encode()),
    suffix=st.sampled_from([".yaml", ".json"]),
)
def test_random_bytes_give_one_line_errors(tmp_path, data, suffix):
    path = tmp_path / f"spec{suffix}"
    path.write_bytes(data)
    _loads_or_says_why(path)


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    max_examples=int(os.environ.get("FUZZ", 200)),
)
@given(
    doc=st.one_of(
        DOCUMENTS, st.dictionaries(FIELDS, SCALARS, max_size=8).map(lambda d: {**VALID, **d})
    ),
    json_file=st.booleans(),
)
def test_random_documents_give_one_line_errors(tmp_path, doc, json_file):
    if json_file:
        if isinstance(doc, dict):
            doc = {"model_type": "llama", **LLAMA_CONFIG, **doc} if "model_type" not in doc else doc
        text = json.dumps(doc)
    else:
        text = yaml.safe_dump(doc, allow_unicode=True)
    path = tmp_path / ("config.json" if json_file else "spec.yaml")
    path.write_text(text, encoding="utf-8")
    _loads_or_says_why(path)
