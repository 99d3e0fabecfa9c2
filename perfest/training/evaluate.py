"""One layout's step as numbers: time, its breakdown, FLOPs and memory (the search's inner loop).

What is fixed by (model, device, precision, tp, cp, sequence parallelism) is compiled once
(`Compiled`: the parts' plans, their parameters, the optimizer's per-element cost); what a
micro-batch size fixes is evaluated once (`MicroBatch`: every part's times and saves); a layout
(pp, dp, ZeRO, recompute, interleave, m) is then arithmetic (`step`).

Per micro-batch, stage i (first: the embedding, last: the head; the model's layers split in
order, each stage running the kinds of layer it holds: `stage_counts`) takes
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
    Replicas,
    Unit,
    collective_s,
    gradient_reduction,
    pipeline_send_s,
    weight_gather,
    zero3,
)
from perfest.training.step import EMB, HEAD, LAYER, PartKey, Shape, build_parts, layer_keys

__all__ = ["EMB", "HEAD", "LAYER"]


@dataclass(frozen=True, slots=True)
class Compiled:
    """What (model, device, precision, tp, cp, sequence parallelism) fixes."""

    model: ModelConfig
    shape: Shape
    parts: dict[PartKey, CompiledPart]
    params: dict[PartKey, int]  # weight elements of each part on one device
    experts: dict[PartKey, int]  # of which routed experts' (reduced over expert dp)
    shared: int  # elements the embedding and the head share (a tied table)
    costs: tuple[OptimizerCost, OptimizerCost]  # the norm over all gradients / over the shard
    storage_bytes: float
    grad_bytes: float
    master_bytes: float
    state_bytes: float


def compile_step(model: ModelConfig, hw: HardwareSpec, c: TrainConfig, tp: int, cp: int,
                 sp: bool, ep: int = 1, etp: int = 1) -> Compiled:  # fmt: skip
    shape = Shape(model, c.storage, c.grad, c.attention == "flash", tp, cp, sp and tp > 1,
                  c.dropout, c.dtype == "fp8", ep, etp)  # fmt: skip
    parts = compiled_parts(shape, hw, c.dtype, c.compute_efficiency, c.memory_efficiency)
    params, experts, shared = _parameters(shape)
    r = training_rates(hw, c.dtype, c.compute_efficiency, c.memory_efficiency)
    costs = tuple(optimizer_cost(c.optimizer, c.storage, c.grad, c.mixed, sharded, r)
                  for sharded in (False, True))  # fmt: skip
    master, states = state_bytes_per_parameter(c.optimizer, c.mixed)
    return Compiled(model, shape, parts, params, experts, shared, costs, DTYPE_BYTES[c.storage],
                    DTYPE_BYTES[c.grad], master, states)  # fmt: skip


@lru_cache(maxsize=256)
def _parameters(shape: Shape) -> tuple[dict[PartKey, int], dict[PartKey, int], int]:
    parts = build_parts(shape)
    tensors = {kind: part.weights for kind, part in parts.items()}
    params = {kind: sum(int(t.elements.value()) for t in ts) for kind, ts in tensors.items()}
    experts = {kind: sum(int(t.elements.value()) for t in ts if t.routed)
               for kind, ts in tensors.items()}  # fmt: skip
    shared = sum(int(t.elements.value()) for t in tensors[EMB] if t in tensors[HEAD])
    return params, experts, shared


def trained_parameters(model: ModelConfig) -> int:
    """The parameters a step trains, read off its parts at tp 1 (a tied table once): a
    decoder's count_parameters; an encoder's with the masked-LM head and without the pooler
    (Hugging Face's BertForMaskedLM, RobertaForMaskedLM)."""
    params, _, shared = _parameters(Shape(model, "bf16", "fp32", True, 1, 1, False))
    keys = layer_keys(model)
    return sum(n * (keys.count(k) if k.is_layer else 1) for k, n in params.items()) - shared


class MicroBatch(NamedTuple):
    """Every part at one micro-batch size: times, and what it saves under each recompute."""

    point: Point
    times: dict[PartKey, PartTimes]
    memory: dict[str, dict[PartKey, PartMemory]]


def micro_batch(c: Compiled, b: int, seq: int, cp: int, scored: int | None = None) -> MicroBatch:
    """Every part at micro-batch `b`: this device's s = seq/cp queries over t = seq keys, the
    loss over s_logits = s positions, or `scored` per sequence (an encoder's masked positions,
    TrainConfig.mlm_positions) shared by the cp devices."""
    s_local = seq // cp
    point = Point(b, s_local, seq, s_local if scored is None else scored / cp)
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


@lru_cache(maxsize=1024)
def stage_counts(model: ModelConfig, pp: int, v: int = 1) -> tuple[tuple[tuple[PartKey, int], ...]]:
    """The parts each stage runs, with their counts: the embedding on the first, the head on
    the last, and the model's layers in order — split by `stage_layers` (v = 1), or in pp·v
    chunks of L/(pp·v) with stage i holding chunks i, i + pp, … (the interleaved schedule) —
    counted by kind, kinds in the model's order."""
    keys = layer_keys(model)
    order = list(dict.fromkeys(keys))
    if v == 1:
        sizes = stage_layers(model.L, pp)
        starts = [sum(sizes[:i]) for i in range(pp)]
        held = [list(range(a, a + n)) for a, n in zip(starts, sizes, strict=True)]
    else:
        chunk = model.L // (pp * v)
        held = [[layer for j in range(v) for layer in range((i + j * pp) * chunk,
                                                           (i + j * pp + 1) * chunk)]
                for i in range(pp)]  # fmt: skip
    out = []
    for i, layers in enumerate(held):
        found = [keys[layer] for layer in layers]
        counts = ((EMB, 1),) if i == 0 else ()
        counts += tuple((key, found.count(key)) for key in order if key in found)
        counts += ((HEAD, 1),) if i == pp - 1 else ()
        out.append(counts)
    return tuple(out)


class Stage(NamedTuple):
    """A pipeline stage of a layout, per micro-batch and per step; `copies` stages run the
    same parts (the middle stages), of which this is the first (the one holding the most
    micro-batches in flight)."""

    index: int
    copies: int
    counts: tuple[tuple[PartKey, int], ...]  # the parts it runs, with their count
    time_s: float  # per micro-batch: forward, backward, recompute, sends, ZeRO-3
    sends_s: float
    zero3: Comm
    parameters: float
    tail: tuple[Comm, Comm, float]  # gradient reduction, weight gather, optimizer (per step)
    memory: StageMemory
    replicas: tuple[Replicas, ...]  # its parameters by the ranks sharing them (dense, experts)


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
    send_bytes = mb.point.b * mb.point.s * c.model.h * c.storage_bytes
    sends = 2 * v * pipeline_send_s(send_bytes, lay.tp, lay.sequence_parallel, links)
    kinds: dict[tuple, list[int]] = {}
    for i, counts in enumerate(stage_counts(c.model, pp, v)):
        kinds.setdefault(counts, []).append(i)
    per_part = {kind: _per_micro_batch(t, kind, lay.recompute) for kind, t in mb.times.items()}
    stages = tuple(
        _stage(c, mb, lay, links, idx[0], len(idx), counts, per_part, sends, m)
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


def _per_micro_batch(t: PartTimes, kind: PartKey, recompute: str) -> float:
    """One instance of a part, one micro-batch: forward, backward and (layers) recompute."""
    rec = recompute_of(t, recompute) if kind.is_layer else None
    per = t.forward.time_s + t.backward.time_s
    return per + rec.time_s if rec is not None else per


def _stage(c, mb, lay, links, i, copies, counts, per_part, sends, m) -> Stage:
    times = mb.times
    d, edp = lay.dp * lay.cp, lay.edp
    t = sends
    params = experts = 0.0
    units = []
    for kind, n in counts:
        part = times[kind]
        t += n * per_part[kind]
        params += n * c.params[kind]
        experts += n * c.experts[kind]
        units.append(Unit(n, c.params[kind], part.forward.time_s, part.backward.time_s,
                          c.experts[kind]))  # fmt: skip
    if len(counts) > 1 and counts[0][0] == EMB and counts[-1][0] == HEAD:
        params -= c.shared  # one tied table on a one-stage pipeline
    groups = (Replicas(params - experts, d, links.dp),)
    if experts:
        groups += (Replicas(experts, edp, links.edp),)
    z = _NONE
    if lay.zero == 3:
        z = zero3(units, c.storage_bytes, c.grad_bytes, (d, links.dp), (edp, links.edp))
    t += z.exposed_s
    backward = sum(n * times[kind].backward.time_s for kind, n in counts)
    forward = sum(n * times[kind].forward.time_s for kind, n in counts)
    reduce = gradient_reduction(groups, c.grad_bytes, lay.zero, backward)
    gather = weight_gather(groups, c.storage_bytes, lay.zero, forward)
    grads = sharded(groups, lay.zero >= 2)
    shard = sharded(groups, lay.zero >= 1)
    optimizer = c.costs[lay.zero >= 1].time_s(grads, shard)
    memory = stage_memory(c, mb, lay, i, counts, groups, units, m)
    return Stage(i, copies, counts, t, sends, z, params, (reduce, gather, optimizer), memory,
                 groups)  # fmt: skip


def sharded(groups: tuple[Replicas, ...], split: bool) -> float:
    """Parameters a device holds of `groups`: each divided by its ranks when `split` (ZeRO)."""
    return sum(g.parameters / g.ranks if split else g.parameters for g in groups)


def stage_memory(c: Compiled, mb: MicroBatch, lay: StepLayout, i: int, counts,
                 groups: tuple[Replicas, ...], units: list[Unit],
                 m: int) -> StageMemory:  # fmt: skip
    """Per-device bytes of stage i (perfest.training.memory)."""
    z = lay.zero
    weights = sharded(groups, z == 3) * c.storage_bytes
    gathered = 0.0
    if z == 3 and any(g.ranks > 1 for g in groups):  # the unit computing, the next one: whole
        sizes = [u.parameters for u in units for _ in range(min(u.count, 2))]
        pairs = [a + b for a, b in zip(sizes, sizes[1:], strict=False)] or sizes
        gathered = max(pairs) * c.storage_bytes
    grads = sharded(groups, z >= 2) * c.grad_bytes
    master = sharded(groups, z >= 1) * c.master_bytes
    states = sharded(groups, z >= 1) * c.state_bytes
    saves = mb.memory[lay.recompute]
    flight = in_flight(m, lay.pp, i, lay.interleave)
    kept = sum(n * saves[kind].kept for kind, n in counts)
    working = max(saves[kind].working for kind, _ in counts)
    logits = sum(saves[kind].logits for kind, _ in counts)
    return StageMemory(weights, gathered, grads, master, states, flight * kept + working, logits)


_NONE = Comm(0.0, 0.0)
