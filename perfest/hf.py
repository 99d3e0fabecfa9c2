"""Reading a Hugging Face `config.json` (offline) into a ModelConfig.

Supported `model_type`s: llama, mistral, qwen2, gemma, phi3, gpt2, falcon, gptj, the
mixtures of experts mixtral, qwen2_moe, qwen3_moe, deepseek_v2, deepseek_v3, gpt_oss, the
encoders bert and roberta, and the encoder-decoder t5. Each maps
its own field names onto perfest's; what a family fixes by construction (GPT-2's biases,
Qwen2's q/k/v bias, GPT-J's parallel block, Qwen2-MoE's shared-expert gate, gpt-oss's router
and expert biases and attention sinks) is set here, not read. No architecture field is ignored:
a `quantization_config` sets the model's weight dtype; layouts perfest cannot express
(mixture-of-experts fields in a family read as dense, per-layer lists of dense layers, MoE every
n-th layer in DeepSeek's convention, Qwen's per-layer sliding windows, irregular gpt-oss layer
types) are refused in one line, naming the field.
"""

from __future__ import annotations

import math
from typing import Any

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
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise UnsupportedError(f"{where}: hidden_act: activation {name!r} is not supported")
    return _ACTIVATIONS[name]


#: The largest number a config's size field may hold before perfest's own bounds apply.
MAX_NUMBER = 10**15


def _number(c: dict, key: str, where: str, whole: bool = True) -> Any:
    """c[key] when it is a number (a whole one if `whole`), None when absent or null; a bool,
    a string or a fraction where a size belongs is a one-line error naming the field."""
    value = c.get(key)
    kinds = (int,) if whole else (int, float)
    if value is None or (isinstance(value, kinds) and not isinstance(value, bool)):
        if not whole and isinstance(value, float) and not math.isfinite(value):
            raise SpecFileError(f"{where}: {key}: must be a finite number (got {value})")
        if value is not None and abs(value) > MAX_NUMBER:  # arithmetic below must not overflow
            shown = f"a {len(str(abs(value)))}-digit number" if isinstance(value, int) else value
            raise SpecFileError(
                f"{where}: {key}: must be at most {MAX_NUMBER:,} (got {shown}; larger is not "
                "physically meaningful)"
            )
        return value
    what = "a whole number" if whole else "a number"
    raise SpecFileError(f"{where}: {key}: must be {what} (got {str(value)[:40]!r})")


def _flag(c: dict, key: str, default: bool, where: str) -> bool:
    value = c.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise SpecFileError(f"{where}: {key}: must be true or false (got {str(value)[:40]!r})")
    return value


def _llama_like(c: dict, where: str) -> dict:
    """llama, mistral, qwen2, gemma and phi3 share the Llama field names."""
    kind = c["model_type"]
    bias = _flag(c, "attention_bias", False, where)
    act = c.get("hidden_activation") or c.get("hidden_act")
    rotary = _number(c, "partial_rotary_factor", where, whole=False)
    head_dim = _number(c, "head_dim", where)
    h, heads = _number(c, "hidden_size", where), _number(c, "num_attention_heads", where)
    fields = dict(
        vocab_size=c.get("vocab_size"),
        hidden_size=h,
        num_layers=c.get("num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=c.get("num_key_value_heads") or heads,
        head_dim=head_dim,
        intermediate_size=c.get("intermediate_size"),
        mlp="gated",
        activation=_act(act, where),
        norm="rmsnorm",
        position="rope",
        qkv_bias=True if kind == "qwen2" else bias,
        out_bias=bias,
        mlp_bias=_flag(c, "mlp_bias", False, where),
        tied_embeddings=_flag(c, "tie_word_embeddings", kind == "gemma", where),
        max_position_embeddings=c.get("max_position_embeddings", 2048),
    )
    if rotary and head_dim:
        fields["rotary_dim"] = int(head_dim * rotary)
    elif rotary and h and heads:
        fields["rotary_dim"] = int(h // heads * rotary)
    return fields


def _gpt2(c: dict, where: str) -> dict:
    h = _number(c, "n_embd", where)
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
        tied_embeddings=_flag(c, "tie_word_embeddings", True, where),
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
        "tied_embeddings": _flag(c, "tie_word_embeddings", False, where),
        "parallel_block": True,
        "max_position_embeddings": c.get("n_positions", 2048),
    }


def _falcon(c: dict, where: str) -> dict:
    if _flag(c, "alibi", False, where):
        raise UnsupportedError(f"{where}: alibi: ALiBi positions are not supported")
    h = _number(c, "hidden_size", where)
    heads = c.get("num_attention_heads") or c.get("n_head")
    new_arch = _flag(c, "new_decoder_architecture", False, where)
    if new_arch:
        kv = c.get("num_kv_heads") or heads
    else:
        kv = 1 if _flag(c, "multi_query", True, where) else heads
    bias = _flag(c, "bias", False, where)
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
        tied_embeddings=_flag(c, "tie_word_embeddings", True, where),
        # Falcon-40B's "new decoder architecture" has two norms per block; modelled as sequential.
        parallel_block=_flag(c, "parallel_attn", True, where) and not new_arch,
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


def _bert(c: dict, where: str) -> dict:
    from perfest.hf_encoders import bert  # encoders' readers live there (hf stays small)

    return bert(c, where)


def _t5(c: dict, where: str) -> dict:
    from perfest.hf_encoders import t5

    return t5(c, where)


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
    "bert": _bert,
    "roberta": _bert,
    "t5": _t5,
}


#: The readers that model experts, and those that read a sliding window (or refuse the kinds
#: they cannot express themselves); any other family is read as dense with full attention.
MOE_READERS = {"mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "gpt_oss"}
WINDOW_READERS = {"mistral", "mixtral", "gpt_oss", "qwen2_moe", "qwen3_moe"}

#: Fields of mixture-of-experts configs (Mixtral, Qwen2-MoE, OLMoE, DeepSeek, DBRX, …): refused
#: in a family read as dense, never silently dropped.
MOE_FIELDS = (
    "num_local_experts",
    "num_experts",
    "n_routed_experts",
    "moe_num_experts",
    "num_experts_per_tok",
    "n_shared_experts",
)


def _refuse_unmodelled(c: dict, where: str, kind: str) -> None:
    """Architecture fields the family's reader does not model: refused with the field named."""
    for key in MOE_FIELDS if kind not in MOE_READERS else ():
        value = c.get(key)
        if value not in (None, 0, 1, False):
            raise UnsupportedError(
                f"{where}: {key}: experts in a {kind} config are not modelled ({key} = "
                f"{str(value)[:20]}; the MoE families are {', '.join(sorted(MOE_READERS))})"
            )
    window = c.get("sliding_window")
    if kind in WINDOW_READERS:
        return
    if window is not None and c.get("use_sliding_window", True) is not False:
        context = c.get("max_position_embeddings") or c.get("n_positions")
        if not isinstance(window, (int, float)) or isinstance(window, bool):
            raise SpecFileError(f"{where}: sliding_window: must be a number or null")
        if not isinstance(context, (int, float)) or window < context:
            raise UnsupportedError(
                f"{where}: sliding_window: sliding-window attention ({window} of "
                f"{context} positions) is not modelled for {kind}"
            )


def _weight_dtype(c: dict, where: str) -> str | None:
    """The weight dtype a `quantization_config` stores: int4 (AWQ, GPTQ, bitsandbytes 4-bit),
    int8 (GPTQ 8-bit, bitsandbytes 8-bit), fp8; None without one."""
    q = c.get("quantization_config")
    if q is None:
        return None
    if not isinstance(q, dict):
        raise SpecFileError(f"{where}: quantization_config: must be a JSON object")
    method = str(q.get("quant_method", "")).lower()
    if method == "mxfp4":  # gpt-oss: only the experts are mxfp4 (the reader's expert dtype)
        return None
    bits = q.get("bits", q.get("w_bit", q.get("weight_bits")))
    if method in ("fp8", "fbgemm_fp8") or q.get("fmt") in ("e4m3", "e5m2"):
        return "fp8"
    if q.get("load_in_4bit") is True:
        return "int4"
    if q.get("load_in_8bit") is True:
        return "int8"
    if method == "compressed-tensors":
        groups = q.get("config_groups")
        group = next(iter(groups.values()), None) if isinstance(groups, dict) else None
        weights = group.get("weights") if isinstance(group, dict) else None
        if isinstance(weights, dict):
            bits = weights.get("num_bits")
            if bits == 8 and weights.get("type") == "float":
                return "fp8"
    if bits in (4, 8) and not isinstance(bits, bool):
        return {4: "int4", 8: "int8"}[bits]
    raise UnsupportedError(
        f"{where}: quantization_config: {method or 'this'} quantization"
        + (f" with {bits}-bit weights" if isinstance(bits, int) else "")
        + " is not modelled (int4, int8 and fp8 weights are)"
    )


def model_from_hf_config(
    config: dict, where: str = "config.json", name: str = "", folder: str = ""
) -> ModelConfig:
    """Build a ModelConfig from a parsed Hugging Face config.json. Its name: `name`, else the
    config's `_name_or_path`, else `folder` (the folder the file sits in), else the model type."""
    if not isinstance(config, dict):
        raise SpecFileError(f"{where}: expected a JSON object")
    kind = config.get("model_type")
    if not isinstance(kind, str) or kind not in _READERS:
        known = ", ".join(sorted(k for k in _READERS if k.islower()))
        problem = "is missing" if kind is None else f"{str(kind)[:40]!r} is not supported"
        raise UnsupportedError(f"{where}: model_type: {problem} (known: {known})")
    _refuse_unmodelled(config, where, kind)
    fields = _READERS[kind](config, where)
    optional = (
        "head_dim",
        "q_lora_rank",
        "num_kv_heads",
        "sliding_window",
        "global_attention_every",
        "num_decoder_layers",
    )
    missing = [key for key, value in fields.items() if value is None and key not in optional]
    if missing:
        raise SpecFileError(f"{where}: missing field for {kind}: {missing[0]}")
    fields = {key: value for key, value in fields.items() if value is not None}
    fields["weight_dtype"] = _weight_dtype(config, where)
    given = config.get("_name_or_path")
    given = given.strip() if isinstance(given, str) else ""
    fields["name"] = name or given or folder or kind
    fields["source"] = where
    return build(ModelConfig, fields, where=where)
