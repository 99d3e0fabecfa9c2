"""LayerNorm and RMSNorm over the hidden dimension.

FLOPs per element (reasoned from the definitions, not counted by torch's FlopCounterMode):
    RMSNorm   y = x / sqrt(mean(x²) + ε) · γ          square, sum, scale, γ       → 4
    LayerNorm y = (x − mean(x)) / sqrt(var + ε) · γ + β  sum, sub, square, sum,
                                                          scale, γ, β              → 7
"""

from __future__ import annotations

from perfest.cost import Op, vector
from perfest.layers.pass_shape import Pass
from perfest.specs import ModelConfig

NORM_FLOPS_PER_ELEMENT = {"rmsnorm": 4, "layernorm": 7}
NORM_PARAMS_PER_CHANNEL = {"rmsnorm": 1, "layernorm": 2}  # γ, and β for LayerNorm


def norm_params(model: ModelConfig) -> int:
    """Parameters of one norm: h (RMSNorm γ) or 2h (LayerNorm γ, β)."""
    return NORM_PARAMS_PER_CHANNEL[model.norm] * model.h


def norm_op(name: str, model: ModelConfig, p: Pass, rows: int | None = None) -> Op:
    """Normalize `rows` (default b·s) vectors of width h: read x and γ(β), write y."""
    b, s, h = p.b, p.s, model.h
    n = b * s * h if rows is None else rows * h
    return vector(
        name,
        "norm",
        n,
        NORM_FLOPS_PER_ELEMENT[model.norm],
        read=n * p.act + norm_params(model) * p.emb,  # x [rows, h], γ (β) [h]
        written=n * p.act,  # y [rows, h]
    )
