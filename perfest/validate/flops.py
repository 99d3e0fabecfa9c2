"""FLOP cross-check: torch's FlopCounterMode on the reference module against perfest's counts.

FlopCounterMode counts matrix products only (mm, addmm, bmm, baddbmm, convolutions and the
fused attention kernels it has formulas for), as 2·m·k·n. It ignores every element-wise and
reduction op: norms, RoPE, softmax, activations, the gating multiply, residual adds, biases
(addmm is counted as its mm), embedding gathers and KV-cache copies. So the comparison is of
matmul FLOPs, which must agree exactly; perfest's non-matmul FLOPs are reasoned, not counted.

The reference runs on the meta device: shapes propagate, nothing is allocated or computed, so
the 405B model costs what a tiny one does. On meta, scaled_dot_product_attention decomposes
into two bmm's, which the counter sees (in torch 2.13 it has no formula for the CPU fused
kernel `_scaled_dot_product_flash_attention_for_cpu`, which a real CPU run would call).

Mixtures of experts route round-robin on meta (the convention in
perfest.validate.reference_moe: every expert's token count known, the expert FLOPs those of
any routing); latent attention runs in the form perfest costs for each phase (naive prefill
and absorbed decode by default, `--mla`).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfest.graph import build_graph
from perfest.inference import make_workload
from perfest.layers import Ctx
from perfest.layers.context import Phase
from perfest.specs import ModelConfig, Workload
from perfest.validate import require_torch

#: Comparison rows: perfest op names, and the reference module (last name component) that
#: runs them. Attention's two products run inside one SDPA call, so they are compared together.
ROWS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("projections", "qkv_proj", ("qkv_proj",), "qkv"),
    ("projections", "out_proj", ("out_proj",), "out"),
    ("attention", "attn_scores + attn_values", ("attn_scores", "attn_values"), "core"),
    ("mlp", "mlp_gate", ("mlp_gate",), "gate"),
    ("mlp", "mlp_up", ("mlp_up",), "up"),
    ("mlp", "mlp_down", ("mlp_down",), "down"),
    # latent attention (perfest.layers.mla)
    ("projections", "q_proj", ("q_proj",), "q_proj"),
    ("projections", "q_a_proj", ("q_a_proj",), "q_a"),
    ("projections", "q_b_proj", ("q_b_proj",), "q_b"),
    ("projections", "kv_a_proj", ("kv_a_proj",), "kv_a"),
    ("projections", "kv_b_proj", ("kv_b_proj",), "kv_b"),
    ("projections", "q_absorb", ("q_absorb",), "q_absorb"),
    ("projections", "v_absorb", ("v_absorb",), "v_absorb"),
    # mixtures of experts (perfest.layers.moe)
    ("moe", "router", ("router",), "router"),
    ("moe", "expert_gate", ("expert_gate",), "expert_gate"),
    ("moe", "expert_up", ("expert_up",), "expert_up"),
    ("moe", "expert_down", ("expert_down",), "expert_down"),
    ("moe", "shared_gate", ("shared_gate",), "shared_gate"),
    ("moe", "shared_up", ("shared_up",), "shared_up"),
    ("moe", "shared_down", ("shared_down",), "shared_down"),
    ("moe", "shared_expert_gate", ("shared_expert_gate",), "shared_expert_gate"),
    ("lm_head", "lm_head", ("lm_head",), "lm_head"),
    # encoder-decoders' cross-attention, encoders' heads (perfest.validate.encoder_flops)
    ("projections", "cross_q_proj", ("cross_q_proj",), "cross_q"),
    ("projections", "cross_kv_proj", ("cross_kv_proj",), "cross_kv"),
    ("attention", "cross_scores + cross_values", ("cross_scores", "cross_values"), "cross_core"),
    ("projections", "cross_out_proj", ("cross_out_proj",), "cross_out"),
    ("lm_head", "pooler", ("pooler",), "pooler"),
    ("lm_head", "mlm_transform", ("mlm_transform",), "mlm_transform"),
    ("lm_head", "mlm_decoder", ("mlm_decoder",), "mlm_decoder"),
)


@dataclass(frozen=True)
class FlopRow:
    group: str
    ops: str
    perfest: int
    torch: int

    @property
    def match(self) -> bool:
        return self.perfest == self.torch


@dataclass(frozen=True)
class FlopCheck:
    """One pass (prefill or decode) compared row by row, with both totals."""

    phase: str
    rows: tuple[FlopRow, ...]
    perfest_total: int
    torch_total: int

    @property
    def match(self) -> bool:
        return self.perfest_total == self.torch_total and all(r.match for r in self.rows)


def perfest_matmul_flops(
    model: ModelConfig, w: Workload, s: int, t: int, s_logits: int, phase: Phase = Phase.PREFILL
) -> dict:
    """perfest's matmul FLOPs of one pass, by op name (all layers), from the op definitions.
    (Derived symbols — experts touched, windowed contexts — take their values from the point;
    an expert product's FLOPs e_t·m_e·… are whole up to rounding.)"""
    env = {"b": w.batch, "s": s, "t": t, "s_logits": s_logits}
    flops: dict[str, int] = {}
    for segment, op in build_graph(Ctx.of(model, w, phase)).ops():
        if op.gemm is not None:
            count = round(op.gemm.flops.value(env)) * segment.count
            flops[op.name] = flops.get(op.name, 0) + count
    return flops


def torch_matmul_flops(net, b: int, s: int, past: int, logits: str) -> tuple[dict, int]:
    """FlopCounterMode's count per leaf-module name (summed over layers), and its total."""
    torch = require_torch()
    from torch.utils.flop_counter import FlopCounterMode

    device = net.lm_head.weight.device
    ids = torch.zeros(b, s, dtype=torch.long, device=device)
    cache = net.new_cache(b, past + s)
    cache.length = past
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(ids, cache, logits=logits)
    by_leaf: dict[str, int] = {}
    for fqn, per_op in counter.get_flop_counts().items():
        leaf = fqn.rsplit(".", 1)[-1]
        if fqn != "Global" and leaf in {row[3] for row in ROWS}:
            by_leaf[leaf] = by_leaf.get(leaf, 0) + int(sum(per_op.values()))
    return by_leaf, int(counter.get_total_flops())


def check_flops(model: ModelConfig, workload: Workload | None = None, net=None, **fields) -> tuple:
    """Prefill and decode FLOP checks (FlopCheck each) for `model` at `workload`.

    Decode is the step perfest reports: one new token per sequence at context input_len +
    max(1, output_len // 2). `net` defaults to the full-size reference on the meta device.
    Encoders and encoder-decoders: one check per phase (perfest.validate.encoder_flops).
    """
    if model.architecture != "decoder":
        from perfest.validate.encoder_flops import check_stack_flops

        return check_stack_flops(model, workload, net, **fields)
    from perfest.inference import decode_context
    from perfest.validate.reference import build_reference

    w = make_workload(workload, **fields)
    if net is None:
        net = build_reference(model, w.dtype, "meta", attention=w.attention)
    s_logits = w.input_len if w.logits == "all" else 1
    t_decode = decode_context(w)
    passes = (
        (Phase.PREFILL, w.input_len, w.input_len, s_logits, 0, w.logits),
        (Phase.DECODE, 1, t_decode, 1, t_decode - 1, "last"),
    )
    checks = []
    for phase, s, t, s_log, past, logits in passes:
        ours = perfest_matmul_flops(model, w, s, t, s_log, phase)
        if model.mla:  # the form perfest costs for this phase
            net.set_mla_form(Ctx.of(model, w, phase).mla_form)
        theirs, total = torch_matmul_flops(net, w.batch, s, past, logits)
        rows = tuple(
            FlopRow(group, label, sum(ours.get(n, 0) for n in names), theirs.get(leaf, 0))
            for group, label, names, leaf in ROWS
            if any(n in ours for n in names) or leaf in theirs
        )
        checks.append(FlopCheck(phase.value, rows, sum(ours.values()), total))
    return tuple(checks)
