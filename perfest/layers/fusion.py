"""Full fusion (`--fusion full`): every element-wise chain folded into a neighbouring matrix
product, as a compiler (torch.compile's Inductor, XLA) can — only the products, the attention
kernel and the collectives keep kernels of their own.

A pass over one layer's ops (any layer a builder writes: dense or MoE, windowed, latent
attention), reading the data flow from the tensors the ops name:

    siblings   two products of the same input whose outputs meet in one element-wise op
               (a gated MLP's gate and up; an expert's) become one product of both widths,
               [b·s, h] @ [h, 2·i], as vLLM stores them
    epilogue   an element-wise op whose inputs come from products (its last producer, the
               others read from memory) runs in that product's epilogue — except the
               block's norms, reductions over the whole row of h that a product's output tile
               does not hold: QK-norm (over one head's d columns), RoPE and
               the KV-cache write after the QKV projection, act(gate)·up after gate-and-up,
               the residual add after the output projections, the router's scoring after the
               router
    prologue   an element-wise op whose output only products read runs in each reader's
               prologue, on the rows it reads: the norms before the QKV projection, the MLP
               and the LM head (the final norm then covers b·s_logits rows, not b·s)

What stays apart: the attention core (softmax between two products of activations: the
`--attention` choice), anything after a collective (under tensor parallelism a branch's partial
sums are all-reduced before the residual add; one all-reduce-add-norm kernel, as TensorRT-LLM
has, would save more: not modelled), the embedding lookup, and a norm whose output a routed
expert gathers by index (its readers are not all plain products). The fused element-wise
FLOPs are charged with the product's, at its rate (a few per element against 2·k per output,
they hardly change its time); their intermediates never reach memory; the weights are the same
tensors, so memory does not change.
"""

from __future__ import annotations

from dataclasses import replace

from perfest.ops import Access, Fn, Group, Op, Role, Tensor, fold
from perfest.symbols import Expr, mul

#: Element-wise ops never folded: the lookup, and the markers of parallel regions.
KEEP = frozenset((Fn.GATHER, Fn.TO_TP, Fn.LOSS))
#: Points at which a per-element ratio is checked to be a constant (free symbols b, s, t, s_l,
#: and an encoder-decoder's s_enc).
PROBES = (
    {"b": 3, "s": 5, "t": 7, "s_logits": 2, "s_enc": 17},
    {"b": 2, "s": 11, "t": 13, "s_logits": 3, "s_enc": 19},
)


def fuse(ops: list[Op] | tuple[Op, ...]) -> list[Op]:
    """One layer's ops with every element-wise chain folded into a product (module docstring)."""
    out = list(ops)
    i = 0
    while i < len(out):
        op = out[i]
        if _foldable(op) and op.group is not Group.NORM:  # a norm goes to its readers
            writers = _producers(out, i)
            if (
                writers
                and all(_plain_product(out[j]) for j in writers)
                and not any(o.collective is not None for o in out[writers[-1] + 1 : i])
            ):
                out, i = _into_epilogue(out, i, writers)
                continue
        i += 1
    i = 0
    while i < len(out):
        if _foldable(out[i]) and _into_prologues(out, i):
            del out[i]
            continue
        i += 1
    return out


def _foldable(op: Op) -> bool:
    return op.gemm is None and op.collective is None and op.kernels > 0 and op.fn not in KEEP


def _plain_product(op: Op) -> bool:
    """A product with a weight: its epilogue and prologue take element-wise work."""
    return op.gemm is not None and not op.activation_product


def _writer(ops: list[Op], before: int, tensor: Tensor) -> int | None:
    for j in range(before - 1, -1, -1):
        if any(a.tensor == tensor for a in ops[j].writes):
            return j
    return None


def _producers(ops: list[Op], i: int) -> list[int]:
    """Indices of the ops that wrote the activations op i reads (in this layer), in order."""
    found = {
        j
        for a in ops[i].reads
        if a.tensor.role is Role.ACTIVATION
        and (j := _writer(ops, i, a.tensor)) is not None  # fmt: skip
    }
    return sorted(found)


def _into_epilogue(ops: list[Op], i: int, writers: list[int]) -> tuple[list[Op], int]:
    """Fold op i into its last producer (siblings merged first); the new index to resume at."""
    if len(writers) > 1 and (merged := _siblings([ops[j] for j in writers])) is not None:
        ops = [o for k, o in enumerate(ops) if k not in writers[:-1]]
        shift = len(writers) - 1
        ops[writers[-1] - shift] = merged
        i -= shift
        writers = [writers[-1] - shift]
    j = writers[-1]
    product, op = ops[j], ops[i]
    on_chip = {a.tensor for a in product.writes}
    side = tuple(a for a in op.reads if a.tensor not in on_chip)
    keep = tuple(a for a in product.writes if _read_elsewhere(ops, j, i, a.tensor))
    writes = keep + tuple(a for a in op.writes if a.tensor not in {k.tensor for k in keep})
    ops[j] = fold(product, op.flops, side, writes)
    del ops[i]
    return ops, i


def _read_elsewhere(ops: list[Op], j: int, i: int, tensor: Tensor) -> bool:
    """Whether an op after op j, other than op i, reads `tensor` before it is written again."""
    for k in range(j + 1, len(ops)):
        if k == i:
            continue
        if any(a.tensor == tensor for a in ops[k].reads):
            return True
        if any(a.tensor == tensor for a in ops[k].writes):
            return False
    return False


def _siblings(products: list[Op]) -> Op | None:
    """Products of one input with the same rows and depth, as one product of their widths."""
    first = products[0]
    g = first.gemm
    same = all(
        p.gemm.a == g.a and p.gemm.m == g.m and p.gemm.k == g.k and p.gemm.batch == g.batch
        for p in products
    )
    if not same or len(products) != 2:
        return None
    second = products[1]
    prefix, _, a_name = first.name.rpartition("_")
    other, _, b_name = second.name.rpartition("_")
    name = (
        f"{prefix}_{a_name}_{b_name}"
        if prefix and prefix == other
        else (f"{first.name}+{second.name}")
    )  # mlp_gate_up; q_proj+kv_a_proj
    own = tuple(a for a in second.reads if a.tensor != g.a)  # its weight and bias
    return replace(
        first,
        name=name,
        flops=first.flops + second.flops,
        reads=first.reads + own,
        writes=first.writes + second.writes,
        gemm=replace(g, n=g.n + second.gemm.n),
        dequant=first.dequant + second.dequant,
        saves=first.saves + second.saves,
    )


def _into_prologues(ops: list[Op], i: int) -> bool:
    """Fold op i into the prologue of every op that reads its output, when those are all plain
    products reading it as their input; False (nothing changed) otherwise."""
    op = ops[i]
    outputs = {a.tensor for a in op.writes}
    readers = [j for j in range(i + 1, len(ops)) if any(a.tensor in outputs for a in ops[j].reads)]
    if not readers or len(outputs) != 1:
        return False
    (out,) = outputs
    if not all(_plain_product(ops[j]) and ops[j].gemm.a == out for j in readers):
        return False
    if _gathers_untracked(ops, {ops[j].group for j in readers}):
        return False
    per_element = _ratio(op.flops, op.writes[0].elements)
    if per_element is None:
        return False
    for j in readers:
        consumer = ops[j]
        rows = next(a.elements for a in consumer.reads if a.tensor == out)
        inputs = tuple(_rescaled(a, op.writes[0].elements, rows) for a in op.reads)
        reads = tuple(a for a in consumer.reads if a.tensor != out)
        ops[j] = replace(fold(consumer, mul(per_element, rows)), reads=inputs + reads)
    return True


def _rescaled(access: Access, produced: Expr, rows: Expr) -> Access:
    """An input of the folded op, as the reader's prologue reads it: an activation for the
    reader's rows only (the final norm for the b·s_logits rows the LM head takes)."""
    if access.tensor.role is Role.ACTIVATION and access.elements == produced:
        return Access(access.tensor, rows)
    return access


def _gathers_untracked(ops: list[Op], groups: set) -> bool:
    """Whether a product of `groups` takes as input an activation no op of the layer writes (a
    routed expert's rows, gathered by index from the norm's output): then the norm's output
    must reach memory."""
    written = {a.tensor for op in ops for a in op.writes}
    return any(
        op.group in groups and _plain_product(op) and op.gemm.a.role is Role.ACTIVATION
        and op.gemm.a not in written
        for op in ops
    )  # fmt: skip


def _ratio(flops: Expr, elements: Expr) -> float | None:
    """FLOPs per output element when that is a constant (a norm's 4 or 7), else None."""
    values = []
    for env in PROBES:
        n = elements.value(env)
        if not n:
            return None
        values.append(flops.value(env) / n)
    return values[0] if abs(values[0] - values[1]) <= 1e-12 * abs(values[0]) else None
