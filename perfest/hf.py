"""Reading a Hugging Face `config.json` (offline) into a ModelConfig.

Supported `model_type`s: llama, mistral, qwen2, gemma, phi3, gpt2, falcon, gptj. Each maps its
own field names onto perfest's; what a family fixes by construction (GPT-2's biases, Qwen2's
q/k/v bias, GPT-J's parallel block) is set here, not read.
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


_READERS = {
    "llama": _llama_like,
    "mistral": _llama_like,
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
    missing = [key for key, value in fields.items() if value is None and key != "head_dim"]
    if missing:
        raise SpecFileError(f"{where}: missing field for {kind}: {missing[0]}")
    fields = {key: value for key, value in fields.items() if value is not None}
    fields["name"] = name or config.get("_name_or_path") or kind
    fields["source"] = where
    return build(ModelConfig, fields, where=where)
