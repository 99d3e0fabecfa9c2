"""`--compare`: the same workload under each fusion level or attention kernel, side by side."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import perfest
from perfest.cli import cli
from perfest.compare import compare
from perfest.errors import SpecError


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_a_comparison_is_the_estimates_of_each_variant():
    c = compare("llama-3-8b", "h100-sxm", "fusion", batch=8, input_len=256)
    assert c.variants == ("none", "default", "full")
    for variant, est in zip(c.variants, c.estimates, strict=True):
        alone = perfest.estimate("llama-3-8b", "h100-sxm", batch=8, input_len=256, fusion=variant)
        assert est.prefill.time_s == alone.prefill.time_s
    mlp = next(g for g in c.groups if g.phase == "prefill" and g.group == "mlp")
    # the gated activation: 2 kernels per layer eager, 1 by default, folded away when full
    assert mlp.kernels == (32 * 5, 32 * 4, 32 * 2)
    assert mlp.intensity[0] < mlp.intensity[1] < mlp.intensity[2]
    norm = next(g for g in c.groups if g.phase == "decode" and g.group == "norm")
    assert norm.bytes[2] == 0 and norm.kernels[2] == 0  # into the products' prologues


def test_the_compared_field_is_the_axis_not_the_workload():
    c = compare("gpt2", "l4", "attention", attention="flash", batch=2)
    assert [e.workload.attention for e in c.estimates] == ["eager", "flash"]


def test_an_unknown_axis_is_one_error():
    with pytest.raises(SpecError, match="compare: unknown axis 'speed' .choose from fusion"):
        compare("gpt2", "l4", "speed")


def test_cli_table_and_json():
    r = run("estimate", "-m", "gpt2", "-g", "l4", "-b", "4", "--compare", "fusion")
    assert r.exit_code == 0, r.output
    assert "fusion: none → default → full" in r.output and "kernels" in r.output
    data = json.loads(run("estimate", "-m", "gpt2", "-g", "l4", "--compare", "attention",
                          "--json").output)  # fmt: skip
    assert data["variants"] == ["eager", "flash"] and set(data["estimates"]) == {"eager", "flash"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--compare", "speed"], "--compare: unknown axis 'speed'"),
        (["--compare", "fusion", "--csv"], "--compare, --csv: the comparison prints as a table"),
    ],
)
def test_cli_bad_input_is_one_line(args, message):
    r = run("estimate", "-m", "gpt2", "-g", "l4", *args)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and message in r.output, r.output


@pytest.mark.plot
def test_roofline_compare_draws_a_picture(tmp_path):
    path = tmp_path / "compare.svg"
    r = run("roofline", "-m", "gpt2", "-g", "l4", "-o", str(path), "--compare", "fusion")
    assert r.exit_code == 0, r.output
    assert "fusion none (hollow) → full (filled)" in path.read_text()
