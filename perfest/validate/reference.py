"""A small, readable PyTorch decoder for any ModelConfig: the reference perfest is measured against.

Random weights, any float dtype, any device (meta included: full sizes cost nothing). Module
names are the op groups perfest costs, so FLOPs and times can be attributed to them:

    embed        token (+ learned position) embedding                   group embedding
    blocks.N     attn_norm, attn (qkv, rope, KV-cache write, core, out),  groups norm, attention,
                 mlp_norm (absent in a parallel block), mlp (gate, up, down)   mlp (and residual)
    final_norm, lm_head                                                  groups norm, lm_head

Symbols as in perfest.specs: b batch, s new tokens, t keys (cache + new), h hidden, d head dim.
Clear over clever: one tensor op per line, shapes in comments. RoPE uses the rotate-half
layout on the first `rope_dim` dims of each head (GPT-J interleaves pairs instead: the same
FLOPs and bytes). Gemma's (1 + γ) norm and √h embedding scale are left out: they change
neither a FLOP count nor a parameter count.

Mixtures of experts and latent attention are in perfest.validate.reference_moe. A layer with
a sliding window attends to the last `sliding_window` keys: a decode step slices them off the
cache (the FLOPs perfest counts); a prefill masks the band, so its FLOPs are the full s×t
ones — the same as perfest's while s ≤ window. Attention sinks (gpt-oss) join each softmax
as one more logit per head; QK-norm (Qwen3) normalises each head's q and k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfest.errors import UnsupportedError
from perfest.specs import ModelConfig
from perfest.validate import require_torch
from perfest.validate.reference_moe import LatentAttention, MoE

torch = require_torch()
F = torch.nn.functional
nn = torch.nn

#: perfest dtype → torch dtype, for the dtypes the reference runs in (tf32 = fp32 storage).
TORCH_DTYPES = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}

ACTIVATIONS = {
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


def torch_dtype(dtype: str):
    """The torch dtype for a perfest dtype, or UnsupportedError for the quantized ones."""
    if dtype not in TORCH_DTYPES:
        have = ", ".join(TORCH_DTYPES)
        raise UnsupportedError(
            f"dtype: the PyTorch reference runs in {have}, not {dtype} (quantized kernels are "
            "not part of the reference)"
        )
    return TORCH_DTYPES[dtype]


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + ε) · γ (Zhang & Sennrich, 2019)."""

    def __init__(self, h: int, eps: float = 1e-6, **factory):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(h, **factory))
        self.eps = eps

    def forward(self, x):
        if hasattr(F, "rms_norm"):  # one op since torch 2.4
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(model: ModelConfig, **factory) -> nn.Module:
    if model.norm == "rmsnorm":
        return RMSNorm(model.h, **factory)
    return nn.LayerNorm(model.h, **factory)


@dataclass
class KVCache:
    """Preallocated keys and values of every layer: [L][b, n_kv, capacity, d]; `length` filled."""

    keys: list
    values: list
    length: int = 0

    @classmethod
    def empty(cls, model: ModelConfig, layers: int, b: int, capacity: int, **factory) -> KVCache:
        """Latent attention caches the latent [b, capacity, c] and the RoPE key [b, capacity,
        d_r] in `keys` and `values`."""
        shape = (b, model.n_kv, capacity, model.d)
        k_shape, v_shape = shape, shape
        if model.mla:
            k_shape = (b, capacity, model.kv_lora_rank)
            v_shape = (b, capacity, model.qk_rope_head_dim)
        keys = [torch.zeros(k_shape, **factory) for _ in range(layers)]
        values = [torch.zeros(v_shape, **factory) for _ in range(layers)]
        return cls(keys, values)


class Rope(nn.Module):
    """Rotary position embedding (Su et al., 2021) on the first `rope_dim` dims of each head."""

    def __init__(self, rope_dim: int, base: float = 10000.0, device=None):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, rope_dim, 2, device=device).float() / rope_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.rope_dim = rope_dim

    def tables(self, positions, dtype):
        """cos and sin, [s, rope_dim] each, for integer positions [s]."""
        angles = torch.outer(positions.float(), self.inv_freq)  # [s, rope_dim/2], not a matmul
        angles = torch.cat((angles, angles), dim=-1)  # [s, rope_dim]
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def forward(self, x, cos, sin):
        """x [b, heads, s, d]: rotate x[..., :rope_dim], pass the rest through."""
        rot, rest = x[..., : self.rope_dim], x[..., self.rope_dim :]
        half = self.rope_dim // 2
        rotated = torch.cat((-rot[..., half:], rot[..., :half]), dim=-1)
        out = rot * cos + rotated * sin
        return torch.cat((out, rest), dim=-1) if rest.shape[-1] else out


class AttentionCore(nn.Module):
    """softmax(q·kᵀ/√d + causal mask)·v. `flash`: torch's fused SDPA; `eager`: three ops.
    `window`: attend to the last `window` keys only; `sinks` [n_h]: one more logit per head
    in each softmax (eager: SDPA has no place for it)."""

    def __init__(self, n_h: int, n_kv: int, flash: bool, window: int | None = None, sinks=None):
        super().__init__()
        self.groups = n_h // n_kv
        self.flash = flash and sinks is None
        self.window = window
        self.sinks = sinks

    def forward(self, q, k, v, past: int, scale: float | None = None):
        """q [b, n_h, s, d]; k, v [b, n_kv, t, d] with t = past + s → [b, n_h, s, d]."""
        s, t = q.shape[2], k.shape[2]
        groups = q.shape[1] // k.shape[1]  # n_h / n_kv (n_h when every head reads one latent)
        if self.window is not None and past + 1 > self.window:  # keys before the window: out
            start = past + 1 - self.window
            k, v, t, past = k[:, :, start:], v[:, :, start:], t - start, past - start
        causal = past == 0 and s > 1
        mask = None
        if s > 1 and not causal:  # new tokens see the whole cache and the new ones before them
            mask = torch.ones(s, t, dtype=torch.bool, device=q.device).tril(diagonal=past)
        if self.window is not None and s > 1:  # and, in the band, the last `window` of them
            band = torch.ones(s, t, dtype=torch.bool, device=q.device)
            band = band.tril(diagonal=past).triu(diagonal=past - self.window + 1)
            mask, causal = band, False
        if groups > 1 and not (self.flash and _SDPA_GQA):
            k = k.repeat_interleave(groups, dim=1)  # [b, n_h, t, d]
            v = v.repeat_interleave(groups, dim=1)
        if self.flash:
            extra = {"enable_gqa": True} if groups > 1 and _SDPA_GQA else {}
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=causal, scale=scale, **extra
            )
        scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
        scores = q @ k.transpose(-2, -1) * scale  # [b, n_h, s, t]
        if causal:
            mask = torch.ones(s, t, dtype=torch.bool, device=q.device).tril()
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        if self.sinks is None:
            return scores.softmax(dim=-1) @ v  # [b, n_h, s, d]
        sink = self.sinks.view(1, -1, 1, 1).expand(*scores.shape[:3], 1).to(scores.dtype)
        probs = torch.cat((scores, sink), dim=-1).softmax(dim=-1)[..., :-1]
        return probs @ v  # [b, n_h, s, d]


#: scaled_dot_product_attention(enable_gqa=...) exists since torch 2.5.
_SDPA_GQA = "enable_gqa" in (F.scaled_dot_product_attention.__doc__ or "")


class Attention(nn.Module):
    def __init__(self, model: ModelConfig, flash: bool, window: bool = False, **factory):
        super().__init__()
        self.n_h, self.n_kv, self.d = model.n_h, model.n_kv, model.d
        qkv_width = (model.n_h + 2 * model.n_kv) * model.d
        self.qkv = nn.Linear(model.h, qkv_width, bias=model.qkv_bias, **factory)
        self.rope = Rope(model.rope_dim, device=factory.get("device")) if model.rope_dim else None
        if model.qk_norm:  # Qwen3: RMSNorm over each head's q and k
            self.q_norm, self.k_norm = RMSNorm(model.d, **factory), RMSNorm(model.d, **factory)
        sinks = nn.Parameter(torch.zeros(model.n_h, **factory)) if model.attention_sinks else None
        self.sinks = sinks
        width = model.sliding_window if window else None
        self.core = AttentionCore(model.n_h, model.n_kv, flash, width, self.sinks)
        self.out = nn.Linear(model.q_dim, model.h, bias=model.out_bias, **factory)

    def forward(self, x, cache: KVCache | None, layer: int, rope_tables):
        """x [b, s, h] → [b, s, h]; appends this pass's keys and values to `cache`."""
        b, s, _ = x.shape
        n_q, n_k = self.n_h * self.d, self.n_kv * self.d
        q, k, v = self.qkv(x).split([n_q, n_k, n_k], dim=-1)  # [b, s, (n_h + 2·n_kv)·d]
        return self._attend(q, k, v, b, s, cache, layer, rope_tables)

    def _attend(self, q, k, v, b, s, cache, layer, rope_tables):
        q = q.view(b, s, self.n_h, self.d).transpose(1, 2)  # [b, n_h, s, d]
        k = k.view(b, s, self.n_kv, self.d).transpose(1, 2)  # [b, n_kv, s, d]
        v = v.view(b, s, self.n_kv, self.d).transpose(1, 2)
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            q, k = self.rope(q, *rope_tables), self.rope(k, *rope_tables)
        past = cache.length if cache is not None else 0
        if cache is not None:  # append this pass's keys and values, attend to all t
            t = past + s
            cache.keys[layer][:, :, past:t] = k
            cache.values[layer][:, :, past:t] = v
            k, v = cache.keys[layer][:, :, :t], cache.values[layer][:, :, :t]
        y = self.core(q, k, v, past)  # [b, n_h, s, d]
        return self.out(y.transpose(1, 2).reshape(b, s, self.n_h * self.d))


class MLP(nn.Module):
    """Classic: down(act(up(x))). Gated: down(act(gate(x)) · up(x))."""

    def __init__(self, model: ModelConfig, **factory):
        super().__init__()
        h, i, bias = model.h, model.i, model.mlp_bias
        self.gate = nn.Linear(h, i, bias=bias, **factory) if model.mlp == "gated" else None
        self.up = nn.Linear(h, i, bias=bias, **factory)
        self.down = nn.Linear(i, h, bias=bias, **factory)
        self.act = ACTIVATIONS[model.activation]

    def forward(self, x):
        if self.gate is None:
            return self.down(self.act(self.up(x)))  # [b, s, i] → [b, s, h]
        return self.down(self.act(self.gate(x)) * self.up(x))


class Block(nn.Module):
    """Sequential: x + attn(norm(x)), then + mlp(norm(x)). Parallel (GPT-J, Falcon-7B):
    x + attn(norm(x)) + mlp(norm(x)) with one shared norm. `moe`: the MLP is a mixture of
    experts; `window`: attention within the sliding window (ModelConfig.layer_kinds)."""

    def __init__(self, model: ModelConfig, flash: bool, moe=False, window=False, routing="topk",
                 **factory):  # fmt: skip
        super().__init__()
        self.attn_norm = make_norm(model, **factory)
        if model.mla:
            core = AttentionCore(model.n_h, model.n_h, flash)
            norm = lambda width: RMSNorm(width, **factory)  # noqa: E731
            rope = Rope(model.rope_dim, device=factory.get("device"))
            self.attn = LatentAttention(model, core, norm, rope, **factory)
        else:
            self.attn = Attention(model, flash, window, **factory)
        self.mlp_norm = None if model.parallel_block else make_norm(model, **factory)
        act = ACTIVATIONS[model.activation]
        self.mlp = MoE(model, act, routing, **factory) if moe else MLP(model, **factory)

    def forward(self, x, cache, layer, rope_tables):
        a = self.attn_norm(x)
        if self.mlp_norm is None:
            return x + self.attn(a, cache, layer, rope_tables) + self.mlp(a)
        x = x + self.attn(a, cache, layer, rope_tables)
        return x + self.mlp(self.mlp_norm(x))


class Embedding(nn.Module):
    """Token rows, plus learned position rows where the model has them."""

    def __init__(self, model: ModelConfig, **factory):
        super().__init__()
        self.tokens = nn.Embedding(model.V, model.h, **factory)
        learned = model.position == "learned"
        pos = nn.Embedding(model.max_position_embeddings, model.h, **factory) if learned else None
        self.positions = pos

    def forward(self, ids, positions):
        x = self.tokens(ids)  # [b, s, h]
        return x if self.positions is None else x + self.positions(positions)


class ReferenceLM(nn.Module):
    """The whole decoder: embed → `layers` blocks → final norm → LM head."""

    def __init__(
        self,
        model: ModelConfig,
        layers: int | None = None,
        flash: bool = True,
        routing: str = "topk",
        **f,
    ):
        super().__init__()
        self.config = model
        self.embed = Embedding(model, **f)
        kinds = model.layer_kinds()[: layers or model.L]
        self.blocks = nn.ModuleList(Block(model, flash, *kind, routing, **f) for kind in kinds)
        self.final_norm = make_norm(model, **f)
        self.lm_head = nn.Linear(model.h, model.V, bias=model.lm_head_bias, **f)
        if model.tied_embeddings:  # one shared Parameter: parameters() counts it once
            self.lm_head.weight = self.embed.tokens.weight
        self.rope = Rope(model.rope_dim, device=f.get("device")) if model.rope_dim else None

    def forward(self, ids, cache: KVCache | None = None, logits: str = "last"):
        """ids [b, s] → logits [b, 1 or s, V]; with a cache, the pass continues its context."""
        s = ids.shape[1]
        past = cache.length if cache is not None else 0
        positions = torch.arange(past, past + s, device=ids.device)
        x = self.embed(ids, positions)
        tables = self.rope.tables(positions, x.dtype) if self.rope is not None else None
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer, tables)
        if cache is not None:
            cache.length = past + s
        x = self.final_norm(x)  # over all b·s positions, as perfest costs it
        if logits == "last":
            x = x[:, -1:]  # serving engines need only the last position's logits
        return self.lm_head(x)

    def set_mla_form(self, form: str) -> None:
        """Latent attention's form in every block: "naive" or "absorbed" (perfest.layers.mla)."""
        for block in self.blocks:
            if isinstance(block.attn, LatentAttention):
                block.attn.form = form

    def new_cache(self, b: int, capacity: int) -> KVCache:
        w = self.lm_head.weight
        return KVCache.empty(
            self.config, len(self.blocks), b, capacity, dtype=w.dtype, device=w.device
        )


def build_reference(
    model: ModelConfig,
    dtype: str = "fp32",
    device: str = "meta",
    layers: int | None = None,
    attention: str = "flash",
    seed: int = 0,
    routing: str | None = None,
) -> ReferenceLM:
    """The reference decoder with random weights (N(0, 0.02)), in eval mode.

    `layers` builds only the first k blocks (to time a model whose weights do not fit).
    `routing` of a mixture of experts: "topk" (the router's choice) or "round_robin" (the FLOP
    check's deterministic convention, perfest.validate.reference_moe); default round_robin on
    the meta device, where no router output exists, else topk.
    """
    if model.position not in ("rope", "learned"):
        raise UnsupportedError(f"{model.name}: the reference has no '{model.position}' positions")
    if model.rope_dim % 2:
        raise UnsupportedError(f"{model.name}: rotary_dim {model.rope_dim} must be even")
    torch.manual_seed(seed)
    factory = {"dtype": torch_dtype(dtype), "device": device}
    with torch.no_grad():
        routing = routing or ("round_robin" if device == "meta" else "topk")
        net = ReferenceLM(model, layers, attention == "flash", routing, **factory)
        if device != "meta":
            for param in net.parameters():
                if param.dim() > 1:
                    param.normal_(0.0, 0.02)
    return net.eval().requires_grad_(False)


def parameter_count(net: nn.Module) -> int:
    """Distinct parameters of a module (a tied weight once)."""
    return sum(p.numel() for p in net.parameters())
