"""The best layout for a cluster: every tp × pp × cp × dp × micro-batch × recompute × ZeRO ×
interleave that divides the model and fits, ranked by tokens/s.

    tp   divides the GPUs and the attention heads
    cp   divides the rest and the sequence
    ep   (mixtures of experts) divides the experts, with etp = 1 or tp (the experts' own
         tensor parallelism: Megatron-Bridge's MoE recipes use 1, Megatron-Core defaults to tp),
         etp·ep dividing tp·cp·dp (perfest.training.config)
    pp   divides the rest and the layers (an even split, as Megatron-LM requires)
    dp   the GPUs left: N / (tp·cp·pp); the global batch must split into dp·b·m
    b    every micro-batch size dividing B/dp
    v    1, or a number of virtual stages dividing L/pp when pp > 1 and m is a multiple of pp
    recompute none | selective | full;  ZeRO 0–3 (only 0 when nothing shares the weights)

Sequence parallelism is on whenever tp > 1 (the same wire bytes as tp's all-reduces, and the
norms, dropouts and saved activations divided by tp). Each (tp, cp, ep, etp) is compiled once
and each micro-batch size evaluated once (perfest.training.evaluate); the layouts on top of
them are arithmetic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from perfest.catalog import load_hardware, load_model
from perfest.errors import SpecError
from perfest.specs import HardwareSpec, ModelConfig
from perfest.training.config import (
    RECOMPUTE,
    StepLayout,
    TrainConfig,
    check_network,
    check_trainable,
    make_config,
)
from perfest.training.estimate import model_flops_per_step
from perfest.training.evaluate import compile_step, micro_batch, recompute_of, step
from perfest.training.parallel import step_links

#: The TrainConfig fields a search chooses itself.
LAYOUT_FIELDS = ("tp", "pp", "cp", "dp", "ep", "etp", "micro_batch", "interleave", "zero",
                 "recompute", "sequence_parallel")  # fmt: skip


class Candidate(NamedTuple):
    """One layout's numbers (a named tuple: a search makes tens of thousands)."""

    layout: StepLayout
    step_s: float
    tokens_per_s: float
    mfu: float
    memory_bytes: float
    fits: bool
    compute_s: float  # forward + backward, the slowest stage, whole step
    recompute_s: float
    communication_s: float  # exposed
    bubble_s: float
    optimizer_s: float

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self.layout, name) for name in self.layout._fields}
        data.update({name: getattr(self, name) for name in self._fields[1:]})
        return data


@dataclass(frozen=True, slots=True)
class Ranked:
    candidate: Candidate
    reason: str


@dataclass(frozen=True, slots=True)
class SearchResult:
    model: str
    hardware: str
    gpus: int
    global_batch: int
    seq_len: int
    evaluated: int
    seconds: float
    top: tuple[Ranked, ...]
    candidates: tuple[Candidate, ...]  # every layout evaluated, fastest first

    @property
    def fitting(self) -> int:
        return sum(c.fits for c in self.candidates)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "hardware": self.hardware,
            "gpus": self.gpus,
            "global_batch": self.global_batch,
            "seq_len": self.seq_len,
            "evaluated": self.evaluated,
            "fitting": self.fitting,
            "seconds": self.seconds,
            "top": [{**r.candidate.to_dict(), "reason": r.reason} for r in self.top],
            "candidates": [c.to_dict() for c in self.candidates],
        }


def divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def shapes(model: ModelConfig, gpus: int, seq: int, flash: bool = True) -> list[tuple[int, int]]:
    """(tp, cp) pairs that divide the GPUs, the heads and the sequence (context parallelism
    runs flash attention only)."""
    return [(tp, cp) for tp in divisors(gpus) if model.n_h % tp == 0
            for cp in divisors(gpus // tp) if seq % cp == 0 and (flash or cp == 1)]  # fmt: skip


def search(
    model: str | ModelConfig,
    hardware: str | HardwareSpec,
    config: TrainConfig | None = None,
    *,
    top: int = 10,
    progress: Callable[..., None] | None = None,
    **fields,
) -> SearchResult:
    """Rank every layout of `gpus` devices for `model` on `hardware` (module docstring);
    `fields` are TrainConfig's (the layout fields are what the search varies)."""
    m, hw = load_model(model), load_hardware(hardware)
    c = make_config(config, **fields)
    hw.peak_flops(c.dtype)
    check_trainable(m, c)
    check_network(hw, c.gpus)
    start = time.perf_counter()
    found: list[Candidate] = []
    pairs = shapes(m, c.gpus, c.seq_len, c.attention == "flash")
    for done, (tp, cp) in enumerate(pairs):
        found += _shape(m, hw, c, tp, cp)
        if progress is not None:
            progress(done=done + 1)
    if not found:
        raise SpecError(
            f"gpus: no layout of {c.gpus} GPUs divides {m.name} and the global batch "
            f"{c.global_batch} (try another --global-batch or --gpus)"
        )
    found.sort(key=lambda x: (not x.fits, -x.tokens_per_s))
    return SearchResult(m.name, hw.name, c.gpus, c.global_batch, c.seq_len, len(found),
                        time.perf_counter() - start, rank(found, top), tuple(found))  # fmt: skip


def expert_layouts(model: ModelConfig, gpus: int, tp: int) -> list[tuple[int, int]]:
    """(ep, etp) pairs to try: ep dividing the experts and the GPUs, etp 1 or tp; (1, 1) for a
    dense model."""
    if not model.moe:
        return [(1, 1)]
    return [(ep, etp) for etp in sorted({1, tp}) for ep in divisors(model.num_experts)
            if gpus % (ep * etp) == 0]  # fmt: skip


def _shape(m: ModelConfig, hw: HardwareSpec, c: TrainConfig, tp: int, cp: int) -> list:
    """Every layout on one (tp, cp): compile each expert layout once, evaluate each
    micro-batch once."""
    out = []
    for ep, etp in expert_layouts(m, c.gpus, tp):
        comp = compile_step(m, hw, c, tp, cp, True, ep, etp)
        out += _layouts(m, hw, c, comp, (tp, cp, ep, etp))
    return out


def _layouts(m: ModelConfig, hw: HardwareSpec, c: TrainConfig, comp, degrees: tuple) -> list:
    tp, cp, ep, etp = degrees
    capacity = hw.memory_bytes
    peak = hw.peak_flops(c.dtype)
    flops = model_flops_per_step(m, c.global_batch, c.seq_len, c.mlm_positions)
    tokens = c.global_batch * c.seq_len
    out = []
    rest = c.gpus // (tp * cp)
    for pp in (p for p in divisors(rest) if m.L % p == 0):
        dp = rest // pp
        if c.global_batch % dp or (tp * cp * dp) % (ep * etp):
            continue
        links = step_links(hw, tp, cp, dp, pp, ep, etp)
        edp = tp * cp * dp // (ep * etp)  # ranks sharing the experts (for a dense model: none)
        shards = dp * cp > 1 or (m.moe and edp > 1)  # ZeRO has something to divide
        for b in divisors(c.global_batch // dp):
            mb = micro_batch(comp, b, c.seq_len, cp, c.mlm_positions)
            n_micro = c.global_batch // (dp * b)
            vs = [1] + [v for v in divisors(m.L // pp)[1:] if pp > 1 and n_micro % pp == 0]
            for v in vs:
                for recompute in RECOMPUTE:
                    for zero in (0, 1, 2, 3) if shards else (0,):
                        lay = StepLayout(tp, pp, cp, dp, b, n_micro, v, tp > 1, zero, recompute,
                                         ep, etp)  # fmt: skip
                        out.append(_candidate(comp, mb, lay, links, tokens, flops, peak,
                                              capacity))  # fmt: skip
    return out


def _candidate(comp, mb, lay, links, tokens, flops, peak, capacity) -> Candidate:
    n = step(comp, mb, lay, links)
    stage = n.stages[n.critical]
    k = lay.micro_batches
    compute = recompute = 0.0
    for kind, count in stage.counts:
        t = mb.times[kind]
        compute += count * (t.forward.compute_s + t.backward.compute_s)
        r = recompute_of(t, lay.recompute) if kind.is_layer else None
        if r is not None:
            recompute += count * r.compute_s
    optimizer = n.stages[n.finishing].tail[2]
    comm = n.step_s - n.bubble_s - optimizer - k * (compute + recompute)
    total = n.memory.total
    return Candidate(lay, n.step_s, tokens / n.step_s, flops / (n.step_s * lay.devices * peak),
                     total, total <= capacity, k * compute, k * recompute, comm, n.bubble_s,
                     optimizer)  # fmt: skip


#: What a layout spends time on beyond the best one's, with the words that name it.
REASONS = (
    ("bubble_s", "pipeline bubble"),
    ("communication_s", "exposed communication"),
    ("recompute_s", "recompute"),
    ("compute_s", "slower compute (smaller or less efficient kernels)"),
    ("optimizer_s", "optimizer step"),
)


def rank(found: list[Candidate], top: int) -> tuple[Ranked, ...]:
    """The `top` fastest layouts that fit, each with the one reason it wins or loses."""
    fitting = [c for c in found if c.fits]
    if not fitting:
        return ()
    best = fitting[0]
    out = [Ranked(best, _why_best(best, found))]
    for c in fitting[1:top]:
        field, words = max(REASONS, key=lambda r: getattr(c, r[0]) - getattr(best, r[0]))
        extra = getattr(c, field) - getattr(best, field)
        slower = c.step_s / best.step_s - 1
        out.append(Ranked(c, f"{slower:+.1%} step time: {words} (+{_s(extra)})"))
    return tuple(out)


def _why_best(best: Candidate, found: list[Candidate]) -> str:
    """The best layout's edge: what the fastest layout that does not fit would have saved, or
    its own largest overhead."""
    faster = [c for c in found if not c.fits and c.tokens_per_s > best.tokens_per_s]
    if faster:
        f = faster[0]
        gain = f.tokens_per_s / best.tokens_per_s - 1
        return (f"fastest that fits in memory ({_layout(f.layout)} would be {gain:.0%} faster "
                f"but needs {f.memory_bytes / 1e9:.0f} GB)")  # fmt: skip
    field, words = max(REASONS[:3], key=lambda r: getattr(best, r[0]))
    share = getattr(best, field) / best.step_s
    return f"fastest; its largest overhead: {words} {share:.0%} of the step"


def _layout(lay: StepLayout) -> str:
    parts = [f"tp{lay.tp}", f"pp{lay.pp}", f"cp{lay.cp}", f"dp{lay.dp}", f"b{lay.micro_batch}"]
    if lay.ep > 1 or lay.etp > 1:
        parts.insert(4, f"ep{lay.ep}" + (f" etp{lay.etp}" if lay.etp > 1 else ""))
    if lay.interleave > 1:
        parts.append(f"v{lay.interleave}")
    return " ".join(parts)


def _s(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"
