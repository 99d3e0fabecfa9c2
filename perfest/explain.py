"""`perfest explain`: every op of a pass as the math that costs it, from the op definitions.

For each op: its FLOPs as a formula in symbols (FLOPs = 2·b·s·h·i), the same formula with the
numbers put in, its bytes operand by operand (which tensor, its role and dtype, how many
elements), its intensity against the ridge point of the rate it runs at, its predicted time
and bound, and one sentence on why. The formulas are the ops' own expressions
(perfest.symbols), printed — not a second table that could drift from the numbers; the times
are the plan's rows (perfest.plan), the same evaluation an estimate sums.

Then the totals of one layer and of the whole pass, and the closed forms that apply:

    classic FFN (i = 4h)      16·b·s·h² per layer                 (two [h, 4h] products)
    GPT-style forward         24·b·s·h²·L·(1 + s/(6h)) + 2·b·s·h·V (Kaplan et al. 2020;
                              Narayanan et al. 2021): classic MHA blocks with i = 4h, a
                              prefill (t = s) with logits at every position
    any decoder               2 FLOPs per weight per token, plus attention's 4·b·n_h·s·t·d·L
    encoders, encoder-decoders  the same rule with bidirectional attention (t = s), a BERT-style
                              24·b·s·h²·L·(1 + s/(6h)) + head, and the decoder step's
                              cross-attention (perfest.explain_encoders)
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from perfest.catalog import load_hardware, load_model
from perfest.encoders import ENCODER_DECODER, phases_of
from perfest.errors import SpecError
from perfest.inference import INFERENCE, for_model, make_workload
from perfest.ops import Access, Kind, Op, Role
from perfest.plan import Plan, Point, Row, plan_for
from perfest.roofline import Bound, peak
from perfest.specs import HardwareSpec, ModelConfig, Workload
from perfest.symbols import MEANINGS, Derived, Expr

#: The phases explain can show: inference's (a decoder's perfest.inference.INFERENCE, an
#: encoder's or encoder-decoder's perfest.encoders phases), and one training micro-batch
#: (perfest.explain_train), which is shown only when asked for.
TRAIN = "train"
PHASES = (*dict.fromkeys(spec.name for spec in (*INFERENCE, *ENCODER_DECODER)), TRAIN)


@dataclass(frozen=True, slots=True)
class Operand:
    """The bytes one op moves of one tensor, per instance."""

    direction: str  # read | write
    tensor: str
    role: str
    dtype: str
    bytes_per_element: float
    elements_formula: str
    elements_numbers: str
    elements: float

    @property
    def bytes(self) -> float:
        return self.elements * self.bytes_per_element


@dataclass(frozen=True, slots=True)
class OpExplanation:
    """One op: per-instance FLOPs and bytes from its formulas; times over all `count`."""

    name: str
    group: str
    segment: str
    count: int
    flops_formula: str
    flops_numbers: str
    flops: float
    operands: tuple[Operand, ...]
    bytes: float
    intensity: float | None
    ridge_point: float  # FLOP/byte where this op's rate and the memory bandwidth balance
    t_compute_s: float
    t_memory_s: float
    t_comm_s: float
    overhead_s: float
    time_s: float
    roofline_time_s: float
    bound: Bound
    why: str


@dataclass(frozen=True, slots=True)
class ClosedForm:
    """A hand-derived total and what perfest's ops sum to (equal when it applies)."""

    name: str
    formula: str
    numbers: str
    value: float
    perfest: float


@dataclass(frozen=True, slots=True)
class LayerTotal:
    """One layer of a segment of identical decoder layers (dense, MoE, windowed, …)."""

    segment: str
    count: int
    flops: float
    bytes: float
    time_s: float


@dataclass(frozen=True, slots=True)
class PhaseExplanation:
    phase: str
    point: Point
    derived: tuple[tuple[str, float, str], ...]  # (name, value at this point, formula)
    ops: tuple[OpExplanation, ...]
    layers: tuple[LayerTotal, ...]  # one layer of each decoder segment
    flops: float  # the whole pass
    bytes: float
    time_s: float
    bound: Bound
    closed_forms: tuple[ClosedForm, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    model: str
    hardware: str
    workload: Workload
    symbols: tuple[tuple[str, float, str], ...]  # (name, value, meaning)
    phases: tuple[PhaseExplanation, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "hardware": self.hardware,
            "workload": self.workload.model_dump(mode="json"),
            "symbols": [{"name": n, "value": v, "meaning": m} for n, v, m in self.symbols],
            "phases": [_phase_dict(p) for p in self.phases],
        }


def explain(
    model: str | ModelConfig,
    hardware: str | HardwareSpec,
    workload: Workload | None = None,
    *,
    phase: str | None = None,
    op: str | None = None,
    **fields: Any,
) -> Explanation:
    """Explain the ops of `phase` (default: every inference phase), or of the one op named `op`."""
    m, hw = load_model(model), load_hardware(hardware)
    w = for_model(m, make_workload(workload, **fields))
    inference = INFERENCE if m.architecture == "decoder" else phases_of(m)
    check_phase(phase, m, tuple(spec.name for spec in inference))
    if phase == TRAIN:
        from perfest.explain_train import explain_training

        if m.architecture == "encoder-decoder":  # as perfest train (check_trainable)
            raise SpecError(f"phase: training an {m.architecture} is not modelled yet (its "
                            "inference is: explain --phase encode)")  # fmt: skip

        train, ops = explain_training(m, hw, w, op)
        return Explanation(m.name, hw.name, w, _symbols(ops, (train,)), (train,))
    if m.architecture != "decoder":
        from perfest.encoders import check_workload

        check_workload(m, w)
    plan = plan_for(m, hw, w)
    specs = [spec for spec in inference if phase in (None, spec.name)]
    ops = [o for spec in specs for _, o in plan.for_phase(spec.name).graph.ops()]
    check_op(op, [o.name for o in ops], m.name)
    phases = tuple(_explain_phase(plan.for_phase(spec.name), spec.name, spec.point(w), op)
                   for spec in specs)  # fmt: skip
    return Explanation(m.name, hw.name, w, _symbols(ops, phases), phases)


def check_phase(phase: str | None, m: ModelConfig, inference: tuple[str, ...]) -> None:
    """SpecError for a phase that is not one of PHASES, or one this model does not run (decode
    asked of an encoder, encode of a decoder)."""
    if phase is None or phase in (*inference, TRAIN):
        return
    if phase not in PHASES:
        raise SpecError(f"phase: '{phase}' is not one of {', '.join(PHASES)}")
    article = "a" if m.architecture == "decoder" else "an"
    raise SpecError(f"phase: {m.name} is {article} {m.architecture}, which has no {phase} phase "
                    f"(its phases: {', '.join(inference)})")  # fmt: skip


def check_op(op: str | None, names: list[str], model: str) -> None:
    """SpecError naming the closest ops when `op` is not one of `names`."""
    if op is None or op in names:
        return
    close = difflib.get_close_matches(op, list(dict.fromkeys(names)), n=3, cutoff=0.4)
    hint = f"; closest: {', '.join(close)}" if close else f"; ops: {', '.join(names)}"
    raise SpecError(f"op: no op '{op}' in {model}{hint}")


def _explain_phase(plan: Plan, name: str, point: Point, only: str | None) -> PhaseExplanation:
    rows = plan.rows(point)
    env = point._asdict()
    derived = plan.graph.derived
    env.update({d.name: d.value(point._asdict()) for d in derived})
    ops = tuple(_explain_op(plan, row, env) for row in rows if only in (None, row.op.name))
    totals = plan.evaluate(point)
    return PhaseExplanation(
        phase=name,
        point=point,
        derived=tuple((d.name, env[d.name], d.formula) for d in derived),
        ops=ops,
        layers=layer_totals(rows),
        flops=totals.flops,
        bytes=totals.bytes,
        time_s=totals.time_s,
        bound=totals.bound,
        closed_forms=closed_forms(plan, rows, point),
    )


#: The segments that hold a stack's layers (perfest.graph, perfest.encoder_graph).
LAYER_SEGMENTS = ("decoder", "encoder")


def layer_totals(rows: tuple[Row, ...]) -> tuple[LayerTotal, ...]:
    """One layer of each stack's segment (decoder…, encoder): its rows summed, divided by the
    segment's count."""
    by_segment: dict[str, list[Row]] = {}
    for row in rows:
        if row.segment.startswith(LAYER_SEGMENTS) and row.segment != "encoder.final":
            by_segment.setdefault(row.segment, []).append(row)
    return tuple(
        LayerTotal(name, seg[0].count, *(sum(getattr(r, f) for r in seg) / seg[0].count
                                         for f in ("flops", "bytes", "time")))
        for name, seg in by_segment.items()
    )  # fmt: skip


def _explain_op(plan: Plan, row: Row, env: dict) -> OpExplanation:
    op, r = row.op, plan.rates
    operands = tuple(
        _operand(direction, access, env)
        for direction, accesses in (("read", op.reads), ("write", op.writes))
        for access in accesses
    )
    flops = op.flops.value(env)
    nbytes = sum(o.bytes for o in operands)
    rate = peak(op, r)
    return OpExplanation(
        name=op.name,
        group=op.group.value,
        segment=row.segment,
        count=row.count,
        flops_formula=op.flops.text(),
        flops_numbers=op.flops.text(env),
        flops=flops,
        operands=operands,
        bytes=nbytes,
        intensity=flops / nbytes if nbytes else None,
        ridge_point=rate / r.bandwidth,
        t_compute_s=row.t_compute,
        t_memory_s=row.t_memory,
        t_comm_s=row.t_comm,
        overhead_s=row.overhead,
        time_s=row.time,
        roofline_time_s=row.roofline,
        bound=row.bound,
        why=why(op, row, flops, nbytes, rate / r.bandwidth, operands, env),
    )


def _operand(direction: str, access: Access, env: dict) -> Operand:
    t = access.tensor
    return Operand(
        direction=direction,
        tensor=t.name,
        role=t.role.value,
        dtype=t.dtype,
        bytes_per_element=t.itemsize,
        elements_formula=access.elements.text(),
        elements_numbers=access.elements.text(env),
        elements=access.elements.value(env),
    )


def why(
    op: Op, row: Row, flops: float, nbytes: float, ridge: float, operands: tuple, env: dict
) -> str:
    """One sentence: what paces this op, in its own numbers."""
    from perfest.render import seconds, si

    if row.bound is Bound.COMMUNICATION:
        c = op.collective
        return (
            f"communication: a ring {c.kind.value} of {si(c.message.value(env), 'B')} per device "
            f"among {c.peers} devices sends {si(c.wire_bytes.value(env), 'B')} over the link and "
            "pays its fixed latency; the device's FLOPs and memory do not pace it"
        )
    if row.bound is Bound.OVERHEAD:
        busy = row.t_compute + row.t_memory
        return (
            f"launch-bound: {op.kernels} kernel launch(es) take {seconds(row.overhead / row.count)}"
            f" per instance, longer than the {seconds(busy / row.count)} of work they start"
        )
    intensity = flops / nbytes if nbytes else float("inf")
    if row.bound is Bound.COMPUTE:
        if not nbytes:
            return "compute-bound: fused into its neighbour, it moves no bytes of its own"
        return (
            f"compute-bound: {intensity:,.1f} FLOP/B is above the ridge point {ridge:,.0f} "
            f"FLOP/B, so its {si(flops, 'FLOP')} take longer than moving {si(nbytes, 'B')}"
        )
    if op.kind is Kind.MEMORY:
        return f"memory-bound: a pure data movement of {si(nbytes, 'B')}"
    largest = max(operands, key=lambda o: o.bytes)
    what = {Role.WEIGHT.value: "weights", Role.KV_CACHE.value: "KV cache"}.get(
        largest.role, largest.role.replace("_", " ")
    )
    return (
        f"memory-bound: {intensity:,.2f} FLOP/B is below the ridge point {ridge:,.0f} FLOP/B, "
        f"so moving {si(nbytes, 'B')} (most of it the {what} '{largest.tensor}') takes longer "
        f"than its {si(flops, 'FLOP')}"
    )


def closed_forms(plan: Plan, rows: tuple[Row, ...], point: Point) -> tuple[ClosedForm, ...]:
    """The hand-derived totals that apply to this model and pass, beside perfest's sums."""
    ctx = plan.ctx
    if ctx is None:
        return ()
    m, sh = ctx.model, ctx.shard
    b, s, t, s_l = point[:4]  # s_enc (an encoder-decoder's) is not in these forms
    h, L, V = m.h, m.L, m.V
    matmul = sum(r.matmul_flops for r in rows)
    forms = []
    dense = not m.num_experts and not m.mla
    classic = dense and m.mlp == "classic" and sh.i == 4 * h and not sh.split
    stack = [
        r for r in rows if r.segment.startswith(LAYER_SEGMENTS) and r.segment != "encoder.final"
    ]
    if classic and stack:
        L = sum({r.segment: r.count for r in stack}.values())  # an encoder-decoder's stack's
        mlp = sum(r.matmul_flops for r in stack if r.op.group.value == "mlp") / L
        forms.append(
            ClosedForm(
                "classic FFN, one layer (i = 4h)",
                "16·b·s·h²",
                f"16·{b}·{s}·{h}²",
                16 * b * s * h * h,
                mlp,
            )
        )
    if m.architecture != "decoder":
        from perfest.explain_encoders import encoder_forms

        return (*forms, *encoder_forms(ctx, rows, point, matmul))
    gpt = classic and m.n_kv == m.n_h and m.q_dim == h and t == s and s_l == s
    if gpt and not m.sliding_window:
        value = 24 * b * s * h * h * L * (1 + s / (6 * h)) + 2 * b * s * h * V
        forms.append(
            ClosedForm(
                "GPT-style forward, logits at every position",
                "24·b·s·h²·L·(1 + s/(6h)) + 2·b·s·h·V",
                f"24·{b}·{s}·{h}²·{L}·(1 + {s}/(6·{h})) + 2·{b}·{s}·{h}·{V}",
                value,
                matmul,
            )
        )
    if not m.mla:
        forms.append(_per_weight(ctx, rows, point, matmul))
    return tuple(forms)


def _per_weight(ctx, rows: tuple[Row, ...], point: Point, matmul: float) -> ClosedForm:
    """2 FLOPs per weight a token uses (a routed expert's weights count k/E of the time), plus
    the attention core's 4·b·n_h·s·t·d per layer (min(t, window) keys in a windowed layer)."""
    m, sh = ctx.model, ctx.shard
    b, s, t, s_l = point[:4]  # s_enc (an encoder-decoder's) is not in these forms
    used = 0.0
    for r in rows:
        if r.segment.startswith("decoder"):
            for w in matmul_weights(r.op):
                share = m.experts_per_token / m.num_experts if w.routed else 1.0
                used += r.count * w.elements.value() * share
    kinds = m.layer_kinds()
    windowed = sum(1 for _, window in kinds if window)
    keys = f"{len(kinds) - windowed}·t + {windowed}·min(t, w)" if windowed else "L·t"
    keys_n = (
        f"{len(kinds) - windowed}·{t} + {windowed}·{min(t, m.sliding_window or t)}"
        if windowed
        else f"{m.L}·{t}"
    )
    all_keys = (len(kinds) - windowed) * t + windowed * min(t, m.sliding_window or t)
    attention = 4 * b * sh.n_h * s * m.d * all_keys
    head = 2 * b * s_l * m.h * sh.V
    n_used = f"{used:,.0f}".replace(",", "")
    routed = ", a routed expert's counted k/E of the time" if m.num_experts else ""
    return ClosedForm(
        f"2 FLOPs per weight per token, plus attention (N: the blocks' matmul weights{routed})",
        f"2·b·s·N + 2·b·s_logits·h·V + 4·b·n_h·s·d·({keys})",
        f"2·{b}·{s}·{n_used} + 2·{b}·{s_l}·{m.h}·{sh.V} + 4·{b}·{sh.n_h}·{s}·{m.d}·({keys_n})",
        2 * b * s * used + head + attention,
        matmul,
    )


def matmul_weights(op: Op) -> tuple:
    """The weight matrices a product multiplies by: its B operand, and under --fusion full a
    fused sibling's (mlp_gate + mlp_up read both), each a matrix with the contracted dimension
    k; a folded norm's γ and a bias are not counted."""
    g = op.gemm
    if g is None:
        return ()
    k = g.k.text()
    return tuple(
        a.tensor
        for a in op.reads
        if a.tensor.role is Role.WEIGHT
        and (a.tensor is g.b or (len(a.tensor.shape) >= 2 and k in _texts(a.tensor)))
    )


def _texts(t) -> tuple[str, ...]:
    return tuple(dim.text() for dim in t.shape)


def _symbols(ops: list[Op], phases: tuple[PhaseExplanation, ...]) -> tuple:
    found: dict[str, Expr] = {}
    for op in ops:
        found.update(op.flops.symbols())
        for access in (*op.reads, *op.writes):
            found.update(access.elements.symbols())
    rows = []
    for name in MEANINGS:
        node = found.get(name)
        if node is not None and not isinstance(node, Derived) and node.v is not None:
            rows.append((name, node.v, MEANINGS[name]))
    for p in phases[:1]:
        for name, value in _point_fields(p.point).items():
            rows.append((name, value, MEANINGS[name] + f" ({p.phase}; see each phase)"))
    return tuple(rows)


def _point_fields(point: Point) -> dict[str, int]:
    """A point's symbols by name; s_enc only for an encoder-decoder's decoder (it is 0 else)."""
    fields = point._asdict()
    if not fields["s_enc"]:
        del fields["s_enc"]
    return fields


def _phase_dict(p: PhaseExplanation) -> dict[str, Any]:
    return {
        "phase": p.phase,
        "point": _point_fields(p.point),
        "ops": [_op_dict(o) for o in p.ops],
        "derived": [{"name": n, "value": v, "formula": f} for n, v, f in p.derived],
        "layers": [
            {
                "segment": x.segment,
                "count": x.count,
                "flops": x.flops,
                "bytes": x.bytes,
                "time_s": x.time_s,
            }
            for x in p.layers
        ],  # fmt: skip
        "total": {"flops": p.flops, "bytes": p.bytes, "time_s": p.time_s, "bound": str(p.bound)},
        "closed_forms": [
            {
                "name": c.name,
                "formula": c.formula,
                "numbers": c.numbers,
                "value": c.value,
                "perfest": c.perfest,
            }  # fmt: skip
            for c in p.closed_forms
        ],
    }


def _op_dict(o: OpExplanation) -> dict[str, Any]:
    data = {name: getattr(o, name) for name in OpExplanation.__dataclass_fields__}
    data["bound"] = o.bound.value
    data["operands"] = [
        {**{n: getattr(x, n) for n in Operand.__dataclass_fields__}, "bytes": x.bytes}
        for x in o.operands
    ]
    return data
