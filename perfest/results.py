"""Typed, frozen results. `Estimate.to_dict()` is the documented JSON schema (README, "JSON").

Plain slotted dataclasses: an estimate is built tens of thousands of times a second in sweeps,
so nothing here validates what the estimator computed. Units: FLOPs, bytes, seconds,
FLOP/byte, tokens/s. Times ending in `_s` are seconds.

An estimate holds a list of named phases (prefill and decode for a decoder; encode for an
encoder; encode, prefill and decode for an encoder-decoder); each phase keeps its plan and
point, and its per-op rows are built only when asked for (`layers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from perfest.enums import StrEnum
from perfest.roofline import Bound
from perfest.specs import Workload

if TYPE_CHECKING:
    from perfest.plan import Plan, Point, Row, Totals

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class OpEstimate:
    """One row of a phase: an op over all its `count` instances (count = L for block ops)."""

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
    bound: Bound

    @classmethod
    def of(cls, row: Row) -> OpEstimate:
        op = row.op
        nbytes = row.bytes
        return cls(
            op.name,
            op.group.value,
            op.kind.value,
            row.count,
            row.flops,
            row.matmul_flops,
            row.bytes_read,
            row.bytes_written,
            nbytes,
            row.flops / nbytes if nbytes else None,
            row.t_compute,
            row.t_memory,
            row.t_comm,
            row.overhead,
            row.time,
            row.roofline,
            row.bound,
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in OP_FIELDS}


OP_FIELDS = tuple(OpEstimate.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class PhaseEstimate:
    """One pass: the prompt's prefill, a decode step at `context_len`, …"""

    phase: str
    point: Point
    totals: Totals
    plan: Plan = field(repr=False, compare=False)

    batch = property(lambda self: self.point.b)
    query_len = property(lambda self: self.point.s)
    context_len = property(lambda self: self.point.t)
    flops = property(lambda self: self.totals.flops)
    matmul_flops = property(lambda self: self.totals.matmul_flops)
    bytes = property(lambda self: self.totals.bytes)
    time_s = property(lambda self: self.totals.time_s)
    roofline_time_s = property(lambda self: self.totals.roofline_time_s)
    overhead_s = property(lambda self: self.totals.overhead_s)
    comm_time_s = property(lambda self: self.totals.comm_time_s)
    bound = property(lambda self: self.totals.bound)
    weights_bound = property(lambda self: self.totals.weights_bound)

    @property
    def intensity(self) -> float:
        """FLOP/byte of the whole pass."""
        t = self.totals
        return t.flops / t.bytes if t.bytes else 0.0

    @property
    def rows(self) -> tuple[Row, ...]:
        """The plan's rows at this point (ops with their op objects), built on each call."""
        return self.plan.rows(self.point)

    @property
    def layers(self) -> tuple[OpEstimate, ...]:
        """A row per op, in execution order (block ops once, with count = L); built on each
        call, since most callers (sweeps, summaries) read the totals alone."""
        return tuple(OpEstimate.of(row) for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        data = {name: _plain(getattr(self, name)) for name in PHASE_FIELDS}
        data["layers"] = [op.to_dict() for op in self.layers]
        return data


#: The JSON keys of a phase, in order (then "layers").
PHASE_FIELDS = (
    "phase",
    "batch",
    "query_len",
    "context_len",
    "flops",
    "matmul_flops",
    "bytes",
    "intensity",
    "time_s",
    "roofline_time_s",
    "overhead_s",
    "comm_time_s",
    "bound",
)


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """Per-device memory (bytes) at the end of generation; `max_batch` at the same lengths."""

    weights_bytes: float
    kv_cache_bytes: float
    activation_bytes: float
    total_bytes: float
    capacity_bytes: float
    fits: bool
    max_batch: int

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class GenerationEstimate:
    """The whole request: prefill, then output_len − 1 decode steps (all sequences together)."""

    ttft_s: float
    tpot_s: float
    e2e_latency_s: float
    output_tokens_per_s: float
    per_sequence_tokens_per_s: float
    roofline_ttft_s: float
    roofline_tpot_s: float
    roofline_output_tokens_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class EncodingEstimate:
    """An encoder's one pass over the batch (perfest.encoders): its latency, and the sequences
    and input tokens it gets through per second (all sequences of the batch together)."""

    latency_s: float
    sequences_per_s: float
    tokens_per_s: float
    roofline_latency_s: float
    roofline_sequences_per_s: float
    roofline_tokens_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def workload_json(w: Workload, exclude: set[str] | None = None) -> dict[str, Any]:
    """A workload's JSON form; `head` only where it was given (it is an encoder's option)."""
    data = w.model_dump(mode="json", exclude=exclude)
    if data.get("head", "") is None:
        del data["head"]
    return data


class NoteKind(StrEnum):
    """What a warning is about, so commands can treat each kind by its policy."""

    MEMORY = "memory"  # does not fit in device memory
    POSITIONS = "positions"  # longer than the model's trained context
    LAYOUT = "layout"  # a what-if layout: tp spanning nodes, kv heads split unevenly


@dataclass(frozen=True, slots=True)
class Note:
    """A warning attached to a result: its kind and the sentence shown to people."""

    kind: NoteKind
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Estimate:
    """Everything `perfest estimate` reports."""

    model: str
    hardware: str
    workload: Workload
    parameters: int
    ridge_point: float
    compute_efficiency: float
    memory_efficiency: float
    memory: MemoryEstimate
    phases: tuple[PhaseEstimate, ...]
    generation: GenerationEstimate | None  # None for an encoder (nothing generated)
    warnings: tuple[Note, ...] = ()
    schema_version: int = SCHEMA_VERSION
    encoding: EncodingEstimate | None = None  # an encoder's pass (perfest.encoders)

    def phase(self, name: str) -> PhaseEstimate:
        for phase in self.phases:
            if phase.phase == name:
                return phase
        raise KeyError(f"no phase '{name}' (phases: {', '.join(p.phase for p in self.phases)})")

    @property
    def prefill(self) -> PhaseEstimate:
        return self.phase("prefill")

    @property
    def decode(self) -> PhaseEstimate:
        return self.phase("decode")

    @property
    def encode(self) -> PhaseEstimate:
        return self.phase("encode")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (plain dicts, lists, numbers and strings)."""
        data: dict[str, Any] = {
            "schema_version": self.schema_version,
            "model": self.model,
            "hardware": self.hardware,
            "workload": workload_json(self.workload),
            "parameters": self.parameters,
            "ridge_point": self.ridge_point,
            "compute_efficiency": self.compute_efficiency,
            "memory_efficiency": self.memory_efficiency,
            "memory": self.memory.to_dict(),
        }
        for phase in self.phases:
            data[phase.phase] = phase.to_dict()
        if self.generation is not None:
            data["generation"] = self.generation.to_dict()
        if self.encoding is not None:
            data["encoding"] = self.encoding.to_dict()
        data["warnings"] = [note.text for note in self.warnings]
        return data


def _plain(value: Any) -> Any:
    """Enums as their values (JSON has no enums)."""
    return value.value if isinstance(value, Enum) else value
