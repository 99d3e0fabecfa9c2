"""`perfest explain --phase train`: one micro-batch's forward and backward on one device, op by op.

The workload's batch is the micro-batch b, its input length the sequence s (t = s_logits = s:
every position attends to the ones before it and reaches the loss), its tp the tensor-parallel
width. The ops are the training step's parts (perfest.training.step: the embedding, each kind of
decoder layer, the head with the loss), forward then the backward derived from them
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
from perfest.ops import Role
from perfest.plan import Point, Row
from perfest.specs import HardwareSpec, ModelConfig, Workload
from perfest.training.config import check_model_split, make_config
from perfest.training.evaluate import compile_step
from perfest.training.step import PartKind

#: Attention-core products (each 2·b·n_h·s·t·d) of a layer's backward, by kernel.
BACKWARD_CORE_PRODUCTS = {"flash": 5, "eager": 4}


def explain_training(
    m: ModelConfig, hw: HardwareSpec, w: Workload, only: str | None
) -> PhaseExplanation:
    """The `train` phase of `perfest explain` (module docstring)."""
    if w.weight_dtype is not None or w.kv_dtype is not None:
        raise SpecError("phase: train runs every tensor at --dtype; weight and KV dtypes are "
                        "inference what-ifs")  # fmt: skip
    check_model_split(m, w.tp, 1, 1, 1, w.input_len)
    config = make_config(gpus=w.tp, tp=w.tp, global_batch=w.batch, micro_batch=w.batch,
                         seq_len=w.input_len, dtype=w.dtype, attention=w.attention)  # fmt: skip
    compiled = compile_step(m, hw, config, w.tp, 1, False)
    b, s = w.batch, w.input_len
    point = Point(b, s, s, s)
    env = point._asdict()
    rows: list[Row] = []
    for kind, part in compiled.parts.items():
        count = m.L if kind is PartKind.LAYER else 1
        for direction, plan in (("forward", part.forward), ("backward", part.backward)):
            for row in plan.rows(point):
                rows.append(_scaled(row, f"{kind.value}.{direction}", count))
    plans = {id(op): part for part in compiled.parts.values() for op in _ops(part)}
    check_op(only, [row.op.name for row in rows], m.name)
    ops = tuple(
        _explain_op(_plan_of(plans[id(row.op)], row), row, env)
        for row in rows
        if only in (None, row.op.name)
    )
    layer = [r for r in rows if r.segment.startswith("layer.")]
    per_layer = LayerTotal("decoder", m.L,
                           *(sum(getattr(r, f) for r in layer) / m.L
                             for f in ("flops", "bytes", "time")))  # fmt: skip
    time = sum(r.time for r in rows)
    bound = max(rows, key=lambda r: r.time).bound
    return PhaseExplanation(
        phase="train",
        point=point,
        derived=(),
        ops=ops,
        layers=(per_layer,),
        flops=sum(r.flops for r in rows),
        bytes=sum(r.bytes for r in rows),
        time_s=time,
        bound=bound,
        closed_forms=(training_rule(m, compiled, rows, point, w.attention),),
    )


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


def training_rule(m: ModelConfig, compiled, rows: list[Row], point: Point, attention: str):
    """6 FLOPs per weight per token plus the attention core's products (module docstring)."""
    b, s, t = point[:3]
    n_h = m.n_h // compiled.shape.tp
    weights = sum(
        (m.L if r.segment.startswith("layer.") else 1) * r.op.gemm.b.elements.value()
        for r in rows
        if r.segment.endswith("forward")
        and r.op.gemm is not None
        and r.op.gemm.b.role is Role.WEIGHT
        and r.count  # fmt: skip
    )
    products = 2 + BACKWARD_CORE_PRODUCTS[attention]
    value = 6 * b * s * weights + products * 2 * b * n_h * s * t * m.d * m.L
    return ClosedForm(
        "6 FLOPs per weight per token (2 forward, 4 backward), plus attention's "
        f"{products} products (N: every matmul weight, the LM head's included)",
        f"6·b·s·N + {products}·2·b·n_h·s·t·d·L",
        f"6·{b}·{s}·{weights:.0f} + {products}·2·{b}·{n_h}·{s}·{t}·{m.d}·{m.L}",
        value,
        sum(r.matmul_flops for r in rows),
    )
