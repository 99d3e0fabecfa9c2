"""Hugging Face config.json readers of encoders and encoder-decoders (perfest.hf's registry
calls them): `bert` and `roberta` (BERT's structure), `t5` (T5 v1.0, v1.1, Flan-T5)."""

from __future__ import annotations

from perfest.errors import SpecFileError, UnsupportedError
from perfest.hf import _act, _flag, _number


def bert(c: dict, where: str) -> dict:
    """BERT and RoBERTa (encoders): post-norm blocks, biases on every linear layer, token +
    absolute position + token-type embeddings summed and LayerNorm'd, GELU; the pooler is
    the default head (BertModel's, RobertaModel's), the masked-LM head's decoder tied to the
    word embedding with a bias of its own. Only absolute positions are modelled."""
    kind = c.get("position_embedding_type", "absolute")
    if kind not in (None, "absolute"):
        raise UnsupportedError(
            f"{where}: position_embedding_type: '{str(kind)[:20]}' positions are not modelled "
            "(absolute are)"
        )
    heads = _number(c, "num_attention_heads", where)
    return dict(
        architecture="encoder",
        vocab_size=c.get("vocab_size"),
        hidden_size=_number(c, "hidden_size", where),
        num_layers=c.get("num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=heads,
        intermediate_size=c.get("intermediate_size"),
        mlp="classic",
        activation=_act(c.get("hidden_act", "gelu"), where),
        norm="layernorm",
        norm_position="post",
        position="learned",
        embedding_norm=True,
        type_vocab_size=c.get("type_vocab_size", 2),
        head="pooler",
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        lm_head_bias=True,
        tied_embeddings=_flag(c, "tie_word_embeddings", True, where),
        max_position_embeddings=c.get("max_position_embeddings", 512),
    )


def t5(c: dict, where: str) -> dict:
    """T5 (v1.0, v1.1, Flan-T5): an encoder-decoder with RMS-style norms, no biases, a relative
    position bias per stack; `feed_forward_proj` "relu" or "gated-gelu" ("gated-" + an
    activation: a gated MLP; T5Config maps gated-gelu to the tanh GELU, gelu_new); a tied
    LM head is preceded by a d_model^-0.5 scale."""
    proj = c.get("feed_forward_proj", "relu")
    if not isinstance(proj, str) or proj.count("-") > 1:
        raise SpecFileError(f"{where}: feed_forward_proj: expected 'relu' or 'gated-gelu' "
                            f"(got {str(proj)[:40]!r})")  # fmt: skip
    gated = proj.startswith("gated-")
    act = "gelu_new" if proj == "gated-gelu" else proj.removeprefix("gated-")
    if c.get("is_encoder_decoder", True) is False:
        raise UnsupportedError(
            f"{where}: is_encoder_decoder: a T5 encoder alone is not read from config.json "
            "(write its YAML: architecture: encoder)"
        )
    tied = _flag(c, "tie_word_embeddings", True, where)
    heads = _number(c, "num_heads", where)
    return dict(
        architecture="encoder-decoder",
        vocab_size=c.get("vocab_size"),
        hidden_size=_number(c, "d_model", where),
        num_layers=c.get("num_layers"),
        num_decoder_layers=c.get("num_decoder_layers"),
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=_number(c, "d_kv", where),
        intermediate_size=c.get("d_ff"),
        mlp="gated" if gated else "classic",
        activation=_act(act, where),
        norm="rmsnorm",
        norm_position="pre",
        position="relative",
        relative_attention_num_buckets=c.get("relative_attention_num_buckets", 32),
        tied_embeddings=tied,
        head_scale=tied,
        max_position_embeddings=c.get("n_positions", 512),
    )
