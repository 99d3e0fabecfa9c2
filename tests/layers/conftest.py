"""Helpers for the per-layer hand-worked cases: build a layer's ops and read one op's cost."""

from __future__ import annotations

import pytest

from perfest.layers import Ctx
from perfest.specs import Workload


def cost(op, **point) -> tuple[float, float, float]:
    """(FLOPs, bytes read, bytes written) of one instance of `op` at `point`."""
    return op.flops.value(point), op.bytes_read.value(point), op.bytes_written.value(point)


@pytest.fixture
def ctx():
    """ctx(model, **workload) → the Ctx a layer builder takes (bf16, tp = 1 by default)."""

    def make(model, **workload):
        return Ctx.of(model, Workload(**workload))

    return make
