"""A step's parts compiled into plans, and their times at one micro-batch.

For one `Shape` on one device (its rates and the links of tp and cp), each part is compiled
once into perfest.plan Plans: its forward and its backward without the collectives that run
beside compute, its attention core (what selective recompute reruns), and each overlap's
collectives and window. Evaluating the parts at a micro-batch is then the plan's arithmetic,
so the search tries many micro-batch sizes, pipeline depths, ZeRO stages and schedules on one
compilation (perfest.training.search).

The point a training pass is evaluated at: b = micro-batch, s = S/cp queries per device (its
share of the sequence), t = S keys, s_logits = s (the loss covers every position; an encoder's
masked-LM head p/cp of them with TrainConfig.mlm_positions = p).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

from perfest.graph import Graph, Segment
from perfest.ops import Axis, Op
from perfest.plan import Plan, Point, Totals
from perfest.roofline import Rates, rates
from perfest.sharding import link
from perfest.specs import HardwareSpec, Workload
from perfest.training.backward import EXPOSED_AXES
from perfest.training.step import Part, PartKey, PartKind, Shape, build_parts, overlapped


def plan_of(name: str, ops: tuple[Op, ...], r: Rates, links: dict) -> Plan:
    """A plan of `ops` run once (one segment of count 1)."""
    return Plan(Graph((Segment(name, ops, 1),)), r, links)


@dataclass(frozen=True, slots=True)
class CompiledOverlap:
    comm: Plan
    window: Plan | None  # None: nothing runs beside it (exposed)
    axis: Axis  # tensor parallel, the context ring, or expert parallel (EP, ETP)


@dataclass(frozen=True, slots=True)
class CompiledPart:
    part: Part
    forward: Plan  # without the overlapped collectives
    backward: Plan
    core: Plan | None  # the attention core's forward
    forward_overlaps: tuple[CompiledOverlap, ...]
    backward_overlaps: tuple[CompiledOverlap, ...]


class Timed(NamedTuple):
    """A phase of a part at a point: the plan's totals (its collectives run exposed), and the
    collectives kept apart — tensor-parallel ones beside compute, the context ring, and the
    expert-parallel all-to-alls and expert-tensor-parallel gathers (exposed): their time and
    what of it was exposed."""

    totals: Totals
    tp_s: float
    tp_exposed_s: float
    cp_s: float
    cp_exposed_s: float
    ep_s: float = 0.0
    ep_exposed_s: float = 0.0

    @property
    def time_s(self) -> float:
        """Compute, the plan's collectives, and the exposed part of the overlapped ones."""
        return self.totals.time_s + self.tp_exposed_s + self.cp_exposed_s + self.ep_exposed_s

    @property
    def compute_s(self) -> float:
        """Without any collective (a collective's launch stays with compute)."""
        return self.totals.time_s - self.totals.comm_time_s

    @property
    def comm_s(self) -> float:
        """Exposed communication."""
        return self.totals.comm_time_s + self.tp_exposed_s + self.cp_exposed_s + self.ep_exposed_s


class PartTimes(NamedTuple):
    forward: Timed
    backward: Timed
    core: Timed | None


def compile_part(part: Part, r: Rates, links: dict) -> CompiledPart:
    name = part.kind.name

    def without(ops: tuple[Op, ...], phase: str) -> tuple[Op, ...]:
        skip = overlapped(part, phase)
        return tuple(op for op in ops if id(op) not in skip)

    def overlaps(items) -> tuple[CompiledOverlap, ...]:
        return tuple(
            CompiledOverlap(
                plan_of(f"{name}.comm", o.comm, r, links),
                plan_of(f"{name}.window", o.window, r, links) if o.window else None,
                o.comm[0].collective.axis,
            )
            for o in items
        )

    core = without(part.core, "forward")
    return CompiledPart(
        part,
        plan_of(name, without(part.forward, "forward"), r, links),
        plan_of(name, without(part.backward.ops, "backward"), r, links),
        plan_of(f"{name}.core", core, r, links) if core else None,
        overlaps(part.forward_overlaps),
        overlaps(part.backward.overlaps),
    )


def _timed(plan: Plan, items: tuple[CompiledOverlap, ...], point: Point) -> Timed:
    sums = [0.0] * 6  # tp total, tp exposed, cp total, cp exposed, ep total, ep exposed
    for o in items:
        comm = o.comm.evaluate(point).time_s
        k = 2 if o.axis is Axis.CP else 4 if o.axis in EXPOSED_AXES else 0
        window = o.window.evaluate(point).time_s if o.window is not None else 0.0
        sums[k] += comm
        sums[k + 1] += max(0.0, comm - window)
    return Timed(plan.evaluate(point), *sums)


def evaluate_part(cp: CompiledPart, point: Point) -> PartTimes:
    """The part's forward, backward and core at `point` (one micro-batch, one instance)."""
    core = _timed(cp.core, cp.forward_overlaps, point) if cp.core is not None else None
    return PartTimes(
        _timed(cp.forward, cp.forward_overlaps, point),
        _timed(cp.backward, cp.backward_overlaps, point),
        core,
    )


def training_rates(hw: HardwareSpec, dtype: str, compute_eff, memory_eff) -> Rates:
    """The device's rates for a training dtype: fp8 runs the linear layers at the FP8 rate and
    attention at bf16 (perfest.roofline.attention_dtype)."""
    w = Workload(dtype=dtype, compute_efficiency=compute_eff, memory_efficiency=memory_eff)
    return rates(hw, w)


def part_dtype(kind: PartKey, dtype: str) -> str:
    """The matmul dtype of a part. FP8 (Transformer Engine) covers the decoder layers' linear
    layers only: Megatron-LM's output layer is its own ColumnParallelLinear, not a TE module,
    so the LM head and its backward run at the 16-bit rate."""
    return "bf16" if dtype == "fp8" and kind.kind is PartKind.HEAD else dtype


def shape_links(hw: HardwareSpec, tp: int, cp: int, ep: int = 1, etp: int = 1) -> dict:
    """The links of the collectives inside a step's parts: tp among neighbouring ranks, cp
    among ranks tp apart (ranks numbered tp fastest, then cp, dp, pp); the experts' groups
    folded over the same ranks (Megatron-Core: etp fastest, then ep): etp neighbouring ranks,
    ep ranks etp apart."""
    links = {}
    if tp > 1:
        links[Axis.TP] = link(hw, tp)
    if cp > 1:
        links[Axis.CP] = link(hw, cp, tp)
    if ep > 1:
        links[Axis.EP] = link(hw, ep, etp, axis="ep")
    if etp > 1:
        links[Axis.ETP] = link(hw, etp, axis="etp")
    return links


#: Compiled parts per (shape, device, rates); a search over layouts needs a few dozen.
_CACHE: OrderedDict = OrderedDict()
CACHE_SIZE = 128


def compiled_parts(
    shape: Shape, hw: HardwareSpec, dtype: str, compute_eff=None, memory_eff=None
) -> dict[PartKey, CompiledPart]:
    """The compiled parts of `shape` on `hw`, cached."""
    key = (shape, id(hw), dtype, compute_eff, memory_eff)
    entry = _CACHE.get(key)
    if entry is not None and entry[0] is hw:
        return entry[1]
    links = shape_links(hw, shape.tp, shape.cp, shape.ep, shape.etp)
    parts = {}
    for kind, part in build_parts(shape).items():
        r = training_rates(hw, part_dtype(kind, dtype), compute_eff, memory_eff)
        parts[kind] = compile_part(part, r, links)
    _CACHE[key] = (hw, parts)
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return parts
