"""`perfest.estimate_training`: one layout's training step as a `TrainingEstimate`.

Definitions (README, "Training"):

    tokens per step      B·S (B global batch in sequences, S sequence length)
    model FLOPs          3 × the forward pass's matrix-product FLOPs of the whole model at the
                         global batch, dense attention: per token 6·N_matmul + 12·L·n_h·d·S
                         (N_matmul the weights of the matrix products, LM head included, a
                         mixture's experts at k/E — each token runs its k experts; PaLM's
                         6N + 12·L·H·Q·T, Chowdhery et al. 2022, App. B; Megatron's
                         72·B·S·L·h²·(1 + S/(6h) + V/(12·h·L)) for a GPT block, Narayanan et
                         al. 2021) — the same for every layout
    hardware FLOPs       the matrix-product FLOPs every device executes: forward, backward,
                         recomputation and the scores flash attention recomputes in backward
    MFU, HFU             model (hardware) FLOPs per second / (N devices · dense peak of the
                         matmul dtype)
"""

from __future__ import annotations

from functools import lru_cache

from perfest.catalog import load_hardware, load_model
from perfest.errors import SpecError
from perfest.graph import Graph, Segment
from perfest.plan import Plan, Point
from perfest.results import Note, NoteKind
from perfest.roofline import Rates
from perfest.sharding import link
from perfest.specs import HardwareSpec, ModelConfig
from perfest.training.compiled import training_rates
from perfest.training.config import StepLayout, TrainConfig, make_config, resolve
from perfest.training.evaluate import (
    Compiled,
    MicroBatch,
    StepNumbers,
    compile_step,
    micro_batch,
    recompute_of,
    sharded,
    step,
)
from perfest.training.memory import largest_micro_batch
from perfest.training.optimizer import optimizer_ops
from perfest.training.parallel import step_links
from perfest.training.results import (
    Breakdown,
    CollectiveTime,
    PartRun,
    TimeToTrain,
    TrainingEstimate,
    TrainMemory,
    TrainPhase,
)
from perfest.training.step import Shape, build_parts, layer_keys


def estimate_training(
    model: str | ModelConfig,
    hardware: str | HardwareSpec,
    config: TrainConfig | None = None,
    *,
    tokens: float | None = None,
    **fields,
) -> TrainingEstimate:
    """Estimate one training step of `model` on `hardware`.

    Keywords are TrainConfig's fields: gpus, tp=1, pp=1, cp=1, dp=None, global_batch,
    micro_batch=1, seq_len, dtype="bf16", optimizer="adamw", recompute="none", zero=0,
    interleave=1, sequence_parallel=False, attention="flash", grad_dtype, dropout, and the
    efficiency overrides; `tokens` adds the time to train on that many tokens.
    """
    m, hw = load_model(model), load_hardware(hardware)
    c = make_config(config, **fields)
    if tokens is not None and tokens <= 0:
        raise SpecError(f"tokens: {tokens:g} must be positive")
    return run(m, hw, c, resolve(m, hw, c), tokens)


def scaling(
    model: str | ModelConfig,
    hardware: str | HardwareSpec,
    gpus: tuple[int, ...],
    *,
    weak: bool = False,
    tokens: float | None = None,
    **fields,
) -> tuple[TrainingEstimate, ...]:
    """The same layout (tp, pp, cp; dp = N/(tp·pp·cp)) on each GPU count: strong scaling at
    the global batch given, or `weak` scaling at its batch per GPU (the global batch is the
    first count's and grows with N)."""
    m, hw = load_model(model), load_hardware(hardware)
    base = make_config(gpus=gpus[0], **fields)
    out = []
    for n in gpus:
        batch = base.global_batch
        if weak:
            if base.global_batch * n % gpus[0]:
                raise SpecError(
                    f"global_batch: {base.global_batch} sequences per {gpus[0]} GPUs is not a "
                    f"whole batch on {n} GPUs"
                )
            batch = base.global_batch * n // gpus[0]
        c = make_config(base, gpus=n, global_batch=batch)
        out.append(run(m, hw, c, resolve(m, hw, c), tokens))
    return tuple(out)


def run(m: ModelConfig, hw: HardwareSpec, c: TrainConfig, lay: StepLayout,
        tokens: float | None = None) -> TrainingEstimate:  # fmt: skip
    comp = compile_step(m, hw, c, lay.tp, lay.cp, lay.sequence_parallel, lay.ep, lay.etp)
    mb = micro_batch(comp, lay.micro_batch, c.seq_len, lay.cp, c.mlm_positions)
    n = step(comp, mb, lay, step_links(hw, lay.tp, lay.cp, lay.dp, lay.pp, lay.ep, lay.etp))
    return report(m, hw, c, lay, comp, mb, n, tokens)


@lru_cache(maxsize=512)
def forward_flops_per_sequence(model: ModelConfig, seq: int, scored: int | None = None) -> float:
    """Matrix-product FLOPs of one sequence's forward pass through the whole model (one
    device, dense attention — windowed layers over their window —, the LM head over every
    position or the `scored` ones (an encoder's masked positions), each token through its k
    experts)."""
    parts = build_parts(Shape(model, "bf16", "fp32", True, 1, 1, False))
    env = {"b": 1, "s": seq, "t": seq, "s_logits": seq if scored is None else scored}
    keys = layer_keys(model)
    return sum((keys.count(kind) if kind.is_layer else 1) * op.gemm.flops.value(env)
               for kind, part in parts.items() for op in part.forward
               if op.gemm is not None)  # fmt: skip


def model_flops_per_step(
    model: ModelConfig, global_batch: int, seq: int, scored: int | None = None
) -> float:
    return 3.0 * global_batch * forward_flops_per_sequence(model, seq, scored)


def hardware_flops_per_step(n: StepNumbers, mb: MicroBatch, lay: StepLayout) -> float:
    devices = lay.tp * lay.cp * lay.dp
    total = 0.0
    for stage in n.stages:
        for kind, count in stage.counts:
            t = mb.times[kind]
            rec = recompute_of(t, lay.recompute) if kind.is_layer else None
            per = t.forward.totals.matmul_flops + t.backward.totals.matmul_flops
            per += rec.totals.matmul_flops if rec is not None else 0.0
            total += stage.copies * count * per
    return total * devices * lay.micro_batches


def report(m: ModelConfig, hw: HardwareSpec, c: TrainConfig, lay: StepLayout, comp: Compiled,
           mb: MicroBatch, n: StepNumbers, tokens: float | None) -> TrainingEstimate:  # fmt: skip
    gpus = lay.devices
    tokens_per_step = c.global_batch * c.seq_len
    per_s = tokens_per_step / n.step_s
    peak = hw.peak_flops(c.dtype)
    model_flops = model_flops_per_step(m, c.global_batch, c.seq_len, c.mlm_positions)
    hw_flops = hardware_flops_per_step(n, mb, lay)
    r = training_rates(hw, c.dtype, c.compute_efficiency, c.memory_efficiency)
    phases = _phases(comp, mb, n, lay, c, r)
    roofline = sum(p.roofline_time_s for p in phases)
    memory = _memory(n, hw, lay)
    notes = _notes(m, hw, c, memory)
    train = None
    if tokens is not None:
        seconds = tokens / per_s
        train = TimeToTrain(tokens, seconds, seconds / 86400, seconds * gpus / 3600)
    busy = n.step_s * gpus
    return TrainingEstimate(
        m.name,
        hw.name,
        c,
        lay,
        _parameters(m),
        n.step_s,
        roofline,
        tokens_per_step,
        per_s,
        per_s / gpus,
        model_flops,
        hw_flops,
        model_flops / busy / 1e12,
        hw_flops / busy / 1e12,
        model_flops / (busy * peak),
        hw_flops / (busy * peak),
        peak / 1e12,
        _breakdown(n, mb, lay),
        phases,
        _collectives(n, mb, lay, hw),
        memory,
        train,
        notes,
    )


def _parameters(m: ModelConfig) -> int:
    """What the step trains (perfest.training.evaluate.trained_parameters)."""
    from perfest.training.evaluate import trained_parameters

    return trained_parameters(m)


def _on_critical(n: StepNumbers, mb: MicroBatch, lay: StepLayout):
    """(kind, count, forward, backward, recompute) of each part of the critical stage."""
    out = []
    for kind, count in n.stages[n.critical].counts:
        t = mb.times[kind]
        rec = recompute_of(t, lay.recompute) if kind.is_layer else None
        out.append((kind, count, t.forward, t.backward, rec))
    return out


def _breakdown(n: StepNumbers, mb: MicroBatch, lay: StepLayout) -> Breakdown:
    k = lay.micro_batches
    fwd = bwd = rec = comm = 0.0
    for _, count, f, b, r in _on_critical(n, mb, lay):
        fwd += count * f.compute_s
        bwd += count * b.compute_s
        comm += count * (f.comm_s + b.comm_s)
        if r is not None:
            rec += count * r.compute_s
            comm += count * r.comm_s
    stage = n.stages[n.critical]
    comm += stage.sends_s + stage.zero3.exposed_s
    optimizer = n.stages[n.finishing].tail[2]
    return Breakdown(k * fwd, k * bwd, k * rec, k * comm + n.tail_s - optimizer, n.bubble_s,
                     optimizer)  # fmt: skip


def _phases(comp: Compiled, mb: MicroBatch, n: StepNumbers, lay: StepLayout, c: TrainConfig,
            r: Rates) -> tuple[TrainPhase, ...]:  # fmt: skip
    k = lay.micro_batches
    rows = {"forward": [], "backward": [], "recompute": []}
    for kind, count, f, b, rec in _on_critical(n, mb, lay):
        part = comp.parts[kind]
        rows["forward"].append((f, PartRun(kind.name, count, part.forward, mb.point)))
        rows["backward"].append((b, PartRun(kind.name, count, part.backward, mb.point)))
        if rec is not None:
            plan = part.core if lay.recompute == "selective" else part.forward
            rows["recompute"].append((rec, PartRun(kind.name, count, plan, mb.point)))
    phases = []
    for name, items in rows.items():
        per = sum(run.count * t.compute_s for t, run in items)
        phases.append(TrainPhase(
            name, k * per, per,
            k * sum(run.count * t.totals.flops for t, run in items),
            k * sum(run.count * t.totals.matmul_flops for t, run in items),
            k * sum(run.count * t.totals.bytes for t, run in items),
            k * sum(run.count * t.totals.roofline_time_s for t, run in items),
            tuple(run for _, run in items)))  # fmt: skip
    return (*phases, _optimizer_phase(comp, n, lay, c, r))


def _optimizer_phase(comp: Compiled, n: StepNumbers, lay: StepLayout, c: TrainConfig,
                     r: Rates) -> TrainPhase:  # fmt: skip
    stage = n.stages[n.finishing]
    grads = sharded(stage.replicas, lay.zero >= 2)
    shard = sharded(stage.replicas, lay.zero >= 1)
    ops = optimizer_ops(c.optimizer, c.storage, c.grad, c.mixed, round(grads), round(shard))
    plan = Plan(Graph((Segment("optimizer", tuple(ops), 1),)), r, {})
    totals = plan.evaluate(Point(1, 1, 1, 1))
    return TrainPhase("optimizer", stage.tail[2], stage.tail[2], totals.flops, 0.0,
                      totals.bytes, totals.roofline_time_s,
                      (PartRun("optimizer", 1, plan, Point(1, 1, 1, 1)),))  # fmt: skip


def _collectives(n: StepNumbers, mb: MicroBatch, lay: StepLayout,
                 hw: HardwareSpec) -> tuple[CollectiveTime, ...]:  # fmt: skip
    return (*_in_parts(n, mb, lay, hw), *_between_parts(n, lay, hw))


def _in_parts(n: StepNumbers, mb: MicroBatch, lay: StepLayout, hw: HardwareSpec) -> list:
    """Tensor- and context-parallel collectives of the critical stage's parts, per step."""
    k = lay.micro_batches
    out = []
    tp_link = link(hw, lay.tp).name if lay.tp > 1 else ""
    cp_link = link(hw, lay.cp, lay.tp).name if lay.cp > 1 else ""
    ep_link = link(hw, lay.ep, lay.etp).name if lay.ep > 1 else ""
    ep_link = ep_link or (link(hw, lay.etp).name if lay.etp > 1 else "")
    cp_total = cp_exposed = 0.0
    for phase, index in (("forward", 2), ("backward", 3), ("recompute", 4)):
        total = exposed = ep_total = ep_exposed = 0.0
        for item in _on_critical(n, mb, lay):
            t, count = item[index], item[1]
            if t is None:
                continue
            total += count * (t.totals.comm_time_s + t.tp_s)
            exposed += count * (t.totals.comm_time_s + t.tp_exposed_s)
            cp_total += count * t.cp_s
            cp_exposed += count * t.cp_exposed_s
            ep_total += count * t.ep_s
            ep_exposed += count * t.ep_exposed_s
        if total:
            out.append(CollectiveTime(f"tensor parallel ({phase})", "tp", tp_link, k * total,
                                      k * exposed))  # fmt: skip
        if ep_total:
            out.append(CollectiveTime(f"expert all-to-all and gathers ({phase})", "ep", ep_link,
                                      k * ep_total, k * ep_exposed))  # fmt: skip
    if cp_total:
        out.append(CollectiveTime("context-parallel ring (K, V)", "cp", cp_link, k * cp_total,
                                  k * cp_exposed))  # fmt: skip
    return out


def _between_parts(n: StepNumbers, lay: StepLayout, hw: HardwareSpec) -> list:
    """Pipeline sends, ZeRO-3, data-parallel reductions and the end of the step's collectives."""
    k = lay.micro_batches
    links = step_links(hw, lay.tp, lay.cp, lay.dp, lay.pp, lay.ep, lay.etp)
    stage = n.stages[n.critical]
    reduce, gather, _ = n.stages[n.finishing].tail
    kind = "all-reduce" if lay.zero == 0 else "reduce-scatter"
    dp_link = links.dp or links.edp  # the experts' replicas may be all there is (dp·cp = 1)
    rows = [
        ("pipeline sends", "pp", links.pp, k * stage.sends_s, k * stage.sends_s),
        ("ZeRO-3 weight gathers, gradient reduce-scatters", "dp", dp_link,
         k * stage.zero3.total_s, k * stage.zero3.exposed_s),
        (f"data-parallel gradient {kind}", "dp", dp_link, reduce.total_s, reduce.exposed_s),
        ("data-parallel weight all-gather (ZeRO-1/2)", "dp", dp_link, gather.total_s,
         gather.exposed_s),
        ("tied-embedding gradient all-reduce", "pp", links.ends, n.tied, n.tied),
        ("gradient-norm all-reduce", "all", links.world, n.norm, n.norm),
    ]  # fmt: skip
    return [CollectiveTime(name, axis, lk.name, total, exposed)
            for name, axis, lk, total, exposed in rows if total]  # fmt: skip


def _largest(mem, capacity: float, micro_batch: int) -> int:
    """The largest micro-batch with which one stage's memory fits the device."""
    fixed = mem.weights + mem.gathered + mem.gradients + mem.master + mem.optimizer
    return largest_micro_batch(fixed, (mem.activations + mem.logits) / micro_batch, capacity)


def _memory(n: StepNumbers, hw: HardwareSpec, lay: StepLayout) -> TrainMemory:
    mem = n.memory
    capacity = hw.memory_bytes
    total = mem.total
    # every stage must fit: the stage needing the most now need not be the first to overflow
    # at a larger micro-batch (the last stage's logits grow faster than the first's weights)
    largest = min(_largest(stage.memory, capacity, lay.micro_batch) for stage in n.stages)
    return TrainMemory(
        n.memory_stage,
        mem.weights,
        mem.gathered,
        mem.gradients,
        mem.master,
        mem.optimizer,
        mem.activations,
        mem.logits,
        total,
        capacity,
        total <= capacity,
        largest,
    )


def _notes(m: ModelConfig, hw: HardwareSpec, c: TrainConfig, mem: TrainMemory) -> tuple:
    notes = []
    if not mem.fits:
        notes.append(Note(NoteKind.MEMORY,
                          f"memory: needs {mem.per_device_bytes / 1e9:.1f} GB per device but "
                          f"{hw.name} has {mem.capacity_bytes / 1e9:.0f} GB (largest micro-batch "
                          f"that fits: {mem.max_micro_batch})"))  # fmt: skip
    if c.seq_len > m.max_position_embeddings:
        notes.append(Note(NoteKind.POSITIONS,
                          f"seq_len {c.seq_len} exceeds {m.name}'s max_position_embeddings "
                          f"{m.max_position_embeddings}"))  # fmt: skip
    return tuple(notes)
