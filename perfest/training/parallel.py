"""Communication outside the parts — data parallelism, ZeRO, the pipeline — and the schedule.

Ranks are numbered tp fastest, then cp, dp, pp (Megatron-LM's order), and every collective
runs on the link its ranks span (perfest.sharding.link: the node's link while they fit in one
node, else the network), α–β: T = α per collective (per bucket) + wire bytes / bandwidth, the
ring's wire bytes being 2(N − 1)/N of the message for an all-reduce, (N − 1)/N for an
all-gather or a reduce-scatter, the message for a point-to-point send.

    group                        ranks (peers, stride)
    data parallel (grads, ZeRO)  D = dp·cp ranks, tp apart (context-parallel ranks hold the
                                 same weights, so Megatron reduces over both)
    expert data parallel         the routed experts' weights: edp = tp·cp·dp/(etp·ep) ranks,
                                 etp·ep apart (Megatron-Core's expert rank generator: etp
                                 fastest, then ep, then edp); the rest of the model over D
    pipeline neighbours          2 ranks, tp·cp·dp apart
    first and last stage         2 ranks, (pp − 1)·tp·cp·dp apart (tied embedding gradients)
    every rank                   the gradient norm's all-reduce (its latency)

Overlap (what is hidden and what is exposed):
- **Gradient reduction** (ZeRO 0: all-reduce; ZeRO 1 and 2: reduce-scatter) runs in buckets of
  max(40M, 1M·D) parameters (Megatron-LM's DistributedDataParallelConfig.bucket_size default)
  as the last micro-batch's backward produces them: exposed = max(T_last bucket,
  T_reduction − T_backward of one micro-batch). ZeRO-1/2 then all-gather the updated 16-bit
  weights, overlapped the same way with the next step's first forward. A mixture of experts
  has two groups of replicas (`Replicas`): the dense weights over D, the experts' over edp,
  reduced one after the other in the same window (separate buffers, as Megatron keeps them).
- **ZeRO-3** gathers each unit's (layer's) weights before its forward and again before its
  backward, and reduce-scatters its gradients after, every micro-batch; each gather is
  prefetched one unit ahead: exposed = the first gather + Σ max(0, T_comm − T_compute) over the
  units that follow (in backward the gather of the next unit and the reduction of the previous
  share the window).
- **Pipeline** sends are point-to-point per micro-batch boundary and block the stage (as in
  Megatron's 1F1B): 2·v per micro-batch and stage (activations forward, gradients backward),
  b·s·h elements each, of which each of the tp ranks sends 1/tp: with sequence parallelism
  the rows are already split; without it Megatron's scatter/gather optimization splits them
  and all-gathers them over the tensor-parallel link on arrival (Narayanan et al. 2021, §4.1).

The schedule (Narayanan et al. 2021): with per-micro-batch stage times t_i (forward, backward,
recompute and the exposed communication of stage i), m micro-batches and v virtual stages per
device, T = m·max_i t_i + (Σ_i t_i − max_i t_i)/v — the flow-shop makespan of identical jobs for
v = 1; equal stages give m·t + (pp − 1)·t/v, the bubble fraction (pp − 1)/(v·m).
"""

from __future__ import annotations

from typing import NamedTuple

from perfest.ops import CollectiveKind
from perfest.sharding import Link, link
from perfest.specs import HardwareSpec

#: Megatron-LM's default bucket: max(40,000,000, 1,000,000 · D) parameters.
BUCKET_PARAMETERS = 40_000_000
BUCKET_PER_RANK = 1_000_000


def wire_factor(kind: CollectiveKind | None, peers: int) -> float:
    """Bytes on the wire per byte of message (None: a point-to-point send)."""
    if kind is None:
        return 1.0
    if kind is CollectiveKind.ALL_REDUCE:
        return 2 * (peers - 1) / peers
    return (peers - 1) / peers


def collective_s(kind: CollectiveKind | None, peers: int, nbytes: float, lk: Link,
                 pieces: int = 1) -> float:  # fmt: skip
    """α–β time of a collective of `nbytes` per rank, sent in `pieces` (buckets)."""
    if peers <= 1 or nbytes <= 0:
        return 0.0
    return pieces * lk.latency_s + wire_factor(kind, peers) * nbytes / lk.bandwidth


class Links(NamedTuple):
    """The links of a step's groups (None where the group has one rank)."""

    tp: Link | None
    dp: Link | None
    pp: Link | None
    ends: Link | None
    world: Link | None
    edp: Link | None = None  # the experts' data-parallel group


def step_links(hw: HardwareSpec, tp: int, cp: int, dp: int, pp: int, ep: int = 1,
               etp: int = 1) -> Links:  # fmt: skip
    d = dp * cp
    edp = tp * cp * dp // (ep * etp)
    return Links(
        link(hw, tp) if tp > 1 else None,
        link(hw, d, tp) if d > 1 else None,
        link(hw, 2, tp * cp * dp) if pp > 1 else None,
        link(hw, 2, (pp - 1) * tp * cp * dp) if pp > 1 else None,
        link(hw, tp * cp * dp * pp) if tp * cp * dp * pp > 1 else None,
        link(hw, edp, ep * etp) if edp > 1 else None,
    )


class Replicas(NamedTuple):
    """Parameters held alike by `ranks` devices (their gradients reduced, their optimizer
    states sharded by ZeRO over them), and the link those ranks span."""

    parameters: float
    ranks: int
    link: Link | None


def buckets(parameters: float, d: int) -> int:
    size = max(BUCKET_PARAMETERS, BUCKET_PER_RANK * d)
    return max(1, -(-int(parameters) // size))


class Comm(NamedTuple):
    """A collective's time per step: all of it, and what the step waits for."""

    total_s: float
    exposed_s: float


def _bucketed(kind: CollectiveKind, groups: tuple[Replicas, ...], nbytes: float,
              window: float) -> Comm:  # fmt: skip
    """Each group's collective in buckets, one group after the other, beside `window`: exposed
    = max(the largest single bucket, total − window)."""
    total = piece = 0.0
    for g in groups:
        if g.link is None:
            continue
        n = buckets(g.parameters, g.ranks)
        total += collective_s(kind, g.ranks, g.parameters * nbytes, g.link, n)
        piece = max(piece, collective_s(kind, g.ranks, g.parameters * nbytes / n, g.link))
    return Comm(total, max(piece, total - window))


def gradient_reduction(groups: tuple[Replicas, ...], grad_bytes: float, zero: int,
                       window: float) -> Comm:  # fmt: skip
    """All-reduce (ZeRO 0) or reduce-scatter (ZeRO ≥ 1) of the stage's gradients, in buckets,
    beside the last micro-batch's backward (`window`)."""
    if zero == 3:
        return Comm(0.0, 0.0)
    kind = CollectiveKind.ALL_REDUCE if zero == 0 else CollectiveKind.REDUCE_SCATTER
    return _bucketed(kind, groups, grad_bytes, window)


def weight_gather(groups: tuple[Replicas, ...], weight_bytes: float, zero: int,
                  window: float) -> Comm:  # fmt: skip
    """ZeRO-1/2: all-gather of the updated weights, beside the next step's first forward."""
    if zero not in (1, 2):
        return Comm(0.0, 0.0)
    return _bucketed(CollectiveKind.ALL_GATHER, groups, weight_bytes, window)


class Unit(NamedTuple):
    """A run of identical units of a stage for ZeRO-3: how many, their parameters each (of
    which `experts` are routed experts' weights), and the forward and backward time of one."""

    count: int
    parameters: float
    forward_s: float
    backward_s: float
    experts: float = 0.0


def zero3(units: list[Unit], weight_bytes: float, grad_bytes: float, dense: tuple[int, Link | None],
          experts: tuple[int, Link | None] = (1, None)) -> Comm:  # fmt: skip
    """One micro-batch's ZeRO-3 traffic on a stage: gather every unit's weights for forward and
    for backward, reduce-scatter its gradients, each over the ranks sharing them (`dense`: D
    ranks and their link; `experts`: edp and theirs); each prefetched one unit ahead. Units in
    forward order k = 0 … n − 1 (runs of identical units are summed in closed form):

        forward   ag_0 + Σ_k max(0, ag_k+1 − f_k)
        backward  ag_n−1 + rs_0 + Σ_k max(0, ag_k−1 + rs_k+1 − b_k)
    """
    if dense[1] is None and experts[1] is None:
        return Comm(0.0, 0.0)

    def both(kind: CollectiveKind, u: Unit, nbytes: float) -> float:
        t = 0.0
        for (ranks, lk), params in ((dense, u.parameters - u.experts), (experts, u.experts)):
            if lk is not None:
                t += collective_s(kind, ranks, params * nbytes, lk)
        return t

    runs = []  # (count, gather, reduce-scatter, forward, backward)
    for u in units:
        if u.count:
            ag = both(CollectiveKind.ALL_GATHER, u, weight_bytes)
            rs = both(CollectiveKind.REDUCE_SCATTER, u, grad_bytes)
            runs.append((u.count, ag, rs, u.forward_s, u.backward_s))
    if not runs:
        return Comm(0.0, 0.0)
    total = sum(c * (2 * ag + rs) for c, ag, rs, _, _ in runs)
    last = len(runs) - 1
    exposed = runs[0][1] + runs[-1][1] + runs[0][2]
    for r, (c, ag, rs, f, b) in enumerate(runs):
        before = runs[r - 1][1] if r > 0 else 0.0  # the gather of the unit before this run
        after = runs[r + 1][2] if r < last else 0.0  # the reduction of the unit after it
        exposed += (c - 1) * max(0.0, ag - f)
        exposed += max(0.0, runs[r + 1][1] - f) if r < last else 0.0
        if c == 1:
            exposed += max(0.0, before + after - b)
        else:
            exposed += max(0.0, before + rs - b) + max(0.0, ag + after - b)
            exposed += (c - 2) * max(0.0, ag + rs - b)
    return Comm(total, exposed)


def pipeline_send_s(nbytes: float, tp: int, sp: bool, links: Links) -> float:
    """One send of `nbytes` (a micro-batch's activations or their gradients) between pipeline
    stages: 1/tp of it per rank, all-gathered over tp on arrival unless sequence-parallel."""
    if links.pp is None:
        return 0.0
    send = collective_s(None, 2, nbytes / tp, links.pp)
    if tp > 1 and not sp:
        send += collective_s(CollectiveKind.ALL_GATHER, tp, nbytes, links.tp)
    return send


class Schedule(NamedTuple):
    steady_s: float  # m · the slowest stage's time per micro-batch
    bubble_s: float  # fill and drain


def pipeline(stage_s: list[float], m: int, v: int) -> Schedule:
    """T = m·max t_i + (Σ t_i − max t_i)/v (module docstring)."""
    slowest = max(stage_s)
    return Schedule(m * slowest, (sum(stage_s) - slowest) / v)
