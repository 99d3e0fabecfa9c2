"""The optimizer step: its states, and its kernels as element-wise ops over the local shard.

States per parameter, each fp32 (as PyTorch, Apex and Megatron-LM keep them):

    optimizer   states   update per parameter                               FLOPs
    sgd         0        p −= lr·g                                          2
    momentum    1        v = μ·v + g;  p −= lr·v                             4
    rmsprop     1        a = α·a + (1 − α)·g²;  p −= lr·g/(√a + ε)          9
    adam        2        m = β1·m + (1 − β1)·g (3);  v = β2·v + (1 − β2)·g² (4);
                         m̂, v̂ (2);  p −= lr·m̂/(√v̂ + ε) (5)                 14
    adamw       2        adam + decoupled weight decay p·(1 − lr·λ) (1)     15
    lion        1        c = β1·m + (1 − β1)·g (3);  p −= lr·(sign c + λ·p) (5);
                         m = β2·m + (1 − β2)·g (3)                          11

Mixed precision keeps an fp32 master copy of the weights: the update reads the gradient (in
its dtype), the master weight and the states, writes the master and the states, and writes
the 16-bit weight the next forward reads. Without mixed precision (fp32) the update works on
the weight itself. Around the update, once per step:

    zero_grad   the accumulated gradients are zeroed before the first micro-batch (a memset
                of the gradient buffer: Megatron-LM's `zero_grad_buffer`)
    grad_norm   Σ g² for clipping by the global norm (2 FLOPs per gradient element, read
                once), then one all-reduce of a number across every rank (perfest.training
                .parallel: its latency)
    grad_clip   g ·= max_norm / ‖g‖: 1 FLOP per gradient element, read and written
                (torch.nn.utils.clip_grad_norm_ always scales; Megatron-LM only when the norm
                exceeds the threshold, which early training usually does)

Each is one kernel (multi-tensor apply: Apex's FusedAdam and Megatron's `multi_tensor_l2norm`
launch a handful for the whole model). With ZeRO (stage ≥ 1) a rank updates its 1/dp share of
the parameters; with ZeRO-2/3 it also holds and norms only its share of the gradients.
"""

from __future__ import annotations

from typing import NamedTuple

from perfest.graph import Graph, Segment
from perfest.ops import Access, Fn, Group, Op, Role, Tensor, elementwise
from perfest.plan import Plan, Point
from perfest.roofline import Rates
from perfest.specs import DTYPE_BYTES
from perfest.symbols import Sym

STATES = {"sgd": 0, "momentum": 1, "rmsprop": 1, "adam": 2, "adamw": 2, "lion": 1}
UPDATE_FLOPS = {"sgd": 2, "momentum": 4, "rmsprop": 9, "adam": 14, "adamw": 15, "lion": 11}
NORM_FLOPS = 2  # square and add, per gradient element
CLIP_FLOPS = 1  # one multiply per gradient element
STATE_BYTES = 4.0  # fp32
MASTER_BYTES = 4.0  # fp32 master weights under mixed precision


def optimizer_ops(
    optimizer: str, weight: str, grad: str, mixed: bool, grads: int, shard: int
) -> list[Op]:
    """The step's kernels for `grads` gradient elements held and a `shard` of parameters
    updated on this device (module docstring)."""
    n_g, n = Sym("N_grad", grads), Sym("N", shard)

    def tensor(name: str, role: Role, dtype: str, count: Sym) -> Tensor:
        return Tensor(name, role, (count,), dtype, DTYPE_BYTES.get(dtype, STATE_BYTES))

    g_all = tensor("grad", Role.GRADIENT, grad, n_g)
    g = tensor("grad", Role.GRADIENT, grad, n)
    w = tensor("weight", Role.WEIGHT, weight, n)
    master = tensor("master", Role.OPTIMIZER_STATE, "fp32", n) if mixed else w
    states = [tensor(f"state{k}", Role.OPTIMIZER_STATE, "fp32", n)
              for k in range(STATES[optimizer])]  # fmt: skip
    reads = (Access(g, n), Access(master, n), *(Access(x, n) for x in states))
    writes = (Access(master, n), *(Access(x, n) for x in states))
    if mixed:
        writes += (Access(w, n),)
    norm_grads = g_all if grads == shard else g
    count = norm_grads.shape[0]
    normed = (Access(norm_grads, count),)
    kinds = {"fn": Fn.OPTIMIZER}
    return [
        elementwise("zero_grad", Group.OPTIMIZER, n_g, 0, (), (Access(g_all, n_g),), **kinds),
        elementwise("grad_norm", Group.OPTIMIZER, count, NORM_FLOPS, normed, (), **kinds),
        elementwise("grad_clip", Group.OPTIMIZER, count, CLIP_FLOPS, normed, normed, **kinds),
        elementwise("update", Group.OPTIMIZER, n, UPDATE_FLOPS[optimizer], reads, writes, **kinds),
    ]


class OptimizerCost(NamedTuple):
    """The step's kernels as a line in the element counts: time = a·grads + c·shard + launches
    (element-wise kernels are exactly linear in their elements: perfest.plan's vector term)."""

    per_grad_s: float  # zero_grad (+ grad_norm and grad_clip when they cover all gradients)
    per_shard_s: float  # update (+ grad_norm and grad_clip over the shard)
    launch_s: float
    roof_per_grad_s: float
    roof_per_shard_s: float
    flops_per_shard: float
    bytes_per_grad: float
    bytes_per_shard: float

    def time_s(self, grads: float, shard: float) -> float:
        return self.per_grad_s * grads + self.per_shard_s * shard + self.launch_s

    def roofline_s(self, grads: float, shard: float) -> float:
        return self.roof_per_grad_s * grads + self.roof_per_shard_s * shard


def optimizer_cost(
    optimizer: str, weight: str, grad: str, mixed: bool, sharded_norm: bool, r: Rates
) -> OptimizerCost:
    """Per-element costs of the step's kernels, from the plan evaluating them at one element
    each (two calls: gradients counted apart from the shard)."""
    ops = optimizer_ops(optimizer, weight, grad, mixed, 1, 1)
    plan = Plan(Graph((Segment("optimizer", tuple(ops), 1),)), r, {})
    point = Point(1, 1, 1, 1)
    rows = {row.op.name: row for row in plan.rows(point)}
    norming = ["grad_norm", "grad_clip"]
    grad_side = ["zero_grad"] + ([] if sharded_norm else norming)
    shard_side = ["update"] + (norming if sharded_norm else [])

    def busy(names: list[str]) -> float:
        return sum(rows[n].time - rows[n].overhead for n in names)

    def roof(names: list[str]) -> float:
        return sum(rows[n].roofline for n in names)

    def per(names: list[str], what: str) -> float:
        return sum(getattr(rows[n], what) for n in names)

    return OptimizerCost(
        busy(grad_side),
        busy(shard_side),
        plan.overhead_s,
        roof(grad_side),
        roof(shard_side),
        per(shard_side, "flops"),
        per(grad_side, "bytes"),
        per(shard_side, "bytes"),
    )


def state_bytes_per_parameter(optimizer: str, mixed: bool) -> tuple[float, float]:
    """(master, states) bytes per parameter: fp32 master under mixed precision, fp32 states."""
    return (MASTER_BYTES if mixed else 0.0), STATES[optimizer] * STATE_BYTES
