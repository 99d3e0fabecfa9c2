"""`perfest explain --phase train`: one micro-batch's forward and backward on one device, op by op.

The workload's batch is the micro-batch b, its input length the sequence s (t = s_logits = s:
every position attends to the ones before it — an encoder's to all s — and reaches the loss),
its tp the tensor-parallel width. The ops are the training step's parts
(perfest.training.step: the embedding, each kind of decoder layer or the encoder layer, the
head with the loss: an encoder's masked-LM head over every position), forward then the
backward derived from them
(perfest.training.backward), timed by the same compiled plans `perfest train` sums. No
recomputation; the collectives that run beside compute (a tensor-parallel backward's
all-reduce under its weight-gradient products) are not rows here, and what makes a step more
than its micro-batches — the pipeline, data-parallel gradient reduction, the optimizer — is
`perfest train`'s to show.

The closed form, the training rule of thumb (Kaplan et al. 2020, §2.1; Narayanan et al. 2021):
6 FLOPs per weight per token — 2 forward, 4 backward (dX and dW) — plus the attention core's
products, 2 forward and, in backward, 5 with a flash kernel (which recomputes the scores) or 4
eager, each 2·b·n_h·s·t·d per layer.
"""

from __future__ import annotations

from dataclasses import replace

from perfest.errors import SpecError
from perfest.explain import ClosedForm, LayerTotal, PhaseExplanation, _explain_op, check_op
from perfest.ops import Op, Role
from perfest.plan import Point, Row
from perfest.specs import HardwareSpec, ModelConfig, Workload
from perfest.training.config import make_config, resolve
from perfest.training.evaluate import compile_step, stage_counts

#: Attention-core products (each 2·b·n_h·s·t·d) of a layer's backward, by kernel.
BACKWARD_CORE_PRODUCTS = {"flash": 5, "eager": 4}


def explain_training(
    m: ModelConfig, hw: HardwareSpec, w: Workload, only: str | None
) -> tuple[PhaseExplanation, tuple[Op, ...]]:
    """The `train` phase of `perfest explain` (module docstring), and every op it runs."""
    if w.weight_dtype is not None or w.kv_dtype is not None:
        raise SpecError("phase: train runs every tensor at --dtype; weight and KV dtypes are "
                        "inference what-ifs")  # fmt: skip
    # ep > 1: the experts spread over ep data-parallel ranks, each with its own micro-batch
    config = make_config(gpus=w.tp * w.ep, tp=w.tp, ep=w.ep, etp=1 if m.num_experts else None,
                         global_batch=w.batch * w.ep, micro_batch=w.batch, seq_len=w.input_len,
                         dtype=w.dtype, attention=w.attention,
                         sequence_parallel=bool(m.num_experts) and w.tp > 1)  # fmt: skip
    lay = resolve(m, hw, config)
    compiled = compile_step(m, hw, config, lay.tp, lay.cp, lay.sequence_parallel, lay.ep, lay.etp)
    b, s = w.batch, w.input_len
    point = Point(b, s, s, s)
    env = point._asdict()
    found = {d.name: d for part in compiled.parts.values()
             for plan in (part.forward, part.backward) for d in plan.graph.derived}  # fmt: skip
    derived = tuple((d.name, d.value(point._asdict()), d.formula) for d in found.values())
    env.update({name: value for name, value, _ in derived})
    counts = dict(stage_counts(m, 1)[0])  # every part of the model on one stage
    rows: list[Row] = []
    for key, part in compiled.parts.items():
        for direction, plan in (("forward", part.forward), ("backward", part.backward)):
            for row in plan.rows(point):
                rows.append(_scaled(row, f"{key.name}.{direction}", counts[key]))
    plans = {id(op): part for part in compiled.parts.values() for op in _ops(part)}
    check_op(only, [row.op.name for row in rows], m.name)
    ops = tuple(
        _explain_op(_plan_of(plans[id(row.op)], row), row, env)
        for row in rows
        if only in (None, row.op.name)
    )
    layers = tuple(
        LayerTotal(key.name.replace("layer", _stack(m)), n,
                   *(sum(getattr(r, f) for r in rows if r.segment.startswith(key.name + "."))
                     / n for f in ("flops", "bytes", "time")))
        for key, n in counts.items() if key.is_layer
    )  # fmt: skip
    rule = training_rule(m, lay, counts, rows, point, w.attention)
    explanation = PhaseExplanation(
        phase="train",
        point=point,
        derived=derived,
        ops=ops,
        layers=layers,
        flops=sum(r.flops for r in rows),
        bytes=sum(r.bytes for r in rows),
        time_s=sum(r.time for r in rows),
        bound=max(rows, key=lambda r: r.time).bound,
        closed_forms=(rule,) if rule is not None else (),
    )
    return explanation, tuple(r.op for r in rows)


def _stack(m: ModelConfig) -> str:
    """What a layer part is called in the per-layer totals: "decoder" or "encoder"."""
    return "encoder" if m.architecture == "encoder" else "decoder"


def _ops(part):
    return (*part.part.forward, *part.part.backward.ops)


def _plan_of(part, row: Row):
    return part.backward if row.segment.endswith("backward") else part.forward


def _scaled(row: Row, segment: str, count: int) -> Row:
    """A part's row (one instance) as `count` instances: the L layers of a step."""
    times = ("flops", "matmul_flops", "bytes_read", "bytes_written", "t_compute", "t_memory",
             "t_comm", "overhead", "time", "roofline")  # fmt: skip
    return replace(row, segment=segment, count=count,
                   **{f: getattr(row, f) * count for f in times})  # fmt: skip


def training_rule(m: ModelConfig, lay, counts: dict, rows: list[Row], point: Point,
                  attention: str) -> ClosedForm | None:  # fmt: skip
    """6 FLOPs per weight per token plus the attention core's products (module docstring); a
    routed expert's weights count k/E_l of the time (E_l = E/ep held: the device's experts get
    b·s·k of the ep ranks' assignments in all). None where it does not apply in this form
    (latent attention; experts split by tensor parallelism)."""
    if m.mla or (m.num_experts and lay.etp > 1):
        return None
    b, s, t = point[:3]
    n_h = m.n_h // lay.tp
    weights = 0.0
    for r in rows:
        g = r.op.gemm
        if r.segment.endswith("forward") and g is not None and g.b.role is Role.WEIGHT:
            share = m.experts_per_token * lay.ep / m.num_experts if g.b.routed else 1.0
            weights += r.count * g.b.elements.value() * share
    products = 2 + BACKWARD_CORE_PRODUCTS[attention]
    w = m.sliding_window
    windowed = sum(n for key, n in counts.items() if key.is_layer and key.window)
    keys = f"{m.L - windowed}·t + {windowed}·min(t, {w})" if windowed else "L·t"
    keys_n = f"{m.L - windowed}·{t} + {windowed}·{min(t, w)}" if windowed else f"{m.L}·{t}"
    all_keys = (m.L - windowed) * t + (windowed * min(t, w) if windowed else 0)
    value = 6 * b * s * weights + products * 2 * b * n_h * s * m.d * all_keys
    routed = ", a routed expert's k/E_l of the time" if m.num_experts else ""
    return ClosedForm(
        "6 FLOPs per weight per token (2 forward, 4 backward), plus attention's "
        f"{products} products (N: every matmul weight, the LM head's included{routed})",
        f"6·b·s·N + {products}·2·b·n_h·s·d·({keys})",
        f"6·{b}·{s}·{weights:.0f} + {products}·2·{b}·{n_h}·{s}·{m.d}·({keys_n})",
        value,
        sum(r.matmul_flops for r in rows),
    )
