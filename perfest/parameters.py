"""Parameter counts, read off the model's graph on one device (tp = 1): the weight tensors the
ops read, each counted once (a tied embedding and LM head are one tensor).

    total = embeddings + L·(attention + MLP + norms) + final norm + LM head
    active (per token) = total − (E − k)/E of every bank of routed experts: the weights one
             token's forward pass uses, embedding table and LM head counted whole (as Mixtral's
             12.9 B and Qwen3's "A3B" count them; gpt-oss and DeepSeek leave the input
             embedding out of their active counts)

The tests compare every shipped model's total with the officially published count, and with
the PyTorch reference module's own count.
"""

from __future__ import annotations

from functools import lru_cache

from perfest.graph import Graph, model_graph
from perfest.layers import Ctx
from perfest.ops import Group, Role
from perfest.specs import COMPUTE_DTYPES, KV_DTYPES, WEIGHT_DTYPES, ModelConfig, Workload

#: parameter_breakdown's parts: a segment's name, or the group of a decoder layer's op.
_PARTS = {"attention": "attention", "mlp": "mlp", "norm": "norms"}


@lru_cache(maxsize=256)
def graph(model: ModelConfig) -> Graph:
    """The model's graph on one device (the dtype does not change a count); both stacks of
    an encoder-decoder."""
    return model_graph(Ctx.of(model, Workload()))


def count_parameters(model: ModelConfig) -> int:
    """Total parameters, embeddings and LM head included (tied embeddings once)."""
    return graph(model).parameters()


def active_parameters(model: ModelConfig) -> int:
    """Parameters one token uses: every weight, but k of the E experts of each routed bank."""
    total = 0.0
    for tensor, n in graph(model).tensors(Role.WEIGHT).items():
        share = model.experts_per_token / model.num_experts if tensor.routed else 1
        total += n * int(tensor.elements.value()) * share
    return round(total)


def parameter_breakdown(model: ModelConfig) -> dict[str, int]:
    """Parameters by part (embedding, attention, mlp, norms, head; and experts, the routed
    experts' banks, for a mixture of experts: the router and shared experts are its mlp); the
    values sum to `count_parameters(model)`."""
    parts = dict.fromkeys(("embedding", "attention", "mlp", "norms", "head"), 0)
    seen = set()
    for segment, op in graph(model).ops():
        for access in op.reads:
            tensor = access.tensor
            if tensor.role is not Role.WEIGHT or tensor in seen:
                continue
            seen.add(tensor)
            if tensor.routed:
                part = "experts"
            else:
                part = segment.name if segment.name in parts else _PARTS[op.group.value]
            parts[part] = parts.get(part, 0) + segment.count * int(tensor.elements.value())
    return parts


@lru_cache(maxsize=256)
def _graph_at(model: ModelConfig, w: Workload) -> Graph:
    return model_graph(Ctx.of(model, w))


def weight_bytes_by_dtype(model: ModelConfig) -> dict[str, float]:
    """Bytes of the model's weights on one device, per weight dtype, read off its graph: the
    16- and 32-bit and the W8A8 (fp8, int8) dtypes store every weight so; int4 is weight-only
    (W4A16): its blocks' matmul weights are int4 with their scales, embeddings, norms and LM
    head stay bf16."""
    out = {}
    for dtype in WEIGHT_DTYPES:
        w = Workload(dtype=dtype) if dtype in COMPUTE_DTYPES else Workload(weight_dtype=dtype)
        out[dtype] = _graph_at(model, w).weight_bytes()
    return out


def kv_cache_bytes_per_token(model: ModelConfig) -> dict[str, float]:
    """KV-cache bytes one token of one sequence adds (all layers, one device), per KV dtype,
    read off the graph's KV-cache tensors."""
    return {
        dtype: _graph_at(model, Workload(dtype="fp32", kv_dtype=dtype)).kv_bytes_per_token()
        for dtype in KV_DTYPES
    }


def block_params(model: ModelConfig) -> int:
    """One decoder block: attention, MLP, and its norms (the mean over the blocks, when they
    differ: dense and MoE layers, windowed and global ones)."""
    total = 0
    for segment in graph(model).segments:
        if segment.name in ("embedding", "head"):
            continue
        tensors = {a.tensor for op in segment.ops for a in op.reads if a.tensor.role is Role.WEIGHT}
        total += segment.count * sum(int(t.elements.value()) for t in tensors)
    return total // model.L


__all__ = [
    "Group",
    "active_parameters",
    "block_params",
    "count_parameters",
    "kv_cache_bytes_per_token",
    "parameter_breakdown",
    "weight_bytes_by_dtype",
]
