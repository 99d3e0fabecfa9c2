"""Rendering for people: rich tables, with units formatted here only (perfest.export writes
JSON and CSV for scripts). This module holds the unit formatters every table uses; the tables
of each command are in its submodule (estimate, sweep, catalog)."""

from __future__ import annotations

import math

_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """1.23e12, "FLOP" → '1.23 TFLOP'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞"
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip()


def seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def gb(value: float) -> str:
    return f"{value / 1e9:,.2f} GB"


def count(value: int) -> str:
    """Parameter counts: 6.74 B, 124.4 M, 266 k."""
    if value >= 1e9:
        return f"{value / 1e9:.2f} B"
    return f"{value / 1e6:.1f} M" if value >= 1e6 else f"{value / 1e3:.3g} k"


def intensity(value: float | None) -> str:
    return "–" if value is None else ("∞" if math.isinf(value) else f"{value:,.1f}")


def bound_style(bound: str) -> str:
    """The bound, coloured for rich."""
    colours = {
        "compute": "green",
        "memory": "cyan",
        "communication": "magenta",
        "overhead": "yellow",
    }
    colour = colours.get(bound, "")
    return f"[{colour}]{bound}[/]" if colour else bound
