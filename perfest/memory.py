"""Inference memory per device: weights, KV cache, peak activations.

    weights      L·(block matmul weights)·w/tp + (embeddings, norms, LM head)·emb/tp
                 (weight-only quantization leaves embeddings, norms and LM head in the
                 activation dtype, as AWQ/GPTQ checkpoints do)
    KV cache     2·L·b·(input + output)·n_kv·d·kv / tp        (kv heads replicated if n_kv < tp)
    activations  the largest live set of one prefill layer, per device:
                 b·s·(2h + max((n_h + 2·n_kv)·d, (2 if gated else 1)·i))·act
                 (+ b·n_h·s·s·act for eager attention's score matrix)
                 + b·s_logits·V·4 (fp32 logits)
Framework overheads (CUDA context, allocator fragmentation, serving engines' pre-allocation)
are not included: the total is what the model itself needs.
"""

from __future__ import annotations

from math import ceil

from perfest.layers import Pass
from perfest.layers.attention import attention_params
from perfest.layers.mlp import mlp_params
from perfest.parameters import count_parameters
from perfest.specs import ModelConfig


def weight_bytes(model: ModelConfig, w: float, emb: float, tp: int) -> float:
    """Bytes of weights on each device."""
    matmul_weights = model.L * (attention_params(model) + mlp_params(model))
    rest = count_parameters(model) - matmul_weights
    return (matmul_weights * w + rest * emb) / tp


def kv_bytes_per_sequence(model: ModelConfig, context: int, kv: float, tp: int) -> float:
    """K and V for `context` tokens of one sequence, on each device."""
    return 2 * model.L * context * ceil(model.n_kv / tp) * model.d * kv


def activation_bytes_per_sequence(model: ModelConfig, p: Pass) -> float:
    """Peak live activations of one sequence of prefill pass `p` on each device."""
    s, act, d = p.s, p.act, model.d
    n_h, n_kv, i = p.n_h(model), p.n_kv(model), p.i(model)
    widest = max((n_h + 2 * n_kv) * d, (2 if model.mlp == "gated" else 1) * i)
    layer = s * (2 * model.h + widest) * act
    if not p.flash:
        layer += n_h * s * s * act
    logits = p.s_logits * p.V(model) * 4.0
    return layer + logits
