"""PyTorch references of an encoder (BERT family) and an encoder-decoder (T5 family), for any
ModelConfig perfest reads as one: what perfest's encoder costs are measured against, as
perfest.validate.reference is for decoders (random weights, any float dtype, any device, the
meta device included).

Module names are perfest's op groups, and leaf names the rows of the FLOP check
(perfest.validate.flops):

    ReferenceEncoder  embed (token + position + token-type rows, LayerNorm)    embedding
                      [position_bias] (T5's bucketed table)                    attention
                      blocks.N: attn (qkv, core, out), attn_norm, mlp (gate,   attention, norm,
                      up, down), mlp_norm — post-norm or pre-norm              mlp (residual)
                      [final_norm]; head: pooler | mlm_transform + mlm_decoder lm_head
    ReferenceSeq2Seq  encoder (a ReferenceEncoder without head), then the decoder: embed
                      (shared), position_bias, blocks.N: attn (qkv, core, out; KV cache),
                      cross (cross_q, cross_kv, cross_core, cross_out; the cross cache), mlp,
                      their norms; final_norm, lm_head (tied: × h^-1/2 first)

Symbols as in perfest.specs. Attention is bidirectional in an encoder (no mask) and causal in
the decoder; T5's relative bias joins the scores as an additive mask (SDPA's attn_mask), T5
does not scale its scores by 1/√d. Norms inside an embedding or head are functional, so the
per-group timer (perfest.validate.measure) sees each module once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfest.specs import ModelConfig
from perfest.validate import require_torch
from perfest.validate.reference import ACTIVATIONS, MLP, make_norm, torch_dtype

torch = require_torch()
F = torch.nn.functional
nn = torch.nn


def relative_bucket(offset, bidirectional: bool, buckets: int, max_distance: int = 128):
    """T5's bucket of each key − query offset (Hugging Face's _relative_position_bucket)."""
    out = torch.zeros_like(offset)
    if bidirectional:
        buckets //= 2
        out += (offset > 0).long() * buckets
        offset = offset.abs()
    else:
        offset = -torch.minimum(offset, torch.zeros_like(offset))
    exact = buckets // 2
    small = offset < exact
    large = (
        exact
        + (
            torch.log(offset.float().clamp(min=1) / exact)
            / math.log(max_distance / exact)
            * (buckets - exact)
        ).long()
    )
    large = torch.minimum(large, torch.full_like(large, buckets - 1))
    return out + torch.where(small, offset, large)


class RelativeBias(nn.Module):
    """T5's position bias: a [buckets, n_h] table, a bias [1, n_h, s, t] for s queries ending
    at position t − 1 (computed once per pass, read by every layer)."""

    def __init__(self, model: ModelConfig, bidirectional: bool, **factory):
        super().__init__()
        buckets = model.relative_attention_num_buckets
        self.table = nn.Parameter(torch.zeros(buckets, model.n_h, **factory))
        self.bidirectional, self.buckets = bidirectional, buckets

    def forward(self, s: int, t: int):
        device = self.table.device
        queries = torch.arange(t - s, t, device=device)[:, None]
        keys = torch.arange(t, device=device)[None, :]
        bucket = relative_bucket(keys - queries, self.bidirectional, self.buckets)
        if device.type == "meta":  # no values to index with: the shape is what matters
            values = self.table.new_empty(s, t, self.table.shape[1])
        else:
            values = F.embedding(bucket, self.table)  # [s, t, n_h]
        return values.permute(2, 0, 1).unsqueeze(0)  # [1, n_h, s, t]


def attend(q, k, v, flash: bool, bias=None, causal: bool = False, scale: float | None = None):
    """softmax(q·kᵀ·scale + bias (+ causal mask))·v; q [b, n_h, s, d], k and v [b, n_kv, t, d]."""
    s, t = q.shape[2], k.shape[2]
    if q.shape[1] != k.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    mask = bias
    if causal and s > 1:  # new tokens see the cache and the new ones before them
        allowed = torch.ones(s, t, dtype=torch.bool, device=q.device).tril(diagonal=t - s)
        block = torch.zeros(s, t, dtype=q.dtype, device=q.device).masked_fill(~allowed, -1e9)
        mask = block if mask is None else mask + block
    if flash:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # [b, n_h, s, t]
    if mask is not None:
        scores = scores + mask
    return scores.softmax(dim=-1) @ v


class Core(nn.Module):
    """The attention kernel (no parameters): its own module so FLOPs and time attribute to it."""

    def __init__(self, flash: bool, scale: float | None):
        super().__init__()
        self.flash, self.scale = flash, scale

    def forward(self, q, k, v, bias=None, causal=False):
        return attend(q, k, v, self.flash, bias, causal, self.scale)


def _scale(model: ModelConfig) -> float | None:
    """T5 folds 1/√d into its initialisation: scores are not scaled (relative positions)."""
    return 1.0 if model.position == "relative" else None


class EncoderAttention(nn.Module):
    """Self-attention: bidirectional over the pass (cache None), or causal over a KV cache."""

    def __init__(self, model: ModelConfig, flash: bool, **factory):
        super().__init__()
        self.n_h, self.n_kv, self.d = model.n_h, model.n_kv, model.d
        width = (model.n_h + 2 * model.n_kv) * model.d
        self.qkv = nn.Linear(model.h, width, bias=model.qkv_bias, **factory)
        self.core = Core(flash, _scale(model))
        self.out = nn.Linear(model.q_dim, model.h, bias=model.out_bias, **factory)

    def forward(self, x, bias=None, cache=None, layer: int = 0):
        b, s, _ = x.shape
        n_q, n_k = self.n_h * self.d, self.n_kv * self.d
        q, k, v = self.qkv(x).split([n_q, n_k, n_k], dim=-1)
        q = q.view(b, s, self.n_h, self.d).transpose(1, 2)  # [b, n_h, s, d]
        k = k.view(b, s, self.n_kv, self.d).transpose(1, 2)  # [b, n_kv, s, d]
        v = v.view(b, s, self.n_kv, self.d).transpose(1, 2)
        causal = cache is not None
        if cache is not None:  # append this pass's keys and values, attend to all t
            past = cache.length
            cache.keys[layer][:, :, past : past + s] = k
            cache.values[layer][:, :, past : past + s] = v
            k, v = cache.keys[layer][:, :, : past + s], cache.values[layer][:, :, : past + s]
        y = self.core(q, k, v, bias, causal)  # [b, n_h, s, d]
        return self.out(y.transpose(1, 2).reshape(b, s, self.n_h * self.d))


class CrossAttention(nn.Module):
    """Queries from the decoder; keys and values of the encoder output, projected into the
    cross cache on the decoder's first pass (`encoded` given) and read from it afterwards."""

    def __init__(self, model: ModelConfig, flash: bool, **factory):
        super().__init__()
        self.n_h, self.n_kv, self.d = model.n_h, model.n_kv, model.d
        bias = model.qkv_bias
        self.cross_q = nn.Linear(model.h, model.q_dim, bias=bias, **factory)
        self.cross_kv = nn.Linear(model.h, 2 * model.kv_dim, bias=bias, **factory)
        self.cross_core = Core(flash, _scale(model))
        self.cross_out = nn.Linear(model.q_dim, model.h, bias=model.out_bias, **factory)

    def forward(self, x, cache, layer: int, encoded=None):
        b, s, _ = x.shape
        q = self.cross_q(x).view(b, s, self.n_h, self.d).transpose(1, 2)
        if encoded is not None:  # [b, s_enc, h] → the cross cache, once
            s_enc = encoded.shape[1]
            kv = self.cross_kv(encoded).view(b, s_enc, 2 * self.n_kv, self.d).transpose(1, 2)
            cache.cross_keys[layer], cache.cross_values[layer] = kv.split(self.n_kv, dim=1)
        k, v = cache.cross_keys[layer], cache.cross_values[layer]
        y = self.cross_core(q, k, v)
        return self.cross_out(y.transpose(1, 2).reshape(b, s, self.n_h * self.d))


class EncoderBlock(nn.Module):
    """Post-norm (BERT): x = norm(x + attn(x)), then norm(x + mlp(x)).
    Pre-norm (T5): x + attn(norm(x)), then + mlp(norm(x))."""

    def __init__(self, model: ModelConfig, flash: bool, **factory):
        super().__init__()
        self.post = model.norm_position == "post"
        self.attn_norm, self.mlp_norm = make_norm(model, **factory), make_norm(model, **factory)
        self.attn = EncoderAttention(model, flash, **factory)
        self.mlp = MLP(model, **factory)

    def forward(self, x, bias=None):
        if self.post:
            x = self.attn_norm(x + self.attn(x, bias))
            return self.mlp_norm(x + self.mlp(x))
        x = x + self.attn(self.attn_norm(x), bias)
        return x + self.mlp(self.mlp_norm(x))


class DecoderBlock(nn.Module):
    """Pre-norm: causal self-attention over the KV cache, cross-attention, MLP."""

    def __init__(self, model: ModelConfig, flash: bool, **factory):
        super().__init__()
        norms = (make_norm(model, **factory) for _ in range(3))
        self.attn_norm, self.cross_norm, self.mlp_norm = norms
        self.attn = EncoderAttention(model, flash, **factory)
        self.cross = CrossAttention(model, flash, **factory)
        self.mlp = MLP(model, **factory)

    def forward(self, x, bias, cache, layer: int, encoded=None):
        x = x + self.attn(self.attn_norm(x), bias, cache, layer)
        x = x + self.cross(self.cross_norm(x), cache, layer, encoded)
        return x + self.mlp(self.mlp_norm(x))


class EncoderEmbedding(nn.Module):
    """Token (+ learned position) (+ token-type) rows, summed (+ LayerNorm'd). Tables and norm
    are parameters used functionally, so the per-group timer sees one embedding module;
    `tokens` is a shared table (T5's), else its own."""

    def __init__(self, model: ModelConfig, tokens=None, **factory):
        super().__init__()

        def table(rows: int):
            return nn.Parameter(torch.zeros(rows, model.h, **factory))

        self.tokens = tokens if tokens is not None else table(model.V)
        learned = model.position == "learned"
        self.positions = table(model.max_position_embeddings) if learned else None
        self.types = table(model.type_vocab_size) if model.type_vocab_size else None
        if model.embedding_norm:
            self.norm_weight = nn.Parameter(torch.ones(model.h, **factory))
            self.norm_bias = nn.Parameter(torch.zeros(model.h, **factory))
        else:
            self.norm_weight = None

    def forward(self, ids):
        s = ids.shape[1]
        x = F.embedding(ids, self.tokens)  # [b, s, h]
        if self.positions is not None:
            x = x + self.positions[:s]
        if self.types is not None:  # every token of segment 0
            x = x + F.embedding(torch.zeros_like(ids), self.types)
        if self.norm_weight is not None:
            x = F.layer_norm(x, (x.shape[-1],), self.norm_weight, self.norm_bias)
        return x


class Pooler(nn.Module):
    """tanh(dense(x[:, 0])): the first token of each sequence."""

    def __init__(self, model: ModelConfig, **factory):
        super().__init__()
        self.pooler = nn.Linear(model.h, model.h, bias=model.mlp_bias, **factory)

    def forward(self, x):
        return torch.tanh(self.pooler(x[:, 0]))


class MLMHead(nn.Module):
    """BERT's masked-LM head: transform (dense, activation, LayerNorm), decoder to V (+ bias)."""

    def __init__(self, model: ModelConfig, tokens, **factory):
        super().__init__()
        h = model.h
        self.mlm_transform = nn.Linear(h, h, bias=model.mlp_bias, **factory)
        self.act = ACTIVATIONS[model.activation]
        self.norm_weight = nn.Parameter(torch.ones(h, **factory))
        self.norm_bias = nn.Parameter(torch.zeros(h, **factory))
        self.mlm_decoder = nn.Linear(h, model.V, bias=model.lm_head_bias, **factory)
        if model.tied_embeddings:
            self.mlm_decoder.weight = tokens

    def forward(self, x):
        x = self.act(self.mlm_transform(x))
        x = F.layer_norm(x, (x.shape[-1],), self.norm_weight, self.norm_bias)
        return self.mlm_decoder(x)  # [b, s, V]


class ReferenceEncoder(nn.Module):
    """An encoder: embeddings, `layers` blocks, a final norm when pre-norm, then `head`."""

    def __init__(self, model: ModelConfig, layers=None, flash=True, head=None, tokens=None, **f):
        super().__init__()
        self.config = model
        self.embed = EncoderEmbedding(model, tokens, **f)
        relative = model.position == "relative"
        self.position_bias = RelativeBias(model, True, **f) if relative else None
        count = min(layers or model.L_enc, model.L_enc)
        self.blocks = nn.ModuleList(EncoderBlock(model, flash, **f) for _ in range(count))
        self.final_norm = make_norm(model, **f) if model.norm_position == "pre" else None
        self.head = None
        if head == "pooler":
            self.head = Pooler(model, **f)
        elif head == "mlm":
            self.head = MLMHead(model, self.embed.tokens, **f)

    def forward(self, ids):
        x = self.embed(ids)
        s = ids.shape[1]
        bias = self.position_bias(s, s) if self.position_bias is not None else None
        for block in self.blocks:
            x = block(x, bias)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x if self.head is None else self.head(x)


@dataclass
class Seq2SeqCache:
    """The decoder's self-attention cache [L][b, n_kv, capacity, d] (`length` filled) and the
    cross cache [L][b, n_kv, s_enc, d], filled by the first decoder pass."""

    keys: list
    values: list
    cross_keys: list
    cross_values: list
    length: int = 0


class ReferenceSeq2Seq(nn.Module):
    """An encoder-decoder: `encode(ids)` once, then decoder steps `net(ids, cache, encoded)`."""

    def __init__(self, model: ModelConfig, layers=None, flash=True, **f):
        super().__init__()
        self.config = model
        self.shared = nn.Embedding(model.V, model.h, **f)
        self.encoder = ReferenceEncoder(model, layers, flash, None, self.shared.weight, **f)
        self.position_bias = RelativeBias(model, False, **f)
        count = min(layers or model.L_dec, model.L_dec)
        self.blocks = nn.ModuleList(DecoderBlock(model, flash, **f) for _ in range(count))
        self.final_norm = make_norm(model, **f)
        self.lm_head = nn.Linear(model.h, model.V, bias=model.lm_head_bias, **f)
        if model.tied_embeddings:
            self.lm_head.weight = self.shared.weight
        self.scale = model.h**-0.5 if model.head_scale else None

    def encode(self, ids):
        return self.encoder(ids)

    def forward(self, ids, cache: Seq2SeqCache, encoded=None):
        """ids [b, s] continue the decoder's context; `encoded` [b, s_enc, h] on the first
        pass projects the cross cache. → logits of the last position [b, 1, V]."""
        s = ids.shape[1]
        t = cache.length + s
        x = self.shared(ids)
        bias = self.position_bias(s, t)
        for layer, block in enumerate(self.blocks):
            x = block(x, bias, cache, layer, encoded)
        cache.length = t
        x = self.final_norm(x)[:, -1:]
        if self.scale is not None:
            x = x * self.scale
        return self.lm_head(x)

    def new_cache(self, b: int, capacity: int, s_enc: int) -> Seq2SeqCache:
        m, w = self.config, self.lm_head.weight
        factory = {"dtype": w.dtype, "device": w.device}
        layers = len(self.blocks)

        def zeros(length: int) -> list:
            return [torch.zeros(b, m.n_kv, length, m.d, **factory) for _ in range(layers)]

        return Seq2SeqCache(zeros(capacity), zeros(capacity), zeros(s_enc), zeros(s_enc))


def build_encoder_reference(
    model: ModelConfig,
    dtype: str = "fp32",
    device: str = "meta",
    layers: int | None = None,
    attention: str = "flash",
    head: str | None = None,
    seed: int = 0,
):
    """The reference of an encoder (its `head`, default the model's) or an encoder-decoder, with
    random N(0, 0.02) weights, in eval mode."""
    torch.manual_seed(seed)
    factory = {"dtype": torch_dtype(dtype), "device": device}
    flash = attention == "flash"
    with torch.no_grad():
        if model.architecture == "encoder":
            net = ReferenceEncoder(model, layers, flash, head or model.head, **factory)
        else:
            net = ReferenceSeq2Seq(model, layers, flash, **factory)
        if device != "meta":
            for param in net.parameters():
                if param.dim() > 1:
                    param.normal_(0.0, 0.02)
    return net.eval().requires_grad_(False)
