"""Cross-field checks of a ModelConfig's mixture-of-experts and attention-variant fields
(perfest.specs): each returns the first inconsistency as one line naming the field, or None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfest.specs import ModelConfig


def moe_problem(m: ModelConfig) -> str | None:
    """The first inconsistency among the mixture-of-experts fields, as one line (or None)."""
    if not m.moe:
        fields = type(m).model_fields
        extra = [name for name in _MOE_ONLY if getattr(m, name) != fields[name].default]
        if m.experts_per_token is not None:
            extra.insert(0, "experts_per_token")
        return f"{extra[0]}: only a mixture of experts has it; set num_experts" if extra else None
    E, k = m.num_experts, m.experts_per_token
    if k is None:
        return "experts_per_token: a mixture of experts needs experts_per_token (its top-k)"
    if k > E:
        return f"experts_per_token: top-{k} of {E} experts: top-k cannot exceed num_experts"
    if m.first_dense_layers >= m.L:
        return (
            f"first_dense_layers: {m.first_dense_layers} dense layers leave none of the "
            f"{m.L} layers for experts"
        )
    if m.shared_expert_gate and not m.i_shared:
        return "shared_expert_gate: the model has no shared experts to gate"
    return None


#: Fields a dense model leaves at their defaults.
_MOE_ONLY = (
    "expert_intermediate_size",
    "shared_experts",
    "shared_expert_intermediate_size",
    "shared_expert_gate",
    "first_dense_layers",
    "moe_layer_frequency",
    "router_bias",
    "expert_weight_dtype",
)


def attention_problem(m: ModelConfig) -> str | None:
    """The first inconsistency among the attention-variant fields, as one line (or None)."""
    w = m.sliding_window
    if w is not None and w <= 0:
        return (
            f"sliding_window: a window of {w} tokens attends to nothing; give a positive "
            "window, or leave it out for full attention"
        )
    if m.global_attention_every is not None and w is None:
        return "global_attention_every: alternating attention needs a sliding_window"
    if not m.mla:
        for name in ("q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            if getattr(m, name) is not None:
                return f"{name}: only multi-head latent attention has it; set kv_lora_rank"
        return None
    dims = ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
    missing = [name for name in dims if getattr(m, name) is None]
    if missing:
        return f"{missing[0]}: latent attention (kv_lora_rank) needs {', '.join(dims)}"
    nope, rope, v = (getattr(m, name) for name in dims)
    if m.num_kv_heads not in (None, m.num_heads):
        return "num_kv_heads: latent attention has one latent per token, not kv heads"
    if rope % 2:
        return f"qk_rope_head_dim: {rope} is odd; RoPE rotates pairs of dims"
    kv_width = m.n_h * (nope + v)
    if m.kv_lora_rank >= kv_width:
        return (
            f"kv_lora_rank: {m.kv_lora_rank} does not compress the keys and values it stands "
            f"for: n_h·(qk_nope_head_dim + v_head_dim) = {kv_width}"
        )
    q_width = m.n_h * (nope + rope)
    if m.q_lora_rank is not None and m.q_lora_rank >= q_width:
        return (
            f"q_lora_rank: {m.q_lora_rank} does not compress the queries it stands for: "
            f"n_h·(qk_nope_head_dim + qk_rope_head_dim) = {q_width}"
        )
    if m.sliding_window is not None:
        return "sliding_window: windows over latent attention are not modelled"
    return None
