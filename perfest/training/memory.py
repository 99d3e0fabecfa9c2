"""Memory per device during a training step: each term, the total against capacity, the fit.

With Ψ parameters on the device's pipeline stage (already split by tensor parallelism) and
D = dp·cp ranks holding the same weights (context parallelism replicates weights like data
parallelism, and Megatron-LM shards its distributed optimizer over both):

    weights      Ψ · storage bytes; ZeRO-3: Ψ/D, plus `gathered`: the whole parameters of two
                 neighbouring units (the one computing and the one prefetched; a unit is a
                 layer, the embedding or the head). Gradients in flight to their reduction
                 (a bucket, or a ZeRO-3 unit's) are transient and not counted, at any stage
    gradients    Ψ · gradient bytes (fp32 under mixed precision); ZeRO-2 and 3: Ψ/D
    master       Ψ · 4 under mixed precision (fp32 master weights); ZeRO ≥ 1: Ψ/D
    optimizer    Ψ · 4 · states (Adam 2, momentum 1, SGD 0); ZeRO ≥ 1: Ψ/D
    activations  what the forward ops save for backward (`Op.saves`, each tensor once) for one
                 micro-batch, for the stage's parts, times the micro-batches in flight: the
                 1F1B schedule keeps min(m, pp − i) on stage i (the first stage the most), the
                 interleaved schedule (1 + (pp − 1)/(pp·v)) times as many (Korthikanti et al.
                 2022, §4.2.3). Recompute: selective drops what the attention core saves and
                 produces itself (scores, probabilities, dropout masks, flash's log-sum-exp);
                 full keeps each layer's input only — and, while a layer is recomputed, its
                 whole set once more (`working`)
    logits       the last stage's logits (storage dtype) and the loss's fp32 probabilities,
                 one micro-batch (the last stage runs each micro-batch's backward at once)

A mixture of experts holds E/ep of each layer's experts (perfest.sharding); their weights are
replicated over the expert-data-parallel ranks only, edp = tp·cp·dp/(etp·ep), so ZeRO divides
the experts' share of each term by edp and the rest by D (perfest.training.evaluate:
`Replicas`).

This is the ZeRO paper's accounting (Rajbhandari et al. 2020, §3, Table 1): with 16-bit
gradients and Adam (K = 12 bytes of master weights and states per parameter), 2Ψ + 2Ψ + KΨ
per replica; ZeRO-1 2Ψ + 2Ψ + KΨ/D; ZeRO-2 2Ψ + (2 + K)Ψ/D; ZeRO-3 (4 + K)Ψ/D.
Framework overheads (CUDA context, NCCL buffers, allocator fragmentation) are not included.
"""

from __future__ import annotations

from math import floor
from typing import NamedTuple

from perfest.ops import Fn, Tensor
from perfest.symbols import FREE, Derived, Poly, derived_in
from perfest.training.step import Part


class PartMemory(NamedTuple):
    """One part, one micro-batch: bytes kept for backward, the extra live while it is
    recomputed, and (head) the logits and the loss's probabilities."""

    kept: float
    working: float
    logits: float


class _Saves(NamedTuple):
    """A part's saves prepared once: each saved tensor numbered, its bytes as a polynomial."""

    part: Part
    every: tuple[tuple[int, Poly], ...]
    core: frozenset[int]  # tensors the attention core writes and saves (selective drops them)
    checkpoint: Poly | None
    logits: tuple[Poly, ...]
    derived: tuple[Derived, ...]  # sizes computed per point (windows, experts touched)


_PREPARED: dict[int, _Saves] = {}


def _prepare(part: Part) -> _Saves:
    entry = _PREPARED.get(id(part))
    if entry is not None and entry.part is part:
        return entry
    keys: dict[Tensor, int] = {}
    every = []
    logits = []
    exprs = []
    for op in part.forward:
        if op.fn is Fn.LOSS:  # the logits and the loss's probabilities
            logits += [op.reads[0].nbytes.poly(), *(a.nbytes.poly() for a in op.saves)]
            continue
        for a in op.saves:
            every.append((keys.setdefault(a.tensor, len(keys)), a.nbytes.poly()))
            exprs.append(a.nbytes)
    made = {a.tensor for op in part.core for a in op.writes}
    core = frozenset(keys[a.tensor] for op in part.core for a in op.saves if a.tensor in made)
    checkpoint = part.checkpoint.nbytes.poly() if part.checkpoint is not None else None
    entry = _Saves(part, tuple(every), core, checkpoint, tuple(logits), derived_in(exprs))
    _PREPARED[id(part)] = entry
    return entry


def _value(poly: Poly, env: dict) -> float:
    total = 0.0
    for mono, coef in poly.items():
        for name in mono:
            coef *= env[name]
        total += coef
    return total


def part_memory(part: Part, recompute: str, env: dict) -> PartMemory:
    """What `part` keeps for backward at `env` (b, s, t, s_logits) under `recompute`: each
    saved tensor once, at the most bytes any op keeps of it."""
    prep = _prepare(part)
    if prep.derived:
        free = tuple(env[name] for name in FREE)
        env = {**env, **{d.name: d.fn(*free) for d in prep.derived}}
    logits = sum(_value(p, env) for p in prep.logits)
    every: dict[int, float] = {}
    for key, poly in prep.every:
        value = _value(poly, env)
        if value > every.get(key, 0.0):
            every[key] = value
    total = sum(every.values())
    if recompute == "full" and prep.checkpoint is not None:
        return PartMemory(_value(prep.checkpoint, env), total, logits)
    if recompute == "selective" and part.core:
        kept = sum(v for k, v in every.items() if k not in prep.core)
        return PartMemory(kept, total - kept, logits)
    return PartMemory(total, 0.0, logits)


class StageMemory(NamedTuple):
    """Per-device bytes of one pipeline stage (perfest.training.results renders them)."""

    weights: float
    gathered: float
    gradients: float
    master: float
    optimizer: float
    activations: float
    logits: float

    @property
    def total(self) -> float:
        return sum(self)


def in_flight(m: int, pp: int, stage: int, v: int) -> float:
    """Micro-batches whose activations stage `stage` holds at its peak (1F1B; interleaved)."""
    held = min(m, pp - stage)
    return held * (1 + (pp - 1) / (pp * v)) if v > 1 else held


def largest_micro_batch(fixed: float, per_sequence: float, capacity: float) -> int:
    """The largest micro-batch whose memory fits: fixed + b·per_sequence ≤ capacity."""
    if per_sequence <= 0:
        return 0
    return max(0, floor((capacity - fixed) / per_sequence))
