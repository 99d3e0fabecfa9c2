"""Typed, frozen results of `perfest train`; `TrainingEstimate.to_dict()` is the JSON.

Units: seconds, bytes, FLOPs, tokens/s. Times of a step are for the whole step (all m
micro-batches); a phase's `per_micro_batch_s` is one micro-batch on the slowest stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from perfest.results import Note, OpEstimate, _plain

if TYPE_CHECKING:
    from perfest.plan import Plan, Point
    from perfest.training.config import StepLayout, TrainConfig

TRAIN_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class PartRun:
    """A part's plan in one phase on the slowest stage: run `count` times per micro-batch."""

    name: str
    count: int
    plan: Plan
    point: Point


@dataclass(frozen=True, slots=True)
class TrainPhase:
    """Forward, backward, recompute or optimizer on the slowest stage, for the whole step.
    `time_s` is compute only: the phase's collectives are listed apart (`collectives`)."""

    phase: str
    time_s: float
    per_micro_batch_s: float
    flops: float
    matmul_flops: float
    bytes: float
    roofline_time_s: float
    runs: tuple[PartRun, ...] = field(default=(), repr=False, compare=False)

    @property
    def layers(self) -> tuple[OpEstimate, ...]:
        """One row per op of one micro-batch (count = the op's instances on the stage), built
        on each call."""
        rows = []
        for run in self.runs:
            for row in run.plan.rows(run.point):
                scaled = replace(
                    row,
                    count=row.count * run.count,
                    flops=row.flops * run.count,
                    matmul_flops=row.matmul_flops * run.count,
                    bytes_read=row.bytes_read * run.count,
                    bytes_written=row.bytes_written * run.count,
                    t_compute=row.t_compute * run.count,
                    t_memory=row.t_memory * run.count,
                    t_comm=row.t_comm * run.count,
                    overhead=row.overhead * run.count,
                    time=row.time * run.count,
                    roofline=row.roofline * run.count,
                )
                rows.append(OpEstimate.of(scaled))
        return tuple(rows)

    def to_dict(self, layers: bool = False) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in PHASE_KEYS}
        if layers:
            data["layers"] = [op.to_dict() for op in self.layers]
        return data


PHASE_KEYS = ("phase", "time_s", "per_micro_batch_s", "flops", "matmul_flops", "bytes",
              "roofline_time_s")  # fmt: skip


@dataclass(frozen=True, slots=True)
class CollectiveTime:
    """One kind of communication of a step: all its time, and what the step waits for."""

    name: str
    axis: str
    link: str
    total_s: float
    exposed_s: float

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class TrainMemory:
    """Per-device bytes on the pipeline stage that needs the most (perfest.training.memory)."""

    stage: int
    weights_bytes: float
    gathered_bytes: float
    gradient_bytes: float
    master_bytes: float
    optimizer_bytes: float
    activation_bytes: float
    logits_bytes: float
    per_device_bytes: float
    capacity_bytes: float
    fits: bool
    max_micro_batch: int

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class Breakdown:
    """The step's time by what it is spent on; the entries add up to the step time.
    `communication_s` is the exposed communication (per collective: `collectives`)."""

    forward_s: float
    backward_s: float
    recompute_s: float
    communication_s: float
    bubble_s: float
    optimizer_s: float

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class TimeToTrain:
    tokens: float
    seconds: float
    days: float
    gpu_hours: float

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class TrainingEstimate:
    """Everything `perfest train` reports for one layout."""

    model: str
    hardware: str
    config: TrainConfig
    layout: StepLayout
    parameters: int
    step_time_s: float
    roofline_step_s: float
    tokens_per_step: int
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    model_flops_per_step: float
    hardware_flops_per_step: float
    model_tflops_per_gpu: float
    hardware_tflops_per_gpu: float
    mfu: float
    hfu: float
    peak_tflops: float
    breakdown: Breakdown
    phases: tuple[TrainPhase, ...]
    collectives: tuple[CollectiveTime, ...]
    memory: TrainMemory
    time_to_train: TimeToTrain | None = None
    warnings: tuple[Note, ...] = ()
    schema_version: int = TRAIN_SCHEMA_VERSION

    def phase(self, name: str) -> TrainPhase:
        for phase in self.phases:
            if phase.phase == name:
                return phase
        raise KeyError(f"no phase '{name}'")

    def to_dict(self, layers: bool = False) -> dict[str, Any]:
        """The JSON form (`layers`: each phase's per-op rows too)."""
        lay = self.layout
        data: dict[str, Any] = {
            "schema_version": self.schema_version,
            "model": self.model,
            "hardware": self.hardware,
            "config": self.config.model_dump(mode="json"),
            "layout": {name: _plain(getattr(lay, name)) for name in lay._fields},
            "parameters": self.parameters,
        }
        for name in SCALAR_KEYS:
            data[name] = getattr(self, name)
        data["breakdown"] = self.breakdown.to_dict()
        data["phases"] = [phase.to_dict(layers) for phase in self.phases]
        data["collectives"] = [c.to_dict() for c in self.collectives]
        data["memory"] = self.memory.to_dict()
        data["time_to_train"] = self.time_to_train.to_dict() if self.time_to_train else None
        data["warnings"] = [note.text for note in self.warnings]
        return data


SCALAR_KEYS = (
    "step_time_s",
    "roofline_step_s",
    "tokens_per_step",
    "tokens_per_s",
    "tokens_per_s_per_gpu",
    "model_flops_per_step",
    "hardware_flops_per_step",
    "model_tflops_per_gpu",
    "hardware_tflops_per_gpu",
    "mfu",
    "hfu",
    "peak_tflops",
)
