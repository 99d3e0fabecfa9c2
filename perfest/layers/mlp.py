"""The MLP: classic (up, activation, down) or gated (gate and up, act(gate)·up, down).

    classic  mlp_up    [b·s, h] @ [h, i]    2·b·s·h·i
             mlp_down  [b·s, i] @ [i, h]    2·b·s·i·h          → 4·b·s·h·i; with i = 4h, 16·b·s·h²
    gated    mlp_gate, mlp_up, mlp_down                        → 6·b·s·h·i

Under tensor parallelism i is the device's share; gate and up are column-parallel (their biases
split with them), down is row-parallel (its bias replicated, added after the all-reduce).

Activation FLOPs per element (reasoned, not counted by FlopCounterMode): SiLU x·σ(x) = neg, exp,
add, divide, multiply → 5; GELU (erf or tanh form) ≈ 8; ReLU 1; gating adds 1 multiply.
"""

from __future__ import annotations

from perfest.layers.context import Ctx, Fusion
from perfest.ops import Fn, Group, Op, Tensor, elementwise, matmul, read
from perfest.symbols import Expr, Sym, b, s

ACTIVATION_FLOPS_PER_ELEMENT = {"silu": 5, "gelu": 8, "gelu_tanh": 8, "relu": 1}


def mlp_ops(ctx: Ctx, x: Tensor, y: Tensor, i: Sym | None = None, prefix: str = "mlp") -> list[Op]:
    """x [b·s, h] (normed) → y [b·s, h]. `i` and `prefix`: another MLP of the block, such as
    a mixture of experts' shared experts (i_shared, "shared": shared_gate, shared_up, …)."""
    m = ctx.model
    h, i = ctx.h, ctx.i if i is None else i
    gated = m.mlp == "gated"

    def proj(name: str, a: Tensor, c: Tensor, k: Expr, n: Expr) -> Op:
        bias = ctx.bias(f"{prefix}.{name}.bias", n) if m.mlp_bias else None
        w = ctx.weight(f"{prefix}.{name}.weight", k, n)
        return matmul(name, Group.MLP, a, w, c, m=b * s, k=k, n=n, bias=bias)

    inner = b * s * i  # elements of the [b·s, i] intermediate
    gate, up, act = (ctx.act(f"{prefix}.{n}", b * s, i) for n in ("gate", "up", "act"))
    act_flops = ACTIVATION_FLOPS_PER_ELEMENT[m.activation] + (1 if gated else 0)
    inputs = (read(gate, inner), read(up, inner)) if gated else (read(up, inner),)
    ops = [proj(f"{prefix}_gate", x, gate, h, i)] if gated else []  # [b·s, h] @ [h, i]
    if gated and ctx.fusion is Fusion.NONE:  # eager: act(gate), then · up, apart
        activation = eager_gating(ctx, prefix, (gate, up, act), inner)
    else:  # one fused kernel: backward needs its inputs (the gate and up outputs) only
        activation = [
            elementwise(f"{prefix}_act", Group.MLP, inner, act_flops, reads=inputs,
                        writes=(read(act, inner),), fn=Fn.ACTIVATION, saves=inputs)
        ]  # fmt: skip
    ops += [
        proj(f"{prefix}_up", x, up, h, i),  # [b·s, h] @ [h, i]
        *activation,
        proj(f"{prefix}_down", act, y, i, h),  # [b·s, i] @ [i, h]
    ]
    return ops


def eager_gating(ctx: Ctx, prefix: str, tensors: tuple[Tensor, ...], inner: Expr) -> list[Op]:
    """Eager PyTorch's gated activation (fusion none): act(gate) in one kernel, written back,
    then · up in another — the activation's FLOPs, then 1 per element."""
    gate, up, act = tensors
    flops = ACTIVATION_FLOPS_PER_ELEMENT[ctx.model.activation]
    return [
        elementwise(f"{prefix}_act", Group.MLP, inner, flops, (read(gate, inner),),
                    (read(gate, inner),)),
        elementwise(f"{prefix}_gate_mul", Group.MLP, inner, 1,
                    (read(gate, inner), read(up, inner)), (read(act, inner),)),
    ]  # fmt: skip
