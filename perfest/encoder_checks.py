"""Cross-field checks of a ModelConfig's encoder and encoder-decoder fields (perfest.specs):
the first inconsistency as one line naming the field, or None.

What is modelled: decoders as before; encoders (BERT family: post- or pre-norm blocks, learned
absolute or T5 relative positions, token types, an embedding norm, a pooler or masked-LM head);
encoder-decoders with pre-norm blocks (T5 family). Mixtures of experts, latent attention,
sliding windows, parallel blocks and rotary positions stay decoder-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfest.specs import ModelConfig, Workload

#: Decoder-only features, each named by the field that turns it on.
_DECODER_ONLY = (
    ("num_experts", "mixtures of experts"),
    ("kv_lora_rank", "latent attention"),
    ("sliding_window", "sliding windows"),
)


def encoder_problem(m: ModelConfig) -> str | None:
    """The first inconsistency among the encoder fields, as one line (or None)."""
    arch = m.architecture
    default = type(m).model_fields["relative_attention_num_buckets"].default
    if m.position != "relative" and m.relative_attention_num_buckets != default:
        return "relative_attention_num_buckets: only relative positions (T5) have buckets"
    if arch == "decoder":
        return _decoder_problem(m)
    for name, what in _DECODER_ONLY:
        if getattr(m, name) is not None:
            return f"{name}: {what} are modelled for decoders only (architecture: {arch})"
    if m.parallel_block:
        return f"parallel_block: parallel blocks are modelled for decoders only ({arch})"
    if m.position == "rope":
        return f"position: rotary positions are not modelled for an {arch} (learned, relative)"
    if arch == "encoder":
        if m.num_decoder_layers is not None:
            return "num_decoder_layers: an encoder has no decoder stack"
        if m.head_scale:
            return "head_scale: an encoder has no LM head to scale (its head is `head`)"
        return None
    if m.head != "none":
        return f"head: {m.head}: only an encoder has a pooler or masked-LM head"
    if m.norm_position == "post":
        return "norm_position: post-norm encoder-decoders (BART) are not modelled; T5 is pre-norm"
    if m.type_vocab_size:
        return "type_vocab_size: token types are modelled for encoders only"
    return None


def _decoder_problem(m: ModelConfig) -> str | None:
    """Encoder fields a decoder-only model leaves at their defaults."""
    if m.position == "relative":
        return "position: relative position buckets (T5) need an encoder or encoder-decoder"
    fields = type(m).model_fields
    for name in _ENCODER_ONLY:
        if getattr(m, name) != fields[name].default:
            return f"{name}: only an encoder or encoder-decoder has it (architecture: decoder)"
    return None


#: Fields a decoder-only model leaves at their defaults.
_ENCODER_ONLY = (
    "norm_position",
    "embedding_norm",
    "type_vocab_size",
    "head",
    "num_decoder_layers",
    "head_scale",
)


#: What each architecture is called in a sentence.
ARTICLE = {"decoder": "a decoder", "encoder": "an encoder", "encoder-decoder": "an encoder-decoder"}


def static_workload_problem(m: ModelConfig, w: Workload) -> str | None:
    """What the workload's plan-shaping fields ask of `m` that it has not (one line, or None):
    `--head` on a model without an encoder's heads, a KV-cache dtype for an encoder."""
    arch = ARTICLE[m.architecture]
    if w.head is not None and m.architecture != "encoder":
        return f"head: {m.name} is {arch}; --head picks an encoder's head (pooler, mlm, none)"
    if m.architecture == "encoder" and w.kv_dtype is not None:
        return f"kv_dtype: {m.name} is an encoder: it keeps no KV cache"
    return None


def point_workload_problem(m: ModelConfig, w: Workload) -> str | None:
    """What the workload's lengths ask of an encoder that it does not do: generate tokens
    (--output-len), put positions through an LM head (--logits). Only fields given count."""
    if m.architecture != "encoder":
        return None
    given = w.model_fields_set
    if "output_len" in given:
        return (
            f"output_len: {m.name} is an encoder: one encode pass over --input-len tokens, "
            "nothing generated (no decode phase)"
        )
    if "logits" in given:
        return f"logits: {m.name} is an encoder: --head picks what runs after it (pooler, mlm)"
    return None
