"""A parallel layout, what it leaves on each device, and which link each collective crosses.

`Shard` is the one place per-device widths are worked out; the layer builders write their
tensors in these widths, and memory sums those same tensors, so the two cannot disagree.

Tensor parallelism (Megatron-LM, Shoeybi et al. 2019): attention heads and the MLP's inner
dimension are split over tp devices (column-parallel Q/K/V, gate and up; row-parallel output
and down projections), and so are the token embedding and the LM head over the vocabulary
(VocabParallelEmbedding). When there are fewer key/value heads than devices (GQA, MQA), each
kv head is replicated on tp / n_kv devices, as vLLM and TensorRT-LLM do, so a device holds
ceil(n_kv / tp) of them. What is not split is replicated on every device: the norms, the
biases of row-parallel layers (added after the all-reduce), learned position embeddings.

Experts (perfest.layers.moe) are divided over `ep` devices, E/ep whole experts on each, in
one of two ways. By default attention stays under tensor parallelism on tp devices and the
experts share them (devices = tp, ep must divide tp): every device sees every token after the
attention all-reduce, runs its own experts' share of the assignments, each expert's inner
dimension split over the tp/ep devices of its group (expert tensor parallelism), and the
MLP's all-reduce sums the partial outputs, as vLLM runs TP with expert parallelism. With
`dp_attention` (SGLang's and DeepSeek's serving layout) attention runs data-parallel: ep/tp
groups of tp devices, each group attending to its own share of the sequences with its own KV
cache (devices = ep, tp must divide ep); tokens go to their experts' devices and back by
all-to-all collectives over the ep ranks. Shared experts and dense layers stay under tp.

Training (`etp` set: perfest.training) follows Megatron-Core's MoE parallel folding: the
experts have their own expert-tensor-parallel degree etp (Megatron's default: tp), E/ep whole
experts per device with each expert's inner dimension split over etp devices (ceil(i_e/etp));
the shared experts and dense layers stay under tp. Which devices form the groups, and that
etp·ep must divide the ranks of a pipeline stage, is the training layout's business
(perfest.training.config).

The network has two levels (HardwareSpec): devices within a node share a fast link (NVLink,
xGMI, ICI, or PCIe in a PCIe box); nodes talk over the network (InfiniBand/RoCE NICs, one
per device in DGX/HGX systems). A collective whose ranks all sit in one node runs on the
node's link; one that spans nodes is paced by the slower network link (α–β on that link:
its latency and per-device bandwidth), as a ring crossing nodes must pass every byte through
the NICs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import ceil

from perfest.errors import SpecError, UnsupportedError
from perfest.specs import HardwareSpec, ModelConfig


@dataclass(frozen=True, slots=True)
class Layout:
    """How devices are divided: tensor (tp), pipeline (pp), data (dp), context (cp) and expert
    (ep) parallelism. Ranks are numbered tp fastest, then cp, then dp, then pp (Megatron's
    order), so a tp group is `tp` neighbouring devices and a dp group's ranks are tp·cp apart;
    expert parallelism reuses the data-parallel (and tensor) ranks of the MoE layers."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    dp_attention: bool = False  # attention data-parallel over ep/tp groups (module docstring)
    etp: int | None = None  # training: the experts' own tensor-parallel degree (docstring)

    @property
    def devices(self) -> int:
        return self.tp * self.pp * self.dp * self.cp


@dataclass(frozen=True, slots=True)
class Shard:
    """A model's widths on one device under a layout (symbols as in perfest.specs)."""

    n_h: int  # query heads
    n_kv: int  # key/value heads (replicated when fewer than tp)
    i: int  # MLP inner dimension
    V: int  # vocabulary rows of the embedding and the LM head
    tp: int
    # Mixture of experts (module docstring); 0 and 1 for a dense model.
    experts: int = 0  # routed experts held
    i_e: int = 0  # each routed expert's inner dimension on this device
    i_shared: int = 0  # the shared experts' inner dimension on this device
    ep: int = 1
    groups: int = 1  # attention data-parallel groups (dp_attention), each of tp devices
    etp: int = 1  # devices each routed expert's inner dimension is split over

    @property
    def split(self) -> bool:
        return self.tp > 1


def shard(model: ModelConfig, layout: Layout) -> Shard:
    """Per-device widths; SpecError when the layout cannot split the model."""
    tp = layout.tp
    if model.n_h % tp:
        raise SpecError(f"tp: {tp} does not divide the {model.n_h} attention heads of {model.name}")
    base = Shard(
        n_h=model.n_h // tp,
        n_kv=ceil(model.n_kv / tp),
        i=ceil(model.i / tp),
        V=ceil(model.V / tp),
        tp=tp,
    )
    if not model.moe:
        if layout.ep > 1 or layout.dp_attention:
            option = "ep" if layout.ep > 1 else "dp_attention"
            raise SpecError(f"{option}: {model.name} has no experts to divide")
        return base
    return replace(base, **_expert_widths(model, layout))


def _expert_widths(model: ModelConfig, layout: Layout) -> dict:
    """Experts per device and their widths (module docstring); SpecError for a layout that
    does not fit the devices."""
    tp, ep, E = layout.tp, layout.ep, model.num_experts
    if E % ep:
        raise SpecError(f"ep: {ep} does not divide the {E} experts of {model.name}")
    if layout.etp is not None:  # training: Megatron-Core's parallel folding
        etp = layout.etp
        return dict(experts=E // ep, i_e=ceil(model.i_e / etp),
                    i_shared=ceil(model.i_shared / tp), ep=ep, etp=etp)  # fmt: skip
    if layout.dp_attention:
        if ep % tp:
            raise SpecError(
                f"ep: {ep} is not a multiple of tp {tp}: with dp_attention the ep devices "
                f"run attention as ep/tp data-parallel groups of tp devices (devices = ep)"
            )
        return dict(experts=E // ep, i_e=model.i_e, i_shared=ceil(model.i_shared / tp), ep=ep,
                    groups=ep // tp)  # fmt: skip
    if tp % ep:
        raise SpecError(
            f"ep: {ep} does not divide tp {tp}: with attention under tensor parallelism the "
            "experts share the tp devices (devices = tp); add dp_attention to run attention "
            "data-parallel on ep devices"
        )
    expert_tp = tp // ep  # each expert's inner dimension is split over its group
    return dict(experts=E // ep, i_e=ceil(model.i_e / expert_tp),
                i_shared=ceil(model.i_shared / tp), ep=ep, etp=expert_tp)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Link:
    """One level of the network: per-direction bandwidth (byte/s) and a fixed time per
    collective (s)."""

    name: str
    bandwidth: float
    latency_s: float


def link(hw: HardwareSpec, peers: int, stride: int = 1, axis: str = "tp") -> Link:
    """The link a collective among `peers` ranks, `stride` devices apart, runs on: the node's
    link when they fit in one node, else the network between nodes (`axis` names the option
    in errors)."""
    span = (peers - 1) * stride + 1
    if hw.devices_per_node is None or span <= hw.devices_per_node:
        if hw.interconnect_bandwidth <= 0:
            raise UnsupportedError(f"{axis}: {hw.name} has no interconnect bandwidth in its spec")
        return Link("node", hw.interconnect_bandwidth, hw.interconnect_latency_s)
    if hw.network_bandwidth <= 0:
        raise UnsupportedError(
            f"{axis}: {peers} devices span more than one {hw.devices_per_node}-device node of "
            f"{hw.name}, whose spec has no network between nodes"
        )
    return Link("network", hw.network_bandwidth, hw.network_latency_s)
