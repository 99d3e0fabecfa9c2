"""FLOP counts against closed forms derived by hand, not from perfest's own per-op code."""

from __future__ import annotations

import pytest

import perfest
from perfest.graph import build_graph
from perfest.layers import Ctx
from perfest.ops import Group
from perfest.specs import Workload


def matmul_flops(model, group, **point):
    """Matrix-product FLOPs of `group`'s ops in one pass at `point`, from the op definitions."""
    graph = build_graph(Ctx.of(model, Workload()))
    return sum(
        op.gemm.flops.value(point) * seg.count
        for seg, op in graph.ops()
        if op.gemm is not None and op.group is group
    )


@pytest.mark.parametrize("b, s", [(1, 1), (2, 7), (4, 128)])
def test_classic_ffn_is_16_b_s_h2(classic, b, s):
    # up [b·s, h] @ [h, 4h] and down [b·s, 4h] @ [4h, h]: 2·b·s·h·4h twice = 16·b·s·h², per layer
    h, L = classic.h, classic.L
    assert matmul_flops(classic, Group.MLP, b=b, s=s, t=s, s_logits=s) == 16 * b * s * h * h * L


@pytest.mark.parametrize("name", ["gpt2", "gpt2-xl", "gpt3-175b"])
@pytest.mark.parametrize("b, s", [(1, 128), (8, 1024)])
def test_gpt_forward_closed_form(name, b, s):
    # Per layer: QKV 6bsh², out 2bsh², MLP 16bsh² → 24bsh²; scores and ·V 2·2bs²h = 24bsh²·s/(6h).
    # LM head over all positions: 2bshV. (Kaplan et al. 2020; Narayanan et al. 2021, eq. 2.)
    m = perfest.load_model(name)
    h, L, V = m.h, m.L, m.V
    expected = 24 * b * s * h * h * L * (1 + s / (6 * h)) + 2 * b * s * h * V
    est = perfest.estimate(m, "h100-sxm", batch=b, input_len=s, output_len=1, logits="all")
    assert est.prefill.matmul_flops == pytest.approx(expected, rel=1e-12)


def test_llama_decode_step_by_hand():
    # Llama-2-7B, one decode step, b = 1, context t = 1024 (h = 4096, i = 11008, L = 32, V = 32000)
    #   projections  2·(4h² + 3·h·i)·L = 2·(67,108,864 + 135,266,304)·32 = 12,952,010,752
    #   attention    2·2·n_h·t·d·L = 4·32·1024·128·32                  =    536,870,912
    #   LM head      2·h·V = 2·4096·32000                              =    262,144,000
    m = perfest.load_model("llama-2-7b")
    est = perfest.estimate(m, "a100-80gb-sxm", batch=1, input_len=1022, output_len=4)
    assert est.decode.context_len == 1024
    assert est.decode.matmul_flops == 12_952_010_752 + 536_870_912 + 262_144_000


def test_matmul_flops_are_two_per_parameter_per_token_without_attention():
    # The 2·N rule: a token through every weight matrix costs 2 FLOPs per weight (embedding
    # lookups excluded, LM head included since Llama does not tie it).
    m = perfest.load_model("llama-2-7b")
    est = perfest.estimate(m, "a100-80gb-sxm", batch=1, input_len=1, output_len=1)
    attention = sum(r.matmul_flops for r in est.prefill.layers if r.name.startswith("attn_"))
    weights = perfest.count_parameters(m) - m.V * m.h - (2 * m.L + 1) * m.h  # minus embed, norms
    assert est.prefill.matmul_flops - attention == 2 * weights
