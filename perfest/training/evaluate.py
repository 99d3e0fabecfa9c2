"""One layout's step as numbers: time, its breakdown, FLOPs and memory (the search's inner loop).

What is fixed by (model, device, precision, tp, cp, sequence parallelism) is compiled once
(`Compiled`: the parts' plans, their parameters, the optimizer's per-element cost); what a
micro-batch size fixes is evaluated once (`MicroBatch`: every part's times and saves); a layout
(pp, dp, ZeRO, recompute, interleave, m) is then arithmetic (`step`).

Per micro-batch, stage i (first: the embedding, last: the head, each n_i layers) takes
    t_i = forward_i + backward_i + recompute_i + sends_i + ZeRO-3_i
with each part's exposed collectives in its forward and backward (perfest.training.compiled).
The step (perfest.training.parallel):
    T = m·max t_i + (Σ t_i − max t_i)/v                       pipeline (bubble: the second term)
      + max_i (exposed gradient reduction_i + weight gather_i + optimizer_i)
      + tied-embedding all-reduce + the gradient norm's all-reduce
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from perfest.ops import CollectiveKind
from perfest.plan import Point
from perfest.specs import DTYPE_BYTES, HardwareSpec, ModelConfig
from perfest.training.compiled import (
    CompiledPart,
    PartTimes,
    compiled_parts,
    evaluate_part,
    training_rates,
)
from perfest.training.config import StepLayout, TrainConfig
from perfest.training.memory import PartMemory, StageMemory, in_flight, part_memory
from perfest.training.optimizer import OptimizerCost, optimizer_cost, state_bytes_per_parameter
from perfest.training.parallel import (
    Comm,
    Links,
    Unit,
    collective_s,
    gradient_reduction,
    pipeline_send_s,
    weight_gather,
    zero3,
)
from perfest.training.step import PartKind, Shape, build_parts

EMB, LAYER, HEAD = PartKind.EMBEDDING, PartKind.LAYER, PartKind.HEAD


@dataclass(frozen=True, slots=True)
class Compiled:
    """What (model, device, precision, tp, cp, sequence parallelism) fixes."""

    model: ModelConfig
    shape: Shape
    parts: dict[PartKind, CompiledPart]
    params: dict[PartKind, int]  # weight elements of each part on one device
    shared: int  # elements the embedding and the head share (a tied table)
    costs: tuple[OptimizerCost, OptimizerCost]  # the norm over all gradients / over the shard
    storage_bytes: float
    grad_bytes: float
    master_bytes: float
    state_bytes: float


def compile_step(model: ModelConfig, hw: HardwareSpec, c: TrainConfig, tp: int, cp: int,
                 sp: bool) -> Compiled:  # fmt: skip
    shape = Shape(model, c.storage, c.grad, c.attention == "flash", tp, cp, sp and tp > 1,
                  c.dropout, c.dtype == "fp8")  # fmt: skip
    parts = compiled_parts(shape, hw, c.dtype, c.compute_efficiency, c.memory_efficiency)
    params, shared = _parameters(shape)
    r = training_rates(hw, c.dtype, c.compute_efficiency, c.memory_efficiency)
    costs = tuple(optimizer_cost(c.optimizer, c.storage, c.grad, c.mixed, sharded, r)
                  for sharded in (False, True))  # fmt: skip
    master, states = state_bytes_per_parameter(c.optimizer, c.mixed)
    return Compiled(model, shape, parts, params, shared, costs, DTYPE_BYTES[c.storage],
                    DTYPE_BYTES[c.grad], master, states)  # fmt: skip


@lru_cache(maxsize=256)
def _parameters(shape: Shape) -> tuple[dict[PartKind, int], int]:
    parts = build_parts(shape)
    tensors = {kind: part.weights for kind, part in parts.items()}
    params = {kind: sum(int(t.elements.value()) for t in ts) for kind, ts in tensors.items()}
    shared = sum(int(t.elements.value()) for t in tensors[EMB] if t in tensors[HEAD])
    return params, shared


class MicroBatch(NamedTuple):
    """Every part at one micro-batch size: times, and what it saves under each recompute."""

    point: Point
    times: dict[PartKind, PartTimes]
    memory: dict[str, dict[PartKind, PartMemory]]


def micro_batch(c: Compiled, b: int, seq: int, cp: int) -> MicroBatch:
    s_local = seq // cp
    point = Point(b, s_local, seq, s_local)
    env = point._asdict()
    times = {kind: evaluate_part(part, point) for kind, part in c.parts.items()}
    parts = {kind: part.part for kind, part in c.parts.items()}
    memory = {mode: {kind: part_memory(p, mode, env) for kind, p in parts.items()}
              for mode in ("none", "selective", "full")}  # fmt: skip
    return MicroBatch(point, times, memory)


def recompute_of(t: PartTimes, mode: str):
    """The Timed a layer reruns in backward (None: nothing)."""
    if mode == "selective":
        return t.core
    return t.forward if mode == "full" else None


def stage_layers(L: int, pp: int) -> list[int]:
    """Layers per stage: L/pp each, the remainder one more on the stages after the first."""
    base, extra = divmod(L, pp)
    return [base + (1 if 0 < i <= extra else 0) for i in range(pp)] if extra else [base] * pp


class Stage(NamedTuple):
    """A pipeline stage of a layout, per micro-batch and per step; `copies` stages run the
    same parts (the middle stages), of which this is the first (the one holding the most
    micro-batches in flight)."""

    index: int
    copies: int
    counts: tuple[tuple[PartKind, int], ...]  # the parts it runs, with their count
    time_s: float  # per micro-batch: forward, backward, recompute, sends, ZeRO-3
    sends_s: float
    zero3: Comm
    parameters: float
    tail: tuple[Comm, Comm, float]  # gradient reduction, weight gather, optimizer (per step)
    memory: StageMemory


class StepNumbers(NamedTuple):
    step_s: float
    steady_s: float
    bubble_s: float
    tail_s: float
    stages: tuple[Stage, ...]  # one per kind of stage (first, middle, last)
    critical: int  # the stage with the longest time per micro-batch
    finishing: int  # the stage whose end-of-step work is longest
    tied: float
    norm: float
    memory: StageMemory  # the stage needing the most memory
    memory_stage: int


def step(c: Compiled, mb: MicroBatch, lay: StepLayout, links: Links) -> StepNumbers:
    """The step of layout `lay` (module docstring)."""
    pp, v, m = lay.pp, lay.interleave, lay.micro_batches
    d = lay.dp * lay.cp
    times = mb.times
    rec = recompute_of(times[LAYER], lay.recompute)
    per_layer = times[LAYER].forward.time_s + times[LAYER].backward.time_s
    per_layer += rec.time_s if rec is not None else 0.0
    send_bytes = mb.point.b * mb.point.s * c.model.h * c.storage_bytes
    sends = 2 * v * pipeline_send_s(send_bytes, lay.tp, lay.sequence_parallel, links)
    kinds: dict[tuple, list[int]] = {}
    for i, n in enumerate(stage_layers(c.model.L, pp)):
        counts = ((EMB, 1),) if i == 0 else ()
        counts += ((LAYER, n),)
        counts += ((HEAD, 1),) if i == pp - 1 else ()
        kinds.setdefault(counts, []).append(i)
    stages = tuple(
        _stage(c, mb, lay, links, idx[0], len(idx), counts, per_layer, sends, d, m)
        for counts, idx in kinds.items()
    )
    slowest = max(s.time_s for s in stages)
    steady = m * slowest
    bubble = (sum(s.copies * s.time_s for s in stages) - slowest) / v
    ends = [s.tail[0].exposed_s + s.tail[1].exposed_s + s.tail[2] for s in stages]
    finishing = max(range(len(stages)), key=ends.__getitem__)
    tied = 0.0
    if pp > 1 and c.shared:
        tied = collective_s(CollectiveKind.ALL_REDUCE, 2, c.shared * c.grad_bytes, links.ends)
    norm = links.world.latency_s if links.world is not None else 0.0
    tail = ends[finishing] + tied + norm
    critical = max(range(len(stages)), key=lambda i: stages[i].time_s)
    worst = max(range(len(stages)), key=lambda i: stages[i].memory.total)
    memory = stages[worst]
    return StepNumbers(steady + bubble + tail, steady, bubble, tail, stages, critical,
                       finishing, tied, norm, memory.memory, memory.index)  # fmt: skip


def _stage(c, mb, lay, links, i, copies, counts, per_layer, sends, d, m) -> Stage:
    times = mb.times
    t = sends
    params = 0.0
    units = []
    for kind, n in counts:
        part = times[kind]
        t += n * (per_layer if kind is LAYER else part.forward.time_s + part.backward.time_s)
        params += n * c.params[kind]
        units.append(Unit(n, c.params[kind], part.forward.time_s, part.backward.time_s))
    if len(counts) > 1 and counts[0][0] is EMB and counts[-1][0] is HEAD:
        params -= c.shared  # one tied table on a one-stage pipeline
    z = zero3(units, c.storage_bytes, c.grad_bytes, d, links.dp) if lay.zero == 3 else _NONE
    t += z.exposed_s
    backward = sum(n * times[kind].backward.time_s for kind, n in counts)
    forward = sum(n * times[kind].forward.time_s for kind, n in counts)
    reduce = gradient_reduction(params, c.grad_bytes, d, lay.zero, links.dp, backward)
    gather = weight_gather(params, c.storage_bytes, d, lay.zero, links.dp, forward)
    grads = params / d if lay.zero >= 2 else params
    shard = params / d if lay.zero >= 1 else params
    optimizer = c.costs[lay.zero >= 1].time_s(grads, shard)
    memory = stage_memory(c, mb, lay, i, counts, params, units, d, m)
    return Stage(i, copies, counts, t, sends, z, params, (reduce, gather, optimizer), memory)


def stage_memory(c: Compiled, mb: MicroBatch, lay: StepLayout, i: int, counts, params: float,
                 units: list[Unit], d: int, m: int) -> StageMemory:  # fmt: skip
    """Per-device bytes of stage i (perfest.training.memory)."""
    z = lay.zero
    weights = params * c.storage_bytes / (d if z == 3 else 1)
    gathered = 0.0
    if z == 3 and d > 1:  # the unit computing and the one prefetched, whole
        sizes = [u.parameters for u in units for _ in range(min(u.count, 2))]
        pairs = [a + b for a, b in zip(sizes, sizes[1:], strict=False)] or sizes
        gathered = max(pairs) * c.storage_bytes
    grads = params * c.grad_bytes / (d if z >= 2 else 1)
    master = params * c.master_bytes / (d if z >= 1 else 1)
    states = params * c.state_bytes / (d if z >= 1 else 1)
    saves = mb.memory[lay.recompute]
    flight = in_flight(m, lay.pp, i, lay.interleave)
    kept = sum(n * saves[kind].kept for kind, n in counts)
    working = max(saves[kind].working for kind, _ in counts)
    logits = sum(saves[kind].logits for kind, _ in counts)
    return StageMemory(weights, gathered, grads, master, states, flight * kept + working, logits)


_NONE = Comm(0.0, 0.0)
