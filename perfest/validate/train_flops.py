"""Training FLOP cross-check: torch's FlopCounterMode on a reference training step (forward,
cross-entropy over every position, `loss.backward()`) against perfest's derived backward.

Conventions of torch/utils/flop_counter.py (torch 2.13), which perfest's match:
- a matrix product [m, k]·[k, n] is 2·m·k·n FLOPs (mm, addmm — whose bias add is not counted —
  bmm); the backward of a linear layer is its two products (dX and dW), 2× the forward;
- element-wise work (norms, activations, softmax, RoPE, the loss, bias gradients, embedding
  gradients) is not counted, so the comparison is of matrix-product FLOPs;
- SDPA's fused kernels count 2 products forward and, in backward, 5
  (`sdpa_backward_flop_count`: the scores recomputed, then dV, dP, dQ, dK) — exactly perfest's
  flash-attention backward (perfest.training.backward). On the meta device
  `F.scaled_dot_product_attention` decomposes into bmm's (whose backward is 4 products), so the
  reference's flash core here calls the fused op itself
  (`aten._scaled_dot_product_efficient_attention`, which has a meta kernel and an autograd
  formula); grouped-query K and V are repeated to the query heads first (a copy: no FLOPs);
- eager attention is the reference's three ops: 2 products forward, 4 backward;
- FlopCounterMode attributes FLOPs to the modules running; in backward its module tracker
  cannot tell apart two linear layers whose outputs meet in one op (a gated MLP's gate and up
  products are both "active" during each other's backward), so the MLP is compared as a whole,
  and in a parallel block (GPT-J, Falcon), whose attention and MLP outputs meet in one add, the
  two are compared together as the block.

Rows, by perfest attribute → reference module: attention projections (attention-group products
with a weight or a weight gradient → attn.qkv + attn.out; latent attention is compared whole,
projections and core → attn), attention core (products of two activations → attn.core), MLP (→ mlp:
a dense MLP, or a mixture of experts' router, experts and shared experts together), LM head
(→ lm_head), and the totals; each for the backward alone (the step minus a forward-only count)
and the whole step.

Mixtures of experts route round-robin on the meta device (perfest.validate.reference_moe: the
expert FLOPs of any routing are those of T·k assignments, what perfest counts); the reference's
experts are one batched product per group of equally loaded experts, whose backward is its two
products, as perfest's grouped products. Latent attention trains in the naive form. The first
layers checked cover every kind of layer the model has (a DeepSeek's dense layers and its first
mixture of experts; gpt-oss's windowed and global layers); a windowed layer's scores are
checked at a length within the window, where the band perfest counts (s·min(s, w)) and the full
s×s FlopCounterMode counts for a masked kernel agree.
"""

from __future__ import annotations

from perfest.ops import Group, Op
from perfest.specs import ModelConfig
from perfest.training.step import Shape, build_parts, layer_keys
from perfest.validate import require_torch
from perfest.validate.flops import FlopCheck, FlopRow
from perfest.validate.reference import AttentionCore, build_reference

torch = require_torch()


class FusedCore(AttentionCore):
    """Causal attention through the fused SDPA op (`_scaled_dot_product_efficient_attention`),
    K and V repeated to the query heads for grouped-query attention."""

    def forward(self, q, k, v, past: int, scale: float | None = None):
        groups = q.shape[1] // k.shape[1]
        if groups > 1:
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        out, *_ = torch.ops.aten._scaled_dot_product_efficient_attention(
            q, k, v, None, True, is_causal=True, scale=scale
        )
        return out


#: row → (test on a perfest op, the reference modules (FQN tails) that run it)
ROWS: tuple[tuple[str, object, tuple[str, ...]], ...] = (
    ("attention projections", lambda op: op.group is Group.ATTENTION and not
     op.activation_product, ("attn.qkv", "attn.out")),
    ("attention core", lambda op: op.group is Group.ATTENTION and op.activation_product,
     ("attn.core",)),
    ("mlp", lambda op: op.group is Group.MLP, ("mlp",)),
    ("lm_head", lambda op: op.group is Group.LM_HEAD, ("lm_head",)),
)  # fmt: skip
#: A parallel block's rows: its attention and MLP together, against the whole block.
PARALLEL_ROWS: tuple[tuple[str, object, tuple[str, ...]], ...] = (
    ("block (attention + mlp)", lambda op: op.group in (Group.ATTENTION, Group.MLP), ("block",)),
    ROWS[-1],
)
#: Latent attention as a whole: its projections' outputs meet (the latent feeds the keys and
#: values, the RoPE key joins every head's key), so the tracker credits one backward product to
#: several of them; the attention module's own count is exact.
LATENT_ROWS: tuple[tuple[str, object, tuple[str, ...]], ...] = (
    ("attention (projections + core)", lambda op: op.group is Group.ATTENTION, ("attn",)),
    *ROWS[2:],
)


#: An encoder's masked-LM head (transform and decoder) against the reference's head module.
ENCODER_ROWS: tuple[tuple[str, object, tuple[str, ...]], ...] = (
    *ROWS[:-1],
    ("lm_head", ROWS[-1][1], ("head",)),
)


def rows_of(model: ModelConfig) -> tuple:
    if model.architecture == "encoder":
        return ENCODER_ROWS
    if model.parallel_block:
        return PARALLEL_ROWS
    return LATENT_ROWS if model.mla else ROWS


def perfest_train_flops(model: ModelConfig, b: int, s: int, layers: int, flash: bool) -> tuple:
    """perfest's matrix-product FLOPs by row, the first `layers` layers: (forward, backward)."""
    parts = build_parts(Shape(model, "fp32", "fp32", flash, 1, 1, False))
    env = {"b": b, "s": s, "t": s, "s_logits": s}
    first = layer_keys(model)[:layers]
    count = {key: (first.count(key) if key.is_layer else 1) for key in parts}

    def by_row(ops: list[tuple[int, Op]]) -> dict[str, int]:
        out = {}
        for row, test, _ in rows_of(model):
            out[row] = sum(n * int(op.gemm.flops.value(env)) for n, op in ops
                           if op.gemm is not None and test(op))  # fmt: skip
        return out

    fwd = [(count[k], op) for k, p in parts.items() for op in p.forward]
    bwd = [(count[k], op) for k, p in parts.items() for op in p.backward.ops]
    return by_row(fwd), by_row(bwd)


def _module(fqn: str) -> str:
    """'ReferenceLM.blocks.3.attn.qkv' → 'attn.qkv'; 'ReferenceLM.blocks.3' → 'block'."""
    parts = fqn.split(".")
    if len(parts) == 3 and parts[1] == "blocks":
        return "block"
    return ".".join(parts[3:]) if len(parts) > 3 and parts[1] == "blocks" else parts[-1]


def torch_train_flops(net, b: int, s: int) -> tuple[dict, dict, int, int]:
    """FlopCounterMode by row for (forward only, the whole step) and both totals."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(net.parameters()).device
    ids = torch.zeros(b, s, dtype=torch.long, device=device)
    encoder = net.config.architecture == "encoder"

    def count(step: bool) -> tuple[dict, int]:
        with FlopCounterMode(display=False) as counter:
            logits = net(ids) if encoder else net(ids, None, logits="all")
            if step:
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten())
                loss.backward()
        rows: dict[str, int] = {}
        for fqn, per_op in counter.get_flop_counts().items():
            module = _module(fqn)
            for row, _, modules in rows_of(net.config):
                if module in modules:
                    rows[row] = rows.get(row, 0) + int(sum(per_op.values()))
        return rows, int(counter.get_total_flops())

    forward, forward_total = count(False)
    whole, whole_total = count(True)
    return forward, whole, forward_total, whole_total


class FusedEncoderCore(torch.nn.Module):
    """Bidirectional attention through the fused SDPA op (no mask: every query scores all s
    keys), an encoder reference's core (perfest.validate.reference_encoder.Core)."""

    def forward(self, q, k, v, bias=None, causal=False):
        out, *_ = torch.ops.aten._scaled_dot_product_efficient_attention(
            q, k, v, None, True, is_causal=False
        )
        return out


def encoder_training_reference(model: ModelConfig, layers: int = 2, attention: str = "flash"):
    """The reference encoder with its masked-LM head (no pooler), as MLM pre-training runs it
    (Hugging Face's BertForMaskedLM): meta device, gradients on, flash through the fused op."""
    from perfest.validate.reference_encoder import build_encoder_reference

    net = build_encoder_reference(model, "fp32", "meta", layers, attention, head="mlm")
    net.train().requires_grad_(True)
    if attention == "flash":
        for block in net.blocks:
            block.attn.core = FusedEncoderCore()
    return net


def training_reference(model: ModelConfig, layers: int = 2, attention: str = "flash"):
    """The reference decoder (meta device) ready for a training step: gradients on, and with
    flash attention the fused SDPA op, which FlopCounterMode counts by its own formula; an
    encoder's with its masked-LM head (`encoder_training_reference`)."""
    if model.architecture == "encoder":
        return encoder_training_reference(model, layers, attention)
    net = build_reference(model, "fp32", "meta", layers=layers, attention=attention)
    net.set_mla_form("naive")  # as training runs latent attention
    net.train().requires_grad_(True)
    if attention == "flash":
        for block in net.blocks:
            block.attn.core = FusedCore(model.n_h, model.n_kv, True)
    return net


def layers_to_check(model: ModelConfig) -> int:
    """The first layers that hold every kind of layer the model has (at least 2)."""
    kinds = model.layer_kinds()
    return max(2, *(kinds.index(kind) + 1 for kind in set(kinds)))


def check_train_flops(model: ModelConfig, b: int = 1, s: int = 64, layers: int | None = None,
                      attention: str = "flash") -> tuple[FlopCheck, FlopCheck]:  # fmt: skip
    """(backward, whole step) FLOP checks, row by row, on the first `layers` blocks (default:
    `layers_to_check`)."""
    layers = layers_to_check(model) if layers is None else layers
    net = training_reference(model, layers, attention)
    forward, whole, forward_total, whole_total = torch_train_flops(net, b, s)
    ours_fwd, ours_bwd = perfest_train_flops(model, b, s, layers, attention == "flash")
    backward = {row: whole.get(row, 0) - forward.get(row, 0) for row in whole}
    checks = []
    for phase, ours, theirs, total in (
        ("backward", ours_bwd, backward, whole_total - forward_total),
        ("step", {r: ours_fwd[r] + ours_bwd[r] for r in ours_fwd}, whole, whole_total),
    ):
        rows = tuple(FlopRow(phase, row, ours[row], theirs.get(row, 0))
                     for row, _, _ in rows_of(model))  # fmt: skip
        checks.append(FlopCheck(phase, rows, sum(ours.values()), total))
    return checks[0], checks[1]
