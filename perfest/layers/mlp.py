"""The MLP: classic (up, activation, down) or gated (gate and up, act(gate)·up, down).

    classic  mlp_up    [b·s, h] @ [h, i]    2·b·s·h·i
             mlp_down  [b·s, i] @ [i, h]    2·b·s·i·h          → 4·b·s·h·i; with i = 4h, 16·b·s·h²
    gated    mlp_gate, mlp_up, mlp_down                        → 6·b·s·h·i

Activation FLOPs per element (reasoned, not counted by FlopCounterMode): SiLU x·σ(x) = neg, exp,
add, divide, multiply → 5; GELU (erf or tanh form) ≈ 8; ReLU 1; gating adds 1 multiply.
"""

from __future__ import annotations

from perfest.cost import Op, matmul, vector
from perfest.layers.pass_shape import Pass
from perfest.specs import ModelConfig

ACTIVATION_FLOPS_PER_ELEMENT = {"silu": 5, "gelu": 8, "gelu_tanh": 8, "relu": 1}


def mlp_ops(model: ModelConfig, p: Pass) -> list[Op]:
    b, s, h = p.b, p.s, model.h
    i = p.i(model)
    m = b * s

    def proj(name: str, k: int, n: int) -> Op:
        return matmul(
            name,
            "mlp",
            m,
            k,
            n,
            a_size=p.act,
            b_size=p.w,
            c_size=p.act,
            bias=model.mlp_bias,
            weight_only=p.weight_only,
        )

    gated = model.mlp == "gated"
    inner = m * i  # elements of the [b·s, i] intermediate
    act_flops = ACTIVATION_FLOPS_PER_ELEMENT[model.activation] + (1 if gated else 0)
    ops = [proj("mlp_gate", h, i)] if gated else []  # [b·s, h] @ [h, i]
    ops += [
        proj("mlp_up", h, i),  # [b·s, h] @ [h, i]
        vector(
            "mlp_act",
            "mlp",
            inner,
            act_flops,
            read=inner * p.act * (2 if gated else 1),
            written=inner * p.act,
        ),
        proj("mlp_down", i, h),  # [b·s, i] @ [i, h]
    ]
    return ops


def mlp_params(model: ModelConfig) -> int:
    """(3 if gated else 2)·h·i weights, plus biases (gated: 2i + h; classic: i + h)."""
    h, i = model.h, model.i
    matrices = 3 if model.mlp == "gated" else 2
    bias = ((2 if model.mlp == "gated" else 1) * i + h) if model.mlp_bias else 0
    return matrices * h * i + bias
