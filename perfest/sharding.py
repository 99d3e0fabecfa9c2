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

The network has two levels (HardwareSpec): devices within a node share a fast link (NVLink,
xGMI, ICI, or PCIe in a PCIe box); nodes talk over the network (InfiniBand/RoCE NICs, one
per device in DGX/HGX systems). A collective whose ranks all sit in one node runs on the
node's link; one that spans nodes is paced by the slower network link (α–β on that link:
its latency and per-device bandwidth), as a ring crossing nodes must pass every byte through
the NICs.
"""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def split(self) -> bool:
        return self.tp > 1


def shard(model: ModelConfig, layout: Layout) -> Shard:
    """Per-device widths; SpecError when the layout cannot split the model."""
    tp = layout.tp
    if model.n_h % tp:
        raise SpecError(f"tp: {tp} does not divide the {model.n_h} attention heads of {model.name}")
    return Shard(
        n_h=model.n_h // tp,
        n_kv=ceil(model.n_kv / tp),
        i=ceil(model.i / tp),
        V=ceil(model.V / tp),
        tp=tp,
    )


@dataclass(frozen=True, slots=True)
class Link:
    """One level of the network: per-direction bandwidth (byte/s) and a fixed time per
    collective (s)."""

    name: str
    bandwidth: float
    latency_s: float


def link(hw: HardwareSpec, peers: int, stride: int = 1) -> Link:
    """The link a collective among `peers` ranks, `stride` devices apart, runs on: the node's
    link when they fit in one node, else the network between nodes."""
    span = (peers - 1) * stride + 1
    if hw.devices_per_node is None or span <= hw.devices_per_node:
        if hw.interconnect_bandwidth <= 0:
            raise UnsupportedError(f"tp: {hw.name} has no interconnect bandwidth in its spec")
        return Link("node", hw.interconnect_bandwidth, hw.interconnect_latency_s)
    if hw.network_bandwidth <= 0:
        raise UnsupportedError(
            f"tp: {peers} devices span more than one {hw.devices_per_node}-device node of "
            f"{hw.name}, whose spec has no network between nodes"
        )
    return Link("network", hw.network_bandwidth, hw.network_latency_s)
