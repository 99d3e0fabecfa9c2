"""Typed, frozen results. `Estimate.to_dict()` is the documented JSON schema (README, "JSON").

Units: FLOPs, bytes, seconds, FLOP/byte, tokens/s. Times ending in `_s` are seconds.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, computed_field

SCHEMA_VERSION = 1

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def make(cls: type[BaseModel], _private: dict | None = None, **data: Any) -> Any:
    """Build a result from already-computed, trusted values without re-validating them.

    The estimator builds dozens of rows per estimate; `model_construct` spends most of an
    estimate's time on bookkeeping we do not need, so this sets the instance state directly.
    Every field must be given, and no other (checked: a misspelt field would vanish from JSON).
    """
    if data.keys() != cls.model_fields.keys():
        raise TypeError(f"{cls.__name__}: fields {sorted(data.keys() ^ cls.model_fields.keys())}")
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", data)
    object.__setattr__(obj, "__pydantic_fields_set__", set(data))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", _private)
    return obj


class OpEstimate(BaseModel):
    """One row of a phase: an op over all its `count` instances (count = L for block ops)."""

    model_config = _FROZEN

    name: str
    group: str
    kind: str
    count: int
    flops: float
    matmul_flops: float
    bytes_read: float
    bytes_written: float
    bytes: float
    intensity: float | None  # None when the op moves no bytes (fused on chip)
    t_compute_s: float
    t_memory_s: float
    t_comm_s: float
    overhead_s: float
    time_s: float
    roofline_time_s: float
    bound: str


class PhaseEstimate(BaseModel):
    """A forward pass: prefill of the prompt, or one decode step at `context_len`."""

    model_config = _FROZEN

    phase: str
    batch: int
    query_len: int
    context_len: int
    flops: float
    matmul_flops: float
    bytes: float
    intensity: float
    time_s: float
    roofline_time_s: float
    overhead_s: float
    comm_time_s: float
    bound: str
    # (op, timing) pairs; the rows are built only when asked for, since most callers (sweeps,
    # summaries) read the totals alone.
    _rows: tuple = PrivateAttr(default=())

    def timed_ops(self) -> tuple:
        """The (Op, Timing) pairs behind `layers`, for callers that need per-op detail at
        every point of a sweep without paying for the rows."""
        return self._rows

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def layers(self) -> tuple[OpEstimate, ...]:
        """A row per op, in execution order (block ops once, with count = L)."""
        return tuple(_row(op, tm) for op, tm in self._rows)


def _row(op: Any, tm: Any) -> OpEstimate:
    c, n = op.cost, op.count
    return make(
        OpEstimate,
        name=op.name,
        group=op.group,
        kind=op.kind,
        count=n,
        flops=c.flops * n,
        matmul_flops=op.matmul_flops,
        bytes_read=c.bytes_read * n,
        bytes_written=c.bytes_written * n,
        bytes=c.bytes * n,
        intensity=c.flops / c.bytes if c.bytes else None,
        t_compute_s=tm.t_compute,
        t_memory_s=tm.t_memory,
        t_comm_s=tm.t_comm,
        overhead_s=tm.overhead,
        time_s=tm.time,
        roofline_time_s=tm.roofline,
        bound=tm.bound,
    )


class MemoryEstimate(BaseModel):
    """Per-device memory (bytes) at the end of generation; `max_batch` at the same lengths."""

    model_config = _FROZEN

    weights_bytes: float
    kv_cache_bytes: float
    activation_bytes: float
    total_bytes: float
    capacity_bytes: float
    fits: bool
    max_batch: int


class GenerationEstimate(BaseModel):
    """The whole request: prefill, then output_len − 1 decode steps (all sequences together)."""

    model_config = _FROZEN

    ttft_s: float
    tpot_s: float
    e2e_latency_s: float
    output_tokens_per_s: float
    per_sequence_tokens_per_s: float
    roofline_ttft_s: float
    roofline_tpot_s: float
    roofline_output_tokens_per_s: float


class Estimate(BaseModel):
    """Everything `perfest estimate` reports."""

    model_config = _FROZEN

    schema_version: int = SCHEMA_VERSION
    model: str
    hardware: str
    workload: dict[str, Any]
    parameters: int
    ridge_point: float
    compute_efficiency: float
    memory_efficiency: float
    memory: MemoryEstimate
    prefill: PhaseEstimate
    decode: PhaseEstimate
    generation: GenerationEstimate
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (plain dicts, lists, numbers and strings)."""
        return self.model_dump(mode="json")
