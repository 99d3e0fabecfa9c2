"""Self-attention: Q/K/V projections, RoPE, the KV-cache write, scores, softmax, ·V, output.

Per device under tensor parallelism n_h and n_kv below are the device's shares.

    qkv_proj     [b·s, h] @ [h, (n_h + 2·n_kv)·d]   2·b·s·h·(n_h + 2·n_kv)·d
    attn_scores  [s, d] @ [d, t], b·n_h times       2·b·n_h·s·t·d
    attn_values  [s, t] @ [t, d], b·n_h times       2·b·n_h·s·t·d
    out_proj     [b·s, n_h·d] @ [n_h·d, h]          2·b·s·n_h·d·h

Causal masking: FLOPs are counted for the full s×t score matrix, the convention of the
closed form 24·b·s·h²·L·(1 + s/(6h)) and of torch's FlopCounterMode. A causal kernel that
skips masked tiles does about half the prefill attention work, so for long prompts the
prediction of the two attention matmuls errs on the slow side, by about (s/12h)/(1 + s/6h) of
the prefill FLOPs: 7 % at s = h, 2 % at s = h/4.

With `flash` (the default: FlashAttention-style fused kernels, what serving engines run), the
s×t scores and probabilities stay on chip: one kernel reads Q, K, V and writes the output.
Without it (eager), scores and probabilities round-trip through memory in three kernels.
"""

from __future__ import annotations

from perfest.cost import Op, matmul, vector
from perfest.layers.pass_shape import Pass
from perfest.specs import ModelConfig

#: RoPE: x·cos + rotate(x)·sin → 2 multiplies and 1 add per rotated element.
ROPE_FLOPS_PER_ELEMENT = 3
#: Softmax: max, subtract, exp, sum, divide per score.
SOFTMAX_FLOPS_PER_ELEMENT = 5


def attention_ops(model: ModelConfig, p: Pass) -> list[Op]:
    b, s, h, d = p.b, p.s, model.h, model.d
    n_h, n_kv = p.n_h(model), p.n_kv(model)
    ops = [
        # [b·s, h] @ [h, (n_h + 2·n_kv)·d] → q, k, v
        matmul(
            "qkv_proj",
            "attention",
            b * s,
            h,
            (n_h + 2 * n_kv) * d,
            a_size=p.act,
            b_size=p.w,
            c_size=p.act,
            bias=model.qkv_bias,
            weight_only=p.weight_only,
        ),
    ]
    if model.rope_dim:
        rotated = b * s * (n_h + n_kv) * model.rope_dim  # q and k, rope_dim dims per head
        ops.append(
            vector(
                "rope",
                "attention",
                rotated,
                ROPE_FLOPS_PER_ELEMENT,
                read=rotated * p.act + s * model.rope_dim * p.act,  # x, cos/sin table
                written=rotated * p.act,
            )
        )
    kv_new = b * s * 2 * n_kv * d  # this pass's k and v, appended to the cache
    ops.append(
        vector("kv_cache_write", "attention", kv_new, 0, read=kv_new * p.act, written=kv_new * p.kv)
    )
    ops += _core(model, p, n_h, n_kv)
    # [b·s, n_h·d] @ [n_h·d, h]
    ops.append(
        matmul(
            "out_proj",
            "attention",
            b * s,
            n_h * d,
            h,
            a_size=p.act,
            b_size=p.w,
            c_size=p.act,
            bias=model.out_bias,
            weight_only=p.weight_only,
        )
    )
    return ops


def _core(model: ModelConfig, p: Pass, n_h: int, n_kv: int) -> list[Op]:
    """softmax(q·kᵀ/√d)·v. Grouped-query: each k/v head serves n_h/n_kv query heads, so K and
    V are read once per kv head (b_batch = b·n_kv) while the products run b·n_h times."""
    b, s, t, d = p.b, p.s, p.t, model.d
    eager = not p.flash
    scores = b * n_h * s * t
    return [
        # [s, d] @ [d, t] per (sequence, head): q·kᵀ
        matmul(
            "attn_scores",
            "attention",
            s,
            d,
            t,
            batch=b * n_h,
            b_batch=b * n_kv,
            a_size=p.act,
            b_size=p.kv,
            c_size=p.act,
            write_c=eager,
            activation_product=True,
        ),
        vector(
            "attn_softmax",
            "attention",
            scores,
            SOFTMAX_FLOPS_PER_ELEMENT,
            read=scores * p.act if eager else 0.0,
            written=scores * p.act if eager else 0.0,
            kernels=1 if eager else 0,
        ),
        # [s, t] @ [t, d] per (sequence, head): probabilities · v
        matmul(
            "attn_values",
            "attention",
            s,
            t,
            d,
            batch=b * n_h,
            b_batch=b * n_kv,
            a_size=p.act,
            b_size=p.kv,
            c_size=p.act,
            read_a=eager,
            activation_product=True,
            kernels=1 if eager else 0,
        ),
    ]


def attention_params(model: ModelConfig) -> int:
    """h·(n_h + 2·n_kv)·d for Q, K, V, n_h·d·h for the output, plus any biases."""
    qkv = model.h * (model.q_dim + 2 * model.kv_dim)
    out = model.q_dim * model.h
    bias = (model.q_dim + 2 * model.kv_dim if model.qkv_bias else 0) + (
        model.h if model.out_bias else 0
    )
    return qkv + out + bias
