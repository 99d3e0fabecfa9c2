"""The reference's mixture-of-experts MLP and multi-head latent attention (perfest.layers.moe,
perfest.layers.mla), written as plainly as the rest of perfest.validate.reference.

Module names are perfest's op names, so that FlopCounterMode's per-module counts compare op
group by op group: router, expert_gate / expert_up / expert_down (one bank of every expert's
weights each), shared_gate / shared_up / shared_down, shared_expert_gate; q_proj or q_a, q_b,
kv_a, kv_b, q_absorb, v_absorb, core, out.

**Routing convention for the FLOP check.** On the meta device no router output exists to pick
experts from, so the check uses a deterministic round-robin router: token j's k slots go to
experts (j·k + r) mod E, r = 0…k − 1, every expert's token count known exactly. The expert
FLOPs of any routing are Σ_e 2·n_e·h·i_e = 2·T·k·h·i_e (T tokens, Σ_e n_e = T·k), which is
what perfest counts (e_t·m_e = T·k), so the check is exact for any assignment; round-robin
only makes it computable without data. Each assignment is weighted by its own score, so the
router lies on the loss's path and a training step's backward reaches it, as top-k routing's
does. Real runs (`perfest validate`) route by the router's top-k, as the model would.
"""

from __future__ import annotations

from functools import lru_cache

from perfest.specs import ModelConfig
from perfest.validate import require_torch

torch = require_torch()
F = torch.nn.functional
nn = torch.nn


@lru_cache(maxsize=64)
def round_robin(tokens: int, k: int, experts: int) -> tuple[tuple[tuple[int, ...], tuple], ...]:
    """Round-robin routing grouped by load: (experts, their tokens [G][n]) for each group of
    experts that get the same number n of assignments (at most two groups: n and n + 1).
    Assignment a = j·k + r (token j, slot r) goes to expert a mod E."""
    owned: list[list[int]] = [[] for _ in range(experts)]
    for a in range(tokens * k):
        owned[a % experts].append(a // k)
    by_load: dict[int, list[int]] = {}
    for expert, rows in enumerate(owned):
        if rows:
            by_load.setdefault(len(rows), []).append(expert)
    return tuple(
        (tuple(group), tuple(tuple(owned[e]) for e in group)) for group in by_load.values()
    )


class ExpertBank(nn.Module):
    """One projection of every routed expert: weight [E, out, in] (bias [E, out])."""

    def __init__(self, experts: int, d_in: int, d_out: int, bias: bool, **factory):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, d_out, d_in, **factory))
        self.bias = nn.Parameter(torch.zeros(experts, d_out, **factory)) if bias else None

    def forward(self, x, experts: tuple[int, ...]):
        """x [G, n, in] through experts `experts` (G of them, each its own n rows) → [G, n, out]:
        one batched product, 2·G·n·in·out FLOPs."""
        if len(experts) == 1:  # a view of the one expert's weights, not a copy
            w = self.weight[experts[0]].unsqueeze(0)
            bias = self.bias[experts[0]].unsqueeze(0) if self.bias is not None else None
        else:
            index = list(experts)
            w = self.weight[index]
            bias = self.bias[index] if self.bias is not None else None
        y = torch.bmm(x, w.transpose(1, 2))
        return y if bias is None else y + bias.unsqueeze(1)


class SharedMLP(nn.Module):
    """The shared experts: one gated (or classic) MLP of i_shared, for every token."""

    def __init__(self, model: ModelConfig, act, **factory):
        super().__init__()
        h, i, bias = model.h, model.i_shared, model.mlp_bias
        gated = model.mlp == "gated"
        self.shared_gate = nn.Linear(h, i, bias=bias, **factory) if gated else None
        self.shared_up = nn.Linear(h, i, bias=bias, **factory)
        self.shared_down = nn.Linear(i, h, bias=bias, **factory)
        self.act = act

    def forward(self, x):
        if self.shared_gate is None:
            return self.shared_down(self.act(self.shared_up(x)))
        return self.shared_down(self.act(self.shared_gate(x)) * self.shared_up(x))


class MoE(nn.Module):
    """Router → top-k of E experts per token → weighted sum, plus the shared experts."""

    def __init__(self, model: ModelConfig, act, routing: str = "topk", **factory):
        super().__init__()
        h, i, E = model.h, model.i_e, model.num_experts
        self.k, self.E, self.routing, self.act = model.experts_per_token, E, routing, act
        self.sigmoid = model.router_scoring == "sigmoid"
        self.router = nn.Linear(h, E, bias=model.router_bias, **factory)
        gated = model.mlp == "gated"
        self.expert_gate = ExpertBank(E, h, i, model.mlp_bias, **factory) if gated else None
        self.expert_up = ExpertBank(E, h, i, model.mlp_bias, **factory)
        self.expert_down = ExpertBank(E, i, h, model.mlp_bias, **factory)
        self.shared = SharedMLP(model, act, **factory) if model.i_shared else None
        gate = model.shared_expert_gate
        self.shared_expert_gate = nn.Linear(h, 1, bias=False, **factory) if gate else None

    def forward(self, x):
        b, s, h = x.shape
        flat = x.reshape(b * s, h)  # [T, h]
        logits = self.router(flat)  # [T, E]
        scores = logits.sigmoid() if self.sigmoid else logits.softmax(dim=-1)
        out = torch.zeros_like(flat)
        for experts, rows, weights in self._assign(scores):
            xe = flat[rows]  # [G, n, h]: each expert's rows
            up = self.expert_up(xe, experts)  # [G, n, i_e]
            if self.expert_gate is None:
                inner = self.act(up)
            else:
                inner = self.act(self.expert_gate(xe, experts)) * up
            ye = self.expert_down(inner, experts) * weights  # [G, n, h]
            out.index_add_(0, rows.reshape(-1), ye.reshape(-1, h))
        if self.shared is not None:
            shared = self.shared(flat)
            if self.shared_expert_gate is not None:
                shared = shared * self.shared_expert_gate(flat).sigmoid()
            out = out + shared
        return out.view(b, s, h)

    def _assign(self, scores):
        """(experts, their rows [G, n], weights [G, n, 1]) per group of experts with n rows
        each: one expert per group under top-k routing, equal loads under round-robin."""
        T, device = scores.shape[0], scores.device
        if self.routing == "round_robin":
            for experts, rows in round_robin(T, self.k, self.E):
                index = torch.tensor(rows, dtype=torch.long, device=device)  # [G, n]
                chosen = torch.tensor(experts, dtype=torch.long, device=device).unsqueeze(1)
                # each assignment weighted by its own score, so that the router is trained
                yield experts, index, scores[index, chosen.expand_as(index)].unsqueeze(-1)
            return
        weights, ids = scores.topk(self.k, dim=-1)  # [T, k]
        weights = weights / weights.sum(dim=-1, keepdim=True)
        # one sort groups the T·k assignments by expert; only the touched experts run
        flat = ids.reshape(-1)
        order = flat.argsort(stable=True)
        counts = torch.bincount(flat, minlength=self.E).tolist()
        rows, slot_weights = order // self.k, weights.reshape(-1)[order]
        start = 0
        for expert, n in enumerate(counts):
            if n:
                end = start + n
                yield (
                    (expert,),
                    rows[start:end].unsqueeze(0),
                    slot_weights[start:end].view(1, -1, 1),
                )
                start = end


class Absorb(nn.Module):
    """A per-head product with another module's weight: x [b, n_h, s, k] @ w [n_h, k, n]."""

    def forward(self, x, w):
        return torch.matmul(x, w)


class LatentAttention(nn.Module):
    """Multi-head latent attention; `form` "naive" or "absorbed" (perfest.layers.mla)."""

    def __init__(self, model: ModelConfig, core, norm, rope, form: str = "naive", **factory):
        super().__init__()
        h, n_h = model.h, model.n_h
        dn, dr, dv, c = (model.qk_nope_head_dim, model.qk_rope_head_dim, model.v_head_dim,
                         model.kv_lora_rank)  # fmt: skip
        self.n_h, self.dn, self.dr, self.dv, self.c = n_h, dn, dr, dv, c
        cq = model.q_lora_rank
        if cq is None:
            self.q_proj = nn.Linear(h, n_h * (dn + dr), bias=False, **factory)
        else:
            self.q_a = nn.Linear(h, cq, bias=False, **factory)
            self.q_a_norm = norm(cq)
            self.q_b = nn.Linear(cq, n_h * (dn + dr), bias=False, **factory)
        self.kv_a = nn.Linear(h, c + dr, bias=False, **factory)
        self.kv_a_norm = norm(c)
        self.kv_b = nn.Linear(c, n_h * (dn + dv), bias=False, **factory)
        self.q_absorb, self.v_absorb = Absorb(), Absorb()
        self.rope = rope  # RoPE over the d_r dims (the reference's Rope module)
        self.core = core
        self.out = nn.Linear(n_h * dv, h, bias=False, **factory)
        self.form = form
        self.scale = (dn + dr) ** -0.5

    def forward(self, x, cache, layer: int, rope_tables):
        """x [b, s, h] → [b, s, h]; the latent and the RoPE key of each token are cached."""
        b, s, _ = x.shape
        n_h, dn, dr, dv, c = self.n_h, self.dn, self.dr, self.dv, self.c
        q = self.q_proj(x) if hasattr(self, "q_proj") else self.q_b(self.q_a_norm(self.q_a(x)))
        q = q.view(b, s, n_h, dn + dr).transpose(1, 2)  # [b, n_h, s, dn + dr]
        q_nope, q_pe = q.split([dn, dr], dim=-1)
        latent, k_pe = self.kv_a(x).split([c, dr], dim=-1)  # [b, s, c], [b, s, dr]
        latent = self.kv_a_norm(latent)
        q_pe = self.rope(q_pe, *rope_tables)
        k_pe = self.rope(k_pe.unsqueeze(1), *rope_tables).squeeze(1)  # one key for all heads
        past = cache.length if cache is not None else 0
        if cache is not None:
            t = past + s
            cache.keys[layer][:, past:t] = latent
            cache.values[layer][:, past:t] = k_pe
            latent, k_pe = cache.keys[layer][:, :t], cache.values[layer][:, :t]
        t = latent.shape[1]
        if self.form == "naive":  # decompress every cached token's K_nope and V
            kv = self.kv_b(latent).view(b, t, n_h, dn + dv).transpose(1, 2)
            k_nope, v = kv.split([dn, dv], dim=-1)  # [b, n_h, t, dn], [b, n_h, t, dv]
            k = torch.cat((k_nope, k_pe.unsqueeze(1).expand(b, n_h, t, dr)), dim=-1)
            y = self.core(torch.cat((q_nope, q_pe), dim=-1), k, v, past, scale=self.scale)
        else:  # fold W_UK into the query and W_UV into the output
            w = self.kv_b.weight.view(n_h, dn + dv, c)
            w_uk, w_uv = w[:, :dn], w[:, dn:]  # [n_h, dn, c], [n_h, dv, c]
            q_latent = self.q_absorb(q_nope, w_uk)  # [b, n_h, s, c]
            keys = torch.cat((latent, k_pe), dim=-1).unsqueeze(1)  # [b, 1, t, c + dr]
            o = self.core(torch.cat((q_latent, q_pe), dim=-1), keys, latent.unsqueeze(1), past,
                          scale=self.scale)  # [b, n_h, s, c]  # fmt: skip
            y = self.v_absorb(o, w_uv.transpose(1, 2))  # [b, n_h, s, dv]
        return self.out(y.transpose(1, 2).reshape(b, s, n_h * dv))
