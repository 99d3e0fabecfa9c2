"""Expressions: the formulas ops are written in, as text, as numbers and as polynomials."""

from __future__ import annotations

import pytest

from perfest.symbols import ONE, ZERO, Sym, b, mul, s, t


def test_a_width_prints_as_written_and_evaluates():
    n_h, n_kv, d = Sym("n_h", 8), Sym("n_kv", 2), Sym("d", 8)
    width = (n_h + 2 * n_kv) * d
    assert width.text() == "(n_h + 2·n_kv)·d"
    assert width.text({}) == "(8 + 2·2)·8"
    assert width.value() == (8 + 2 * 2) * 8 == 96


def test_poly_expands_over_the_free_symbols_only():
    h = Sym("h", 64)
    # 2·b·s·h with h = 64: one monomial b·s with coefficient 128
    assert mul(2, b, s, h).poly() == {("b", "s"): 128}
    # (b·s + s)·h·2: two monomials
    assert ((b * s + s) * h * 2).poly() == {("b", "s"): 128, ("s",): 128}
    # b·n_h·s·t: monomial names are sorted
    assert (t * s * b * Sym("n_h", 4)).poly() == {("b", "s", "t"): 4}


def test_free_symbols_take_their_values_from_the_point():
    flops = mul(2, b, s, Sym("h", 4096), Sym("i", 11008))
    assert flops.text() == "2·b·s·h·i"
    assert flops.text({"b": 8, "s": 512}) == "2·8·512·4096·11008"
    assert flops.value({"b": 8, "s": 512}) == 2 * 8 * 512 * 4096 * 11008
    with pytest.raises(KeyError, match="free symbol b"):
        flops.value()


def test_numbers_gather_in_front_and_zeros_vanish():
    assert mul(2, b, 3).text() == "6·b"
    assert mul(b, 0) == ZERO and mul() == ONE
    assert (b + 0).text() == "b" and (0 * b + s).text() == "s"
    assert mul(0.5, b).text() == "0.5·b"
