"""The backward pass, derived op by op from the forward pass (never written a second time).

Each forward op's backward comes from what the op is: its `gemm`, its `collective`, or the
element-wise function `fn` it computes. FLOPs per element are reasoned from the math, as the
forward's are (a FLOP is one multiply or one add; exp, tanh, erf, sqrt count one each):

    matrix product   dA = dC·Bᵀ, dB = Aᵀ·dC (perfest.ops.matmul_backward): 2× the forward;
                     a weight's dB accumulates into its gradient in the gradient dtype
    flash attention  one fused kernel (FlashAttention-2, Dao 2023, Algorithm 2): recompute
                     S = Q·Kᵀ, dP = dO·Vᵀ, dV = Pᵀ·dO, dS = P∘(dP − D), dQ = dS·K, dK = dSᵀ·Q —
                     5 products of 2·b·n_h·s·t·d FLOPs where the forward has 2: 2.5× the
                     forward (torch's FlopCounterMode counts SDPA's backward the same way:
                     torch/utils/flop_counter.py, sdpa_backward_flop_count). Non-matmul work
                     per score: scale, P = exp(S − lse), dP − D, ·P → 5. Bytes: one pass
                     reading Q, K, V, dO, lse and D, writing dQ, dK, dV; before it,
                     D = rowsum(dO∘O) (2 per output element) in its own kernel.
    eager attention  each product by the rule above (4 products: 2× the forward), the
                     softmax's backward dS = P∘(dP − rowsum(dP∘P)): 4 per score
    norm             RMSNorm: x̂ = x·r, g = dy·γ, Σ g·x̂, dx = r·(g − x̂·mean(g·x̂)), dγ += Σ dy·x̂
                     → 9; LayerNorm adds the mean's terms and dβ += Σ dy → 13
    activation       dx = dy·act'(x): SiLU 9 (σ, σ(1 + x(1 − σ)), ·dy), GELU 11 (Φ + x·φ),
                     GELU-tanh 19 (the tanh form's derivative), ReLU 1; gating adds 3
                     (d gate = dy·up·act', d up = dy·act(gate))
    RoPE             the inverse rotation: 3 per rotated element, like the forward
    dropout          dx = dy·mask·scale: 2
    residual add     nothing: the gradient reaches x and every branch unchanged
    fan-out          a value read whole by k ops receives k gradients: k − 1 adds
    embedding        PyTorch's dense backward: zero a whole-table gradient, add dx's rows into
                     it (1 per element), add it into the weight's gradient (1 per table element)
    loss             dlogits = (softmax − one-hot)/N: 2 per logit
    experts          the router's scoring, the permutation of tokens to experts, the weighted
                     combination of their outputs, a shared-expert gate: perfest.training
                     .backward_experts
    collectives      all-reduce ending a TP region → none (Megatron's g); reduce-scatter →
                     all-gather; all-gather → reduce-scatter, plus the gather again when the
                     gathered tensor is not saved (sequence parallelism re-gathers its input
                     for dW; a context ring circulates K and V again); TP entry (Megatron's f)
                     → all-reduce of the input's gradient; all-to-all → the reverse all-to-all
                     of the gradient, the same bytes

Overlap, as Megatron-LM runs the backward (`LinearWithGradAccumulationAndAsyncCommunication`;
Korthikanti et al. 2022, §4.2.2): the all-reduce (reduce-scatter with sequence parallelism) of
a column-parallel layer's input gradient runs while its dW GEMMs compute; sequence
parallelism's re-gather of the input runs while its dX GEMMs compute; a context-parallel ring
exchanges K, V and their gradients while the attention core computes. Each such group is an
`Overlap`: exposed time = max(0, T(collectives) − T(window)). The expert-parallel collectives
(the all-to-alls over ep, the gathers and reductions over etp) run in neither direction beside
compute (Megatron's dispatcher waits for them): each is an Overlap with an empty window, so it
is reported by its axis and wholly exposed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from perfest.layers.attention import DROPOUT_FLOPS_PER_ELEMENT, ROPE_FLOPS_PER_ELEMENT
from perfest.layers.context import Ctx
from perfest.ops import (
    Access,
    Axis,
    CollectiveKind,
    Fn,
    Group,
    Op,
    Role,
    Tensor,
    collective,
    elementwise,
    grad,
    matmul,
    matmul_backward,
    read,
)
from perfest.symbols import Expr, mul, s, total
from perfest.training.backward_experts import EXPERT_RULES

NORM_BACKWARD_FLOPS = {"rmsnorm": 9, "layernorm": 13}
ACTIVATION_BACKWARD_FLOPS = {"silu": 9, "gelu": 11, "gelu_tanh": 19, "relu": 1}
GATED_BACKWARD_FLOPS = 3
SOFTMAX_BACKWARD_FLOPS = 4
FLASH_SOFTMAX_BACKWARD_FLOPS = 5
FLASH_PREP_FLOPS = 2  # D = rowsum(dO∘O): a multiply and an add per output element
EMBEDDING_BACKWARD_FLOPS = 1
LOSS_BACKWARD_FLOPS = 2
#: Axes whose collectives never overlap compute (the expert dispatcher waits for them).
EXPOSED_AXES = frozenset((Axis.EP, Axis.ETP))


@dataclass(frozen=True, slots=True)
class Overlap:
    """Collectives that run while `window` computes: exposed = max(0, T(comm) − T(window))."""

    comm: tuple[Op, ...]
    window: tuple[Op, ...]


@dataclass(frozen=True, slots=True)
class Grads:
    """How weight gradients are kept: (dtype, bytes per element), and whether each
    micro-batch adds into them (gradient accumulation reads them as well as writes)."""

    dtype: tuple[str, float]
    accumulate: bool = True


@dataclass(frozen=True, slots=True)
class Backward:
    """The derived backward of a list of forward ops, in execution order (the overlapped
    collectives included), and which collectives overlap which ops."""

    ops: tuple[Op, ...]
    overlaps: tuple[Overlap, ...]


def core_span(forward: Sequence[Op]) -> range:
    """The attention core: the ops from the first product of two activations to the last
    (empty when there is none)."""
    idx = [i for i, op in enumerate(forward) if op.activation_product]
    return range(idx[0], idx[-1] + 1) if idx else range(0)


def backward(forward: Sequence[Op], ctx: Ctx, grads: Grads) -> Backward:
    """Derive the backward of `forward` (one part of the model: a layer, the embedding, the
    head), last op first."""
    core = core_span(forward)
    fused = bool(core) and not forward[core.start].writes  # flash: the scores stay on chip
    fan = _fan_out(forward)
    d_grads: dict[int, tuple[Op, ...]] = {}  # forward index → its dX products
    w_grads: dict[int, tuple[Op, ...]] = {}  # forward index → its dW products (and bias)
    out: list[Op] = []
    overlaps: list[Overlap] = []
    core_ops: tuple[Op, ...] = ()
    i = len(forward) - 1
    while i >= 0:
        op = forward[i]
        if fused and i == core.stop - 1:
            core_ops = flash_backward(forward[core.start : core.stop], ctx)
            out += core_ops
            i = core.start - 1
            continue
        if op.gemm is not None:
            ops = matmul_backward(op, weight_grad=grads.dtype, accumulate=grads.accumulate)
            split = 1 if ops[0].gemm.b == op.gemm.b else 0  # dX uses B, dW uses A
            d_grads[i], w_grads[i] = ops[:split], ops[split:]
            if i in core:
                core_ops = ops + core_ops
        elif op.collective is not None:
            ops, overlap = _collective(op, forward, i, d_grads, w_grads, core_ops)
            overlaps += overlap
        elif op.fn is Fn.TO_TP:
            x = op.reads[0].tensor
            ops = (collective(f"{op.name}.grad_allreduce", CollectiveKind.ALL_REDUCE, Axis.TP,
                              ctx.shard.tp, grad(x)),)  # fmt: skip
            overlaps.append(Overlap(ops, _of(_consumers(forward, x, i), w_grads)))
        else:
            ops = RULES[op.fn](op, ctx, grads)
            if i in core:
                core_ops = ops + core_ops
        out += ops
        out += (_sum_gradients(t, n, k, g) for t, n, k, g in fan.get(i, ()))
        i -= 1
    return Backward(tuple(out), tuple(overlaps))


def _collective(op, forward, i, d_grads, w_grads, core_ops) -> tuple[tuple[Op, ...], list]:
    c = op.collective
    buffer = next(a.tensor for a in op.reads)
    name = op.name
    if c.axis in EXPOSED_AXES:
        ops = (_transpose(op, buffer),)
        return ops, [Overlap(ops, ())]
    if c.kind is CollectiveKind.ALL_REDUCE:  # the end of a TP region: identity backward
        return (), []
    if c.kind is CollectiveKind.REDUCE_SCATTER:  # gather the gradient of the local rows
        ag = collective(f"{name}.grad_allgather", CollectiveKind.ALL_GATHER, c.axis, c.peers,
                        grad(buffer))  # fmt: skip
        return (ag,), []
    # an all-gather: reduce-scatter the gradient; gather again what nobody kept
    rs = collective(f"{name}.grad_reducescatter", CollectiveKind.REDUCE_SCATTER, c.axis, c.peers,
                    grad(buffer))  # fmt: skip
    saved = any(a.tensor == buffer for f in forward for a in f.saves)
    again = () if saved else (collective(f"{name}.regather", c.kind, c.axis, c.peers, buffer),)
    if c.axis is Axis.CP:  # the ring runs beside the attention core's backward
        return (*again, rs), [Overlap((*again, rs), core_ops)]
    users = _consumers(forward, buffer, i)
    overlaps = [Overlap((rs,), _of(users, w_grads))]
    if again:
        overlaps.append(Overlap(again, _of(users, d_grads)))
    return (*again, rs), overlaps


#: A collective → the one its backward runs on the gradient (an all-reduce ending a region has
#: none: the gradient is already whole on every device).
TRANSPOSE = {
    CollectiveKind.ALL_GATHER: (CollectiveKind.REDUCE_SCATTER, "grad_reducescatter"),
    CollectiveKind.REDUCE_SCATTER: (CollectiveKind.ALL_GATHER, "grad_allgather"),
    CollectiveKind.ALL_TO_ALL: (CollectiveKind.ALL_TO_ALL, "grad_alltoall"),
}


def _transpose(op: Op, buffer: Tensor) -> Op:
    """The collective that carries `op`'s gradient back (the gathered tensor kept, as the
    experts keep their input)."""
    c = op.collective
    kind, suffix = TRANSPOSE[c.kind]
    return collective(f"{op.name}.{suffix}", kind, c.axis, c.peers, grad(buffer))


def _consumers(forward: Sequence[Op], x: Tensor, start: int) -> list[int]:
    """Indices of the products after `start` that read `x` as their A operand."""
    return [j for j in range(start + 1, len(forward))
            if forward[j].gemm is not None and forward[j].gemm.a == x]  # fmt: skip


def _of(indices: list[int], derived: dict[int, tuple[Op, ...]]) -> tuple[Op, ...]:
    return tuple(op for j in indices for op in derived.get(j, ()))


def _fan_out(forward: Sequence[Op]) -> dict[int, list[tuple[Tensor, Expr, int, Group]]]:
    """Values read whole by k ≥ 2 ops (a value: a tensor between two writes), keyed by the
    first reader: their gradients are summed after its backward (k − 1 adds)."""
    version: dict[Tensor, int] = {}
    readers: dict[tuple[Tensor, int], list[int]] = {}
    for i, op in enumerate(forward):
        if op.collective is not None or op.fn is Fn.TO_TP:
            continue
        for a in op.reads:
            t = a.tensor
            if t.role is Role.ACTIVATION and a.elements.poly() == t.elements.poly():
                readers.setdefault((t, version.get(t, 0)), []).append(i)
        for a in op.writes:
            version[a.tensor] = version.get(a.tensor, 0) + 1
    fan: dict[int, list] = {}
    for (t, _), idx in readers.items():
        if len(idx) > 1:
            fan.setdefault(idx[0], []).append((t, t.elements, len(idx) - 1, forward[idx[-1]].group))
    return fan


def _sum_gradients(x: Tensor, n: Expr, extra: int, group: Group) -> Op:
    """`extra` adds of x's gradients (each reads two, writes one)."""
    dx = grad(x)
    return elementwise(f"{x.name}.grad_sum", group, mul(n, extra), 1,
                       (Access(dx, mul(n, 2 * extra)),), (Access(dx, mul(n, extra)),),
                       kernels=extra)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Attention.


def flash_backward(core: Sequence[Op], ctx: Ctx) -> tuple[Op, ...]:
    """The fused backward of a flash core (its scores product, softmax, values product): a
    kernel computing D = rowsum(dO∘O), then one pass of five products (module docstring)."""
    scores, values = core[0], core[-1]
    g, gv = scores.gemm, values.gemm
    q, k, v, out = g.a, g.b, gv.b, gv.c
    lse = next(a for a in values.saves if a.tensor != out)
    rows, kv = g.batch, g.b_batch
    s_, d_, t_, dv = g.m, g.k, g.n, gv.n  # [s, d] @ [d, t] per (sequence, head)
    n_out = mul(s_, dv, rows)
    d_out = grad(out)
    dots = replace(lse.tensor, name="attn.dO_dot_O")
    on_chip = ctx.act("attn.scores", rows, s_, t_)
    prep = elementwise("attn_bwd.prep", Group.ATTENTION, n_out, FLASH_PREP_FLOPS,
                       (Access(d_out, n_out), Access(out, n_out)), (read(dots),))  # fmt: skip
    kernel_reads = (Access(q, mul(s_, d_, rows)), Access(k, mul(d_, t_, kv)),
                    Access(v, mul(t_, dv, kv)), Access(d_out, n_out), lse, read(dots))  # fmt: skip
    main = matmul("attn_bwd.scores", Group.ATTENTION, q, k, on_chip, m=s_, k=d_, n=t_,
                  batch=rows, b_batch=kv, write_c=False)  # fmt: skip
    softmax = elementwise("attn_bwd.softmax", Group.ATTENTION, mul(s_, t_, rows),
                          FLASH_SOFTMAX_BACKWARD_FLOPS, (), (), kernels=0)  # fmt: skip

    def product(name, a, b_, c, m, k_, n, b_batch, c_batch=None) -> Op:
        op = matmul(f"attn_bwd.{name}", Group.ATTENTION, a, b_, c, m=m, k=k_, n=n, batch=rows,
                    b_batch=b_batch, c_batch=c_batch, read_a=False, write_c=c is not on_chip,
                    kernels=0)  # fmt: skip
        return replace(op, reads=(), saves=())

    return (
        prep,
        replace(main, reads=kernel_reads, saves=()),
        product("dp", d_out, v, on_chip, s_, dv, t_, kv),  # dP = dO·Vᵀ
        softmax,
        product("dv", on_chip, d_out, grad(v), t_, s_, dv, rows, kv),  # dV = Pᵀ·dO
        product("dq", on_chip, k, grad(q), s_, t_, d_, kv),  # dQ = dS·K
        product("dk", on_chip, q, grad(k), t_, s_, d_, rows, kv),  # dK = dSᵀ·Q
    )


def _softmax(op: Op, ctx: Ctx, grads: Grads) -> tuple[Op, ...]:
    (probs,) = op.saves
    d = Access(grad(probs.tensor), probs.elements)
    return (elementwise(f"{op.name}.bwd", op.group, probs.elements, SOFTMAX_BACKWARD_FLOPS,
                        (probs, d), (d,)),)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Element-wise ops.


def _norm(op: Op, ctx: Ctx, grads: Grads) -> tuple[Op, ...]:
    x, *params = op.reads
    (y,) = op.writes
    n = x.elements
    stats = op.saves[1:]
    d_params = tuple(read(grad(p.tensor, grads.dtype)) for p in params)
    reads = (Access(grad(y.tensor), n), x, *params, *stats)
    reads += d_params if grads.accumulate else ()
    flops = NORM_BACKWARD_FLOPS[ctx.model.norm]
    return (elementwise(f"{op.name}.bwd", op.group, n, flops, reads,
                        (Access(grad(x.tensor), n), *d_params)),)  # fmt: skip


def _activation(op: Op, ctx: Ctx, grads: Grads) -> tuple[Op, ...]:
    (y,) = op.writes
    gated = len(op.reads) == 2
    flops = ACTIVATION_BACKWARD_FLOPS[ctx.model.activation] + (GATED_BACKWARD_FLOPS if gated else 0)
    reads = (Access(grad(y.tensor), y.elements), *op.reads)
    writes = tuple(Access(grad(a.tensor), a.elements) for a in op.reads)
    return (elementwise(f"{op.name}.bwd", op.group, y.elements, flops, reads, writes),)


def _rope(op: Op, ctx: Ctx, grads: Grads) -> tuple[Op, ...]:
    """The inverse rotation of every rotated input (q and k; latent attention's q and its
    shared key), reading the cos/sin table."""
    table = next(a for a in op.reads if a.tensor.role is Role.INPUT)
    d = tuple(Access(grad(a.tensor), a.elements) for a in op.reads if a is not table)
    return (elementwise(f"{op.name}.bwd", op.group, total(a.elements for a in d),
                        ROPE_FLOPS_PER_ELEMENT, (*d, table), d),)  # fmt: skip


def _dropout(op: Op, ctx: Ctx, grads: Grads) -> tuple[Op, ...]:
    (x,), (y, mask) = op.reads, op.writes
    return (elementwise(f"{op.name}.bwd", op.group, x.elements, DROPOUT_FLOPS_PER_ELEMENT,
                        (Access(grad(y.tensor), y.elements), mask),
                        (Access(grad(x.tensor), x.elements),)),)  # fmt: skip


def _gather(op: Op, ctx: Ctx, grads: Grads) -> tuple[Op, ...]:
    """PyTorch's dense embedding backward (`embedding_dense_backward`), per table: zero a
    gradient of the whole table and add dx's rows into it (the token rows looked up; for
    learned positions the s rows, summed over the batch), then add that into the weight's
    gradient (AccumulateGrad, or Megatron's main-gradient hook)."""
    (y,) = op.writes
    n = y.elements
    dy = Access(grad(y.tensor), n)
    ids = next(a for a in op.reads if a.tensor.role is Role.INPUT)
    ops = []
    for table in (a for a in op.reads if a.tensor.role is Role.WEIGHT):
        whole = table.tensor.elements
        d_weight = grad(table.tensor, grads.dtype)
        dense = replace(grad(table.tensor), name=f"{d_weight.name}.dense", role=Role.ACTIVATION)
        rows = n if table.tensor.shape[0] == ctx.V else mul(s, ctx.h)
        scatter = Access(dense, rows)
        name = f"{op.name}.bwd.{table.tensor.name}"
        ops.append(elementwise(f"{name}.zero", op.group, whole, 0, (), (Access(dense, whole),)))
        ops.append(elementwise(name, op.group, n, EMBEDDING_BACKWARD_FLOPS, (dy, ids, scatter),
                               (scatter,)))  # fmt: skip
        reads = (Access(dense, whole), Access(d_weight, whole))
        ops.append(elementwise(f"{name}.accumulate", op.group, whole, 1,
                               reads if grads.accumulate else reads[:1],
                               (Access(d_weight, whole),)))  # fmt: skip
    return tuple(ops)


def _loss(op: Op, ctx: Ctx, grads: Grads) -> tuple[Op, ...]:
    (probs,) = op.saves
    logits = op.reads[0]
    targets = next(a for a in op.reads if a.tensor.role is Role.INPUT)
    d_logits = Access(grad(logits.tensor), logits.elements)
    return (elementwise(f"{op.name}.bwd", op.group, logits.elements, LOSS_BACKWARD_FLOPS,
                        (probs, targets), (d_logits,)),)  # fmt: skip


def _nothing(op: Op, ctx: Ctx, grads: Grads) -> tuple[Op, ...]:
    return ()


#: Fn → the rule deriving an element-wise op's backward.
RULES: dict[Fn, Callable[[Op, Ctx, Grads], tuple[Op, ...]]] = {
    Fn.NORM: _norm,
    Fn.ACTIVATION: _activation,
    Fn.ROPE: _rope,
    Fn.SOFTMAX: _softmax,
    Fn.DROPOUT: _dropout,
    Fn.RESIDUAL: _nothing,
    Fn.COPY: _nothing,
    Fn.GATHER: _gather,
    Fn.LOSS: _loss,
    **EXPERT_RULES,
}
