"""Parameter totals against the officially published counts (tests/published_params.py)."""

from __future__ import annotations

import pytest

import perfest
from perfest.parameters import active_parameters, count_parameters, parameter_breakdown
from tests.published_params import APPROXIMATE, PUBLISHED_PARAMETERS


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_parameter_total_equals_published(name):
    total, _source = PUBLISHED_PARAMETERS[name]
    assert count_parameters(perfest.load_model(name)) == total


@pytest.mark.parametrize("name", sorted(APPROXIMATE))
def test_parameter_total_near_rounded_publication(name):
    total, rel, _source = APPROXIMATE[name]
    assert count_parameters(perfest.load_model(name)) == pytest.approx(total, rel=rel)


def test_every_shipped_model_has_a_published_total():
    assert set(perfest.list_models()) <= set(PUBLISHED_PARAMETERS) | set(APPROXIMATE)


def test_tiny_classic_by_hand(classic):
    # V·h + pos·h = 1000·64 + 128·64 = 72,192
    # per layer: qkv 64·192 + 192 = 12,480; out 64·64 + 64 = 4,160;
    #            mlp 2·64·256 + 256 + 64 = 33,088; 2 LayerNorms 2·128 = 256  → 49,984
    # final LayerNorm 128; LM head tied → 0
    assert count_parameters(classic) == 72_192 + 2 * 49_984 + 128
    assert sum(parameter_breakdown(classic).values()) == count_parameters(classic)


#: Published active parameters per token: (count, relative tolerance of the rounding, whether
#: the publisher counts the input embedding, source).
ACTIVE = {
    "mixtral-8x7b": (12.9e9, 0.005, True, "Mixtral model card: 12.9B active per token"),
    "mixtral-8x22b": (39e9, 0.02, True, "mistral.ai/news/mixtral-8x22b: 39B active of 141B"),
    "qwen3-30b-a3b": (3.3e9, 0.02, True, "Qwen3-30B-A3B model card: 3.3B activated"),
    "qwen3-235b-a22b": (22e9, 0.02, True, "Qwen3-235B-A22B model card: 22B activated"),
    "deepseek-v2-lite": (2.4e9, 0.03, False, "DeepSeek-V2-Lite model card: 2.4B activated"),
    "deepseek-v3": (37e9, 0.03, True, "DeepSeek-V3 report: 37B activated per token"),
    "gpt-oss-20b": (3.61e9, 0.002, False, "gpt-oss model card Table 1: 3.61B active"),
    "gpt-oss-120b": (5.13e9, 0.002, False, "gpt-oss model card Table 1: 5.13B active"),
}


@pytest.mark.parametrize("name", sorted(ACTIVE))
def test_active_parameters_near_the_published_figure(name):
    published, rel, with_embedding, _source = ACTIVE[name]
    model = perfest.load_model(name)
    active = active_parameters(model)
    if not with_embedding:
        active -= parameter_breakdown(model)["embedding"]
    assert active == pytest.approx(published, rel=rel)


def test_active_parameters_by_hand():
    # mixtral-8x7b: per layer attention 4096·(4096 + 2·1024) + 4096·4096 = 41,943,040, router
    # 4096·8 = 32,768, 2 norms 8,192, and 2 of the 8 experts 2·3·4096·14336 = 352,321,536
    # → 394,305,536 · 32 = 12,617,777,152; embedding and head 2·32000·4096 = 262,144,000;
    # final norm 4,096: 12,879,925,248 (of 46,702,792,704)
    assert active_parameters(perfest.load_model("mixtral-8x7b")) == 12_879_925_248
    assert active_parameters(perfest.load_model("llama-2-7b")) == 6_738_415_616  # dense: all
