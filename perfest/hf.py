"""Reading a Hugging Face `config.json` (offline) into a ModelConfig.

Supported `model_type`s: llama, mistral, qwen2, gemma, phi3, gpt2, falcon, gptj, and the
mixtures of experts mixtral, qwen2_moe, qwen3_moe, deepseek_v2, deepseek_v3, gpt_oss. Each maps
its own field names onto perfest's; what a family fixes by construction (GPT-2's biases,
Qwen2's q/k/v bias, GPT-J's parallel block, Qwen2-MoE's shared-expert gate, gpt-oss's router
and expert biases and attention sinks) is set here, not read. Layouts perfest cannot express
(per-layer lists of dense layers, MoE every n-th layer in DeepSeek's convention, Qwen's
per-layer sliding windows, irregular gpt-oss layer types) are refused in one line.
"""

from __future__ import annotations

from perfest.errors import SpecFileError, UnsupportedError
from perfest.specs import ModelConfig, build

_ACTIVATIONS = {
    "silu": "silu",
    "swish": "silu",
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
}


def _act(name: str | None, where: str) -> str:
    if name is None:
        return "silu"
    if name not in _ACTIVATIONS:
        raise UnsupportedError(f"{where}: hidden_act: activation '{name}' is not supported")
    return _ACTIVATIONS[name]


def _llama_like(c: dict, where: str) -> dict:
    """llama, mistral, qwen2, gemma and phi3 share the Llama field names."""
    kind = c["model_type"]
    bias = bool(c.get("attention_bias", False))
    act = c.get("hidden_activation") or c.get("hidden_act")
    rotary = c.get("partial_rotary_factor")
    head_dim = c.get("head_dim")
    fields = dict(
        vocab_size=c.get("vocab_size"),
        hidden_size=c.get("hidden_size"),
        num_layers=c.get("num_hidden_layers"),
        num_heads=c.get("num_attention_heads"),
        num_kv_heads=c.get("num_key_value_heads") or c.get("num_attention_heads"),
        head_dim=head_dim,
        intermediate_size=c.get("intermediate_size"),
        mlp="gated",
        activation=_act(act, where),
        norm="rmsnorm",
        position="rope",
        qkv_bias=True if kind == "qwen2" else bias,
        out_bias=bias,
        mlp_bias=bool(c.get("mlp_bias", False)),
        tied_embeddings=bool(c.get("tie_word_embeddings", kind == "gemma")),
        max_position_embeddings=c.get("max_position_embeddings", 2048),
    )
    if rotary and head_dim:
        fields["rotary_dim"] = int(head_dim * rotary)
    elif rotary and c.get("hidden_size") and c.get("num_attention_heads"):
        fields["rotary_dim"] = int(c["hidden_size"] // c["num_attention_heads"] * rotary)
    return fields


def _gpt2(c: dict, where: str) -> dict:
    h = c.get("n_embd")
    return dict(
        vocab_size=c.get("vocab_size"),
        hidden_size=h,
        num_layers=c.get("n_layer"),
        num_heads=c.get("n_head"),
        intermediate_size=c.get("n_inner") or (4 * h if h else None),
        mlp="classic",
        activation=_act(c.get("activation_function", "gelu_new"), where),
        norm="layernorm",
        position="learned",
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        tied_embeddings=bool(c.get("tie_word_embeddings", True)),
        max_position_embeddings=c.get("n_positions", 1024),
    )


def _gptj(c: dict, where: str) -> dict:
    """GPT-2's field names; a parallel block, partial RoPE, no attention biases, a biased and
    untied LM head."""
    return {
        **_gpt2(c, where),
        "position": "rope",
        "rotary_dim": c.get("rotary_dim"),
        "qkv_bias": False,
        "out_bias": False,
        "lm_head_bias": True,
        "tied_embeddings": bool(c.get("tie_word_embeddings", False)),
        "parallel_block": True,
        "max_position_embeddings": c.get("n_positions", 2048),
    }


def _falcon(c: dict, where: str) -> dict:
    if c.get("alibi"):
        raise UnsupportedError(f"{where}: alibi: ALiBi positions are not supported")
    h = c.get("hidden_size")
    heads = c.get("num_attention_heads") or c.get("n_head")
    new_arch = bool(c.get("new_decoder_architecture", False))
    if new_arch:
        kv = c.get("num_kv_heads") or heads
    else:
        kv = 1 if c.get("multi_query", True) else heads
    bias = bool(c.get("bias", False))
    return dict(
        vocab_size=c.get("vocab_size"),
        hidden_size=h,
        num_layers=c.get("num_hidden_layers") or c.get("n_layer"),
        num_heads=heads,
        num_kv_heads=kv,
        intermediate_size=c.get("ffn_hidden_size") or (4 * h if h else None),
        mlp="classic",
        activation="gelu",
        norm="layernorm",
        position="rope",
        qkv_bias=bias,
        out_bias=bias,
        mlp_bias=bias,
        tied_embeddings=bool(c.get("tie_word_embeddings", True)),
        # Falcon-40B's "new decoder architecture" has two norms per block; modelled as sequential.
        parallel_block=bool(c.get("parallel_attn", True)) and not new_arch,
        max_position_embeddings=c.get("max_position_embeddings", 2048),
    )


def _window(c: dict) -> dict:
    """Mistral and Mixtral: a sliding window on every layer (null: full attention)."""
    window = c.get("sliding_window")
    return {"sliding_window": window} if window else {}


def _mistral(c: dict, where: str) -> dict:
    return {**_llama_like(c, where), **_window(c)}


def _mixtral(c: dict, where: str) -> dict:
    """Mistral's fields; every layer a mixture of num_local_experts experts of
    intermediate_size, top num_experts_per_tok by softmax."""
    return {
        **_mistral(c, where),
        "num_experts": c.get("num_local_experts"),
        "experts_per_token": c.get("num_experts_per_tok"),
    }


def _qwen_moe(c: dict, where: str) -> dict:
    """Qwen2-MoE and Qwen3-MoE: MoE on every decoder_sparse_step-th layer; Qwen2-MoE adds a
    shared expert with a sigmoid gate (and q/k/v biases), Qwen3-MoE a per-head QK-norm."""
    kind = c["model_type"]
    if c.get("mlp_only_layers"):
        raise UnsupportedError(f"{where}: mlp_only_layers: per-layer dense lists are not supported")
    if c.get("use_sliding_window"):
        raise UnsupportedError(
            f"{where}: use_sliding_window: Qwen's per-layer windows are not supported"
        )
    fields = {
        **_llama_like(c, where),
        "num_experts": c.get("num_experts"),
        "experts_per_token": c.get("num_experts_per_tok"),
        "expert_intermediate_size": c.get("moe_intermediate_size"),
        "moe_layer_frequency": c.get("decoder_sparse_step", 1),
    }
    if kind == "qwen2_moe":
        fields["qkv_bias"] = True
        shared = c.get("shared_expert_intermediate_size")
        if shared:
            fields.update(shared_expert_intermediate_size=shared, shared_expert_gate=True)
    else:
        fields["qk_norm"] = True
    return fields


def _deepseek(c: dict, where: str) -> dict:
    """DeepSeek-V2 and V3: latent attention, first_k_dense_replace dense layers then MoE
    (DeepSeekMoE: n_shared_experts shared experts of moe_intermediate_size each). The V3
    checkpoint's multi-token-prediction layer (num_nextn_predict_layers) is not modelled."""
    if c.get("moe_layer_freq", 1) != 1:
        raise UnsupportedError(f"{where}: moe_layer_freq: MoE on every n-th layer (n > 1) in "
                               "DeepSeek's convention is not supported")  # fmt: skip
    fields = _llama_like(c, where)
    fields.update(
        num_kv_heads=None,
        num_experts=c.get("n_routed_experts"),
        experts_per_token=c.get("num_experts_per_tok"),
        expert_intermediate_size=c.get("moe_intermediate_size"),
        shared_experts=c.get("n_shared_experts") or 0,
        first_dense_layers=c.get("first_k_dense_replace", 0),
        router_scoring=c.get("scoring_func", "softmax"),
        router_bias=c.get("topk_method") == "noaux_tc",  # e_score_correction_bias
        q_lora_rank=c.get("q_lora_rank"),
        kv_lora_rank=c.get("kv_lora_rank"),
        qk_nope_head_dim=c.get("qk_nope_head_dim"),
        qk_rope_head_dim=c.get("qk_rope_head_dim"),
        v_head_dim=c.get("v_head_dim"),
    )
    fields.pop("rotary_dim", None)
    return fields


def _gpt_oss(c: dict, where: str) -> dict:
    """gpt-oss: every layer a mixture of experts with biases (router too), attention sinks,
    q/k/v and output biases, windows on the sliding_attention layers of `layer_types`, MXFP4
    experts when quantization_config says so."""
    fields = {
        **_llama_like(c, where),
        "qkv_bias": True,
        "out_bias": True,
        "mlp_bias": True,
        "num_experts": c.get("num_local_experts"),
        "experts_per_token": c.get("num_experts_per_tok") or c.get("experts_per_token"),
        "router_bias": True,
        "attention_sinks": True,
        "sliding_window": c.get("sliding_window"),
        "global_attention_every": _global_every(c.get("layer_types"), where),
    }
    quant = c.get("quantization_config") or {}
    if quant.get("quant_method") == "mxfp4":
        fields["expert_weight_dtype"] = "mxfp4"
    return fields


def _global_every(layer_types: list | None, where: str) -> int | None:
    """n when every n-th layer ((l + 1) % n == 0) is full attention and the rest slide; None
    when all slide."""
    if not layer_types:
        return None
    full = [i for i, kind in enumerate(layer_types) if kind == "full_attention"]
    if not full:
        return None
    n = full[0] + 1
    if full != list(range(n - 1, len(layer_types), n)):
        raise UnsupportedError(f"{where}: layer_types: only every n-th layer global is supported")
    return n


_READERS = {
    "llama": _llama_like,
    "mistral": _mistral,
    "mixtral": _mixtral,
    "qwen2_moe": _qwen_moe,
    "qwen3_moe": _qwen_moe,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "gpt_oss": _gpt_oss,
    "qwen2": _llama_like,
    "gemma": _llama_like,
    "phi3": _llama_like,
    "gpt2": _gpt2,
    "gptj": _gptj,
    "falcon": _falcon,
    "RefinedWebModel": _falcon,
    "RefinedWeb": _falcon,
}


def model_from_hf_config(config: dict, where: str = "config.json", name: str = "") -> ModelConfig:
    """Build a ModelConfig from a parsed Hugging Face config.json."""
    if not isinstance(config, dict):
        raise SpecFileError(f"{where}: expected a JSON object")
    kind = config.get("model_type")
    if kind not in _READERS:
        known = ", ".join(sorted(k for k in _READERS if k.islower()))
        raise UnsupportedError(f"{where}: model_type: '{kind}' is not supported (known: {known})")
    fields = _READERS[kind](config, where)
    optional = (
        "head_dim",
        "q_lora_rank",
        "num_kv_heads",
        "sliding_window",
        "global_attention_every",
    )
    missing = [key for key, value in fields.items() if value is None and key not in optional]
    if missing:
        raise SpecFileError(f"{where}: missing field for {kind}: {missing[0]}")
    fields = {key: value for key, value in fields.items() if value is not None}
    fields["name"] = name or config.get("_name_or_path") or kind
    fields["source"] = where
    return build(ModelConfig, fields, where=where)
