"""Parameter totals against the officially published counts (tests/published_params.py)."""

from __future__ import annotations

import pytest

import perfest
from perfest.parameters import count_parameters, parameter_breakdown
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
