"""`perfest explain`: the printed formulas, evaluated, are the ops' own FLOPs and bytes; the
closed forms agree with perfest's sums; the command's outputs and errors."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from perfest.cli import cli
from perfest.errors import SpecError
from perfest.explain import explain

TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(.))")


def evaluate(text: str, env: dict[str, float]) -> float:
    """Evaluate a printed formula ('2·b·s·h·(n_h + 2·n_kv)·d'): + and · with parentheses."""
    tokens = [m.groups() for m in TOKEN.finditer(text) if m.group(0).strip()]
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else (None, None, None)

    def factor():
        nonlocal pos
        number, name, sym = peek()
        pos += 1
        if number is not None:
            return float(number)
        if name is not None:
            return float(env[name])
        assert sym == "(", text
        value = total()
        assert peek()[2] == ")", text
        pos += 1
        return value

    def product():
        nonlocal pos
        value = factor()
        while peek()[2] == "·":
            pos += 1
            value *= factor()
        return value

    def total():
        nonlocal pos
        value = product()
        while peek()[2] == "+":
            pos += 1
            value += product()
        return value

    result = total()
    assert pos == len(tokens), text
    return result


@pytest.mark.parametrize(
    "model, workload",
    [
        ("gpt2", dict(batch=2, input_len=16, output_len=4, logits="all")),
        ("llama-3-8b", dict(batch=8, input_len=300, output_len=40, tp=2)),
        ("falcon-7b", dict(batch=1, input_len=7, output_len=9, attention="eager")),
        ("gemma-7b", dict(batch=3, input_len=33, output_len=2, weight_dtype="int4")),
        ("mixtral-8x7b", dict(batch=5, input_len=40, output_len=3, tp=2)),
        ("gpt-oss-20b", dict(batch=2, input_len=300, output_len=7)),
        ("deepseek-v2-lite", dict(batch=2, input_len=20, output_len=2)),
    ],
)
def test_printed_formulas_evaluate_to_the_ops_numbers(model, workload):
    check_printed_formulas(explain(model, "h100-sxm", **workload))


def check_printed_formulas(e) -> None:
    """Every printed formula of `e`, evaluated at its phase's point, is the op's number."""
    env = {name: value for name, value, _ in e.symbols}
    for phase in e.phases:
        point = {**env, **phase.point._asdict(), **{n: v for n, v, _ in phase.derived}}
        for op in phase.ops:
            assert evaluate(op.flops_formula, point) == pytest.approx(op.flops), op.name
            # the numbers as printed: a derived size (e_t = 5.46875) shows 6 digits
            assert evaluate(op.flops_numbers, {}) == pytest.approx(op.flops, rel=1e-5), op.name
            for x in op.operands:
                assert evaluate(x.elements_formula, point) == pytest.approx(x.elements)
            assert sum(x.bytes for x in op.operands) == pytest.approx(op.bytes)


def test_the_rows_are_the_estimates():
    # explain's times are the estimate's rows, op by op
    import perfest

    est = perfest.estimate("llama-2-7b", "a100-80gb-sxm", batch=4)
    e = explain("llama-2-7b", "a100-80gb-sxm", batch=4)
    for ours, theirs in zip(e.phases, est.phases, strict=True):
        assert [o.name for o in ours.ops] == [r.name for r in theirs.layers]
        assert [o.time_s for o in ours.ops] == [r.time_s for r in theirs.layers]
        assert ours.time_s == theirs.time_s


def test_closed_forms_hold_where_they_apply():
    # GPT-2 prefill with logits everywhere: the classic FFN (16·b·s·h²) and the GPT forward
    # (24·b·s·h²·L·(1 + s/(6h)) + 2·b·s·h·V) both equal perfest's matmul FLOPs
    e = explain("gpt2", "h100-sxm", batch=2, input_len=64, logits="all", phase="prefill")
    (phase,) = e.phases
    names = [c.name.split(",")[0] for c in phase.closed_forms]
    assert names == ["classic FFN", "GPT-style forward", "2 FLOPs per weight per token"]
    for c in phase.closed_forms:
        assert c.value == pytest.approx(c.perfest, rel=1e-12)
        if "(1 + " not in c.numbers:  # the printed numbers evaluate to the value
            assert evaluate(c.numbers.replace("²", "·768"), {}) == pytest.approx(c.value)
    # a gated model has no 16·b·s·h² FFN; the 2-FLOPs-per-weight rule still holds
    (decode,) = explain("llama-2-7b", "h100-sxm", phase="decode").phases
    assert [c.name.split(" ")[0] for c in decode.closed_forms] == ["2"]
    assert decode.closed_forms[0].value == pytest.approx(decode.closed_forms[0].perfest)


@pytest.mark.parametrize(
    "model, tp, ep",
    [("mixtral-8x7b", 2, 1), ("qwen3-30b-a3b", 2, 2), ("mistral-7b", 1, 1), ("gpt-oss-20b", 1, 1)],
)
def test_two_flops_per_weight_holds_for_experts_and_windows(model, tp, ep):
    # routed experts count k/E of their weights per token (the expected rows of the touched
    # experts sum to b·s·k/ep at every batch); a windowed layer's tokens see min(t, w) keys
    for phase in explain(model, "h100-sxm", batch=3, input_len=5000, tp=tp, ep=ep).phases:
        (form,) = [c for c in phase.closed_forms if c.name.startswith("2 FLOPs")]
        assert form.value == pytest.approx(form.perfest, rel=1e-12)


def test_one_op_and_its_sentence():
    (phase,) = explain("llama-2-7b", "a100-80gb-sxm", batch=8, phase="decode", op="mlp_down").phases
    (op,) = phase.ops
    # [b·s, i] @ [i, h] at b = 8, s = 1: 2·8·11008·4096 = 721,420,288 FLOPs; reads the
    # 11008·4096·2 B = 90.2 MB weight: memory-bound at ~8 FLOP/B against a ridge of 153
    assert op.flops == 721_420_288 and op.flops_formula == "2·b·s·i·h"
    assert op.bound == "memory" and "below the ridge point 153" in op.why
    assert "mlp_down.weight" in op.why


def test_unknown_names_list_the_closest():
    with pytest.raises(SpecError, match="op: no op 'mlp_dwn' in llama-2-7b; closest: mlp_down"):
        explain("llama-2-7b", "h100-sxm", op="mlp_dwn")
    with pytest.raises(SpecError, match="phase: 'enc' is not one of prefill, decode, encode"):
        explain("llama-2-7b", "h100-sxm", phase="enc")


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_cli_text_markdown_and_json():
    base = ["explain", "-m", "gpt2", "-g", "l4", "-b", "2", "-i", "8", "--phase", "decode"]
    text = run(*base, "--op", "qkv_proj")
    assert text.exit_code == 0, text.output
    assert "FLOPs = 2·b·s·h·(n_h + 2·n_kv)·d + b·s·(n_h + 2·n_kv)·d" in text.output
    md = run(*base, "--markdown")
    assert md.exit_code == 0 and md.output.startswith("# How gpt2 runs on l4")
    assert "### mlp_up (mlp, ×12)" in md.output and "| symbol | value | meaning |" in md.output
    data = json.loads(run(*base, "--json").output)
    assert data["phases"][0]["phase"] == "decode" and data["phases"][0]["ops"][0]["name"] == "embed"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--op", "nope"], "op: no op 'nope'"),
        (["--phase", "encode"], "gpt2 is a decoder, which has no encode phase"),
        (["--phase", "train", "--weight-dtype", "int4"], "phase: train runs every tensor"),
        (["--phase", "train", "--op", "mlp_up.dgrd"], "closest: mlp_up.dgrad"),
        (["--markdown", "--json"], "choose one output"),
    ],
)
def test_cli_bad_input_is_one_line(args, message):
    r = run("explain", "-m", "gpt2", "-g", "l4", *args)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and message in r.output, r.output


@pytest.mark.parametrize("attention, products", [("flash", 7), ("eager", 6)])
def test_a_training_micro_batch_is_six_flops_per_weight_plus_attention(attention, products):
    # GPT-2, b = 2, s = t = 64, one device: N = 12·(4·768² + 2·768·3072) matmul weights of the
    # blocks + the tied head's 50257·768 = 84,934,656 + 38,597,376 = 123,532,032;
    # 6·2·64·123,532,032 = 94,872,600,576, and the attention core's products, 2 forward and
    # 5 (flash: the scores recomputed) or 4 (eager) backward, each 2·2·12·64·64·64·12
    # = 150,994,944: 7 → 1,056,964,608; 6 → 905,969,664
    (phase,) = explain("gpt2", "h100-sxm", batch=2, input_len=64, phase="train",
                       attention=attention).phases  # fmt: skip
    (rule,) = phase.closed_forms
    assert rule.value == 94_872_600_576 + products * 150_994_944
    assert rule.perfest == pytest.approx(rule.value, rel=1e-12)
    names = [o.name for o in phase.ops]
    assert names.index("mlp_up") < names.index("mlp_up.dgrad")  # forward, then backward
    assert phase.layers[0].count == 12


def test_a_training_micro_batch_is_what_perfest_train_sums():
    import perfest

    (phase,) = explain("llama-3-8b", "h100-sxm", batch=2, input_len=512, phase="train").phases
    step = perfest.estimate_training("llama-3-8b", "h100-sxm", gpus=1, global_batch=2,
                                     micro_batch=2, seq_len=512)  # fmt: skip
    b = step.breakdown
    assert phase.time_s == pytest.approx(b.forward_s + b.backward_s, rel=1e-12)


def test_training_formulas_evaluate_to_the_ops_numbers():
    e = explain("mistral-7b", "h100-sxm", batch=1, input_len=128, phase="train", tp=2)
    (phase,) = e.phases
    env = {**{n: v for n, v, _ in e.symbols}, **phase.point._asdict()}
    env |= {n: v for n, v, _ in phase.derived}
    for op in phase.ops:
        assert evaluate(op.flops_formula, env) == pytest.approx(op.flops), op.name
        for x in op.operands:
            assert evaluate(x.elements_formula, env) == pytest.approx(x.elements), op.name


@pytest.mark.parametrize(
    "model, tp, ep, s",
    [("mixtral-8x7b", 1, 1, 256), ("qwen3-30b-a3b", 1, 4, 128), ("mistral-7b", 2, 1, 5000),
     ("gpt-oss-20b", 1, 2, 300)],
)  # fmt: skip
def test_the_training_rule_holds_for_experts_and_windows(model, tp, ep, s):
    # a routed expert's weights count k/E_l (its device gets b·s·k assignments from the ep
    # ranks); a windowed layer's queries see min(t, w) keys
    (phase,) = explain(model, "h100-sxm", batch=1, input_len=s, phase="train", tp=tp,
                       ep=ep).phases  # fmt: skip
    (rule,) = phase.closed_forms
    assert rule.value == pytest.approx(rule.perfest, rel=1e-12)


@pytest.mark.parametrize("model", ["llama-3-8b", "mixtral-8x7b", "gpt2"])
def test_closed_forms_hold_under_full_fusion(model):
    # fused siblings (mlp_gate + mlp_up) read both weights: N counts each once
    for phase in explain(model, "h100-sxm", batch=2, input_len=64, fusion="full").phases:
        assert phase.closed_forms
        for c in phase.closed_forms:
            assert c.value == pytest.approx(c.perfest, rel=1e-12), (phase.phase, c.name)
