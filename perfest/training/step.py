"""The parts of a training step and its phases, as data.

A pipeline stage runs, for each of its m micro-batches, the forward and then the backward of
its parts — the segments of perfest.graph, built by the same layer builders as inference with
`Ctx.training` set:

    embedding   token (+ position) lookup                           first stage
    layer       one decoder block of each kind the model has        every stage, each kind
                (dense or mixture of experts, windowed or global      as many times as its
                attention: ModelConfig.layer_kinds)                   layers on the stage
    head        final norm, LM head, cross-entropy loss             last stage

An encoder (BERT, RoBERTa: masked-LM pre-training) has the same three parts: BERT's embedding
(token + learned position + token-type rows, LayerNorm), its post-norm encoder block, and the
masked-LM head (transform, tied decoder) with the same loss — the head over s_logits positions
per sequence, every one by default (Hugging Face's BertForMaskedLM) or only the masked ones
(TrainConfig.mlm_positions). No pooler or next-sentence head. An encoder-decoder does not
train yet (perfest.training.config.check_trainable).

Each part has its forward ops, its backward derived from them (perfest.training.backward), its
attention core (the span selective recompute reruns), and what it keeps for backward
(`Op.saves`; perfest.training.memory sums them).

The phases of a step (`PHASES`, data like inference's prefill and decode):

    forward     every part's forward, per micro-batch
    backward    every part's derived backward, per micro-batch
    recompute   what activation recomputation reruns in backward, per micro-batch:
                none; selective = the attention core's forward (Korthikanti et al. 2022: the
                s²-sized tensors are not kept); full = the layer's whole forward (only the
                layer's input is kept)
    optimizer   once per step: zero the gradients, their norm (clipping), the update

The loss: vocabulary-parallel cross-entropy (Megatron-LM): the logits are converted to fp32,
exponentiated and normalized where they lie, 5 FLOPs per logit as a softmax (max, subtract,
exp, sum, divide), with an all-reduce over tp of three numbers per position (max, Σexp and
the target's logit); the fp32 probabilities are kept for backward.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NamedTuple

from perfest.enums import StrEnum
from perfest.graph import Graph, Segment
from perfest.layers import decoder_block
from perfest.layers.attention import SOFTMAX_FLOPS_PER_ELEMENT
from perfest.layers.context import TOKEN_ID_BYTES, Ctx, Dtypes
from perfest.layers.embedding import embedding_ops, head_ops, token_table
from perfest.layers.encoder import encoder_block, encoder_embedding_ops
from perfest.layers.heads import mlm_ops
from perfest.ops import (
    Access,
    Axis,
    CollectiveKind,
    Fn,
    Group,
    Op,
    Role,
    Tensor,
    collective,
    elementwise,
    read,
)
from perfest.sharding import Layout, shard
from perfest.specs import DTYPE_BYTES, ModelConfig
from perfest.symbols import b, s_logits
from perfest.training.backward import EXPOSED_AXES, Backward, Grads, Overlap, backward, core_span

PHASES = ("forward", "backward", "recompute", "optimizer")


class PartKind(StrEnum):
    EMBEDDING = "embedding"
    LAYER = "layer"
    HEAD = "head"


class PartKey(NamedTuple):
    """A part of a step: the embedding, the head, or a decoder layer of one kind (a mixture of
    experts or dense; windowed or global attention)."""

    kind: PartKind
    moe: bool = False
    window: bool = False

    @property
    def name(self) -> str:
        """ "embedding", "head", "layer", or "layer.moe", "layer.window", "layer.moe.window"."""
        extra = (".moe" if self.moe else "") + (".window" if self.window else "")
        return self.kind.value + extra

    @property
    def is_layer(self) -> bool:
        return self.kind is PartKind.LAYER


EMB, LAYER, HEAD = PartKey(PartKind.EMBEDDING), PartKey(PartKind.LAYER), PartKey(PartKind.HEAD)


def layer_key(kind: tuple[bool, bool]) -> PartKey:
    """The part of a layer of `kind` (ModelConfig.layer_kinds: (MoE, windowed))."""
    return PartKey(PartKind.LAYER, *kind)


@dataclass(frozen=True, slots=True)
class Part:
    """One part of the model on one device, forward and backward."""

    kind: PartKey
    forward: tuple[Op, ...]
    backward: Backward
    core: tuple[Op, ...]  # the attention core's forward ops (selective recompute reruns them)
    forward_overlaps: tuple[Overlap, ...]  # a context ring beside the core's forward
    checkpoint: Tensor | None  # what full recompute keeps: the layer's input

    @property
    def weights(self) -> dict[Tensor, int]:
        """The weight tensors this part reads."""
        return Graph((Segment(self.kind.name, self.forward, 1),)).tensors(Role.WEIGHT)


@dataclass(frozen=True, slots=True)
class Shape:
    """What shapes a step's parts on one device: the model, precision and the layout's widths.
    The micro-batch, pp, dp, ZeRO and the schedule do not: one set of parts serves them all."""

    model: ModelConfig
    storage: str  # weights and activations (bf16 for fp8 GEMMs)
    grad: str  # weight gradients
    flash: bool
    tp: int
    cp: int
    sequence_parallel: bool
    dropout: bool = False
    fp8: bool = False  # FP8 GEMMs: linear layers keep their input in FP8 for backward
    ep: int = 1  # expert parallelism (mixtures of experts)
    etp: int = 1  # expert tensor parallelism: each expert's inner dimension split


def training_ctx(shape: Shape) -> Ctx:
    """The Ctx the layer builders take for a training pass."""
    size = DTYPE_BYTES[shape.storage]
    dt = Dtypes(*(shape.storage,) * 4, *(size,) * 4, expert=shape.storage, expert_size=size)
    layout = Layout(tp=shape.tp, cp=shape.cp, ep=shape.ep, etp=shape.etp)
    return Ctx(
        shape.model,
        shard(shape.model, layout),
        dt,
        flash=shape.flash,
        training=True,
        sequence_parallel=shape.sequence_parallel and shape.tp > 1,
        cp=shape.cp,
        dropout=shape.dropout,
    )


def layer_keys(model: ModelConfig) -> tuple[PartKey, ...]:
    """The part of each of the model's layers, in order."""
    return tuple(layer_key(kind) for kind in model.layer_kinds())


@lru_cache(maxsize=256)
def build_parts(shape: Shape) -> dict[PartKey, Part]:
    """The embedding, one decoder layer of each kind (in order of first appearance) and the
    head, forward and backward."""
    ctx = training_ctx(shape)
    grads = Grads((shape.grad, DTYPE_BYTES[shape.grad]), accumulate=True)
    tokens = token_table(ctx)
    x = ctx.act("x", ctx.rows, ctx.h)  # the residual stream between parts
    encoder = shape.model.architecture == "encoder"
    head = mlm_ops(ctx, x, tokens) if encoder else head_ops(ctx, tokens, x)
    logits = head[-1].writes[0].tensor  # the LM head's output (vocabulary-parallel)
    embed = encoder_embedding_ops if encoder else embedding_ops
    forwards = {EMB: (embed(ctx, tokens, x), None)}
    for key in dict.fromkeys(layer_keys(shape.model)):
        block = encoder_block(ctx) if encoder else decoder_block(ctx, key.moe, key.window)
        forwards[key] = (block, x)
    forwards[HEAD] = ([*head, *loss_ops(ctx, logits)], None)
    return {key: _part(key, ops, keep, ctx, grads, shape.fp8)
            for key, (ops, keep) in forwards.items()}  # fmt: skip


def fp8_saves(op: Op) -> Op:
    """With FP8 GEMMs a linear layer casts its input to FP8 for the product and keeps that
    FP8 copy for its weight gradient (Transformer Engine's Linear saves the FP8 input): one byte
    per element of what it saves."""
    if op.gemm is None or op.activation_product or not op.saves:
        return op
    saves = tuple(Access(replace(a.tensor, name=f"{a.tensor.name}.fp8", dtype="fp8",
                                 itemsize=1.0), a.elements) for a in op.saves)  # fmt: skip
    return replace(op, saves=saves)


def _part(
    kind: PartKey, ops: list[Op], keep: Tensor | None, ctx: Ctx, grads: Grads, fp8: bool
) -> Part:
    if fp8 and kind.is_layer:  # the decoder layers' linear layers only (compiled)
        ops = [fp8_saves(op) for op in ops]
    span = core_span(ops)
    core = tuple(ops[i] for i in span)
    ring = tuple(op for op in ops if op.collective is not None and op.collective.axis is Axis.CP)
    overlaps = (Overlap(ring, core),) if ring else ()
    # the expert-parallel collectives run beside nothing: reported by axis, wholly exposed
    expert = [op for op in ops if op.collective is not None and op.collective.axis in EXPOSED_AXES]
    overlaps += tuple(Overlap((op,), ()) for op in expert)
    return Part(kind, tuple(ops), backward(ops, ctx, grads), core, overlaps, keep)


def loss_ops(ctx: Ctx, logits: Tensor) -> list[Op]:
    """Vocabulary-parallel cross-entropy over the b·s_logits positions (module docstring)."""
    n = logits.elements
    probs = Tensor("loss.probs", Role.ACTIVATION, logits.shape, "fp32", 4.0)
    targets = ctx.table("loss.targets", b, s_logits, itemsize=TOKEN_ID_BYTES)
    ops = [
        elementwise(
            "loss",
            Group.LM_HEAD,
            n,
            SOFTMAX_FLOPS_PER_ELEMENT,
            (read(logits), read(targets)),
            (read(probs),),
            fn=Fn.LOSS,
            saves=(read(probs),),
        )  # fmt: skip
    ]
    if ctx.shard.split:  # max, Σexp and the target logit of each position, summed over tp
        partials = ctx.stat("loss.partials", b * s_logits, 3)
        ops.append(collective("loss_allreduce", CollectiveKind.ALL_REDUCE, Axis.TP,
                              ctx.shard.tp, partials))  # fmt: skip
    return ops


def overlapped(part: Part, phase: str) -> frozenset[int]:
    """ids of the collectives of `phase` ("forward" or "backward") that run beside compute."""
    overlaps = part.forward_overlaps if phase == "forward" else part.backward.overlaps
    return frozenset(id(op) for o in overlaps for op in o.comm)
