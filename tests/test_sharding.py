"""Per-device widths under a layout, and the link each collective runs on."""

from __future__ import annotations

import pytest

import perfest
from perfest.errors import SpecError, UnsupportedError
from perfest.sharding import Layout, link, shard
from perfest.specs import HardwareSpec


def test_widths_per_device():
    # llama-3-8b: 32 heads, 8 kv heads, i = 14336, V = 128256
    m = perfest.load_model("llama-3-8b")
    assert shard(m, Layout(tp=1)) == shard(m, Layout()) and shard(m, Layout()).n_kv == 8
    s4 = shard(m, Layout(tp=4))
    assert (s4.n_h, s4.n_kv, s4.i, s4.V) == (8, 2, 3584, 32064)
    s16 = shard(m, Layout(tp=16))
    assert (s16.n_h, s16.n_kv) == (2, 1)  # a kv head on every device: replicated 2×


def test_tp_must_divide_the_heads():
    with pytest.raises(SpecError, match="tp: 3 does not divide the 32 attention heads"):
        shard(perfest.load_model("llama-2-7b"), Layout(tp=3))


def device(**over) -> HardwareSpec:
    base = dict(name="d", fp32_tflops=1, memory_gb=1, memory_bandwidth_gb_s=1,
                interconnect_bandwidth_gb_s=400, interconnect_latency_us=10,
                devices_per_node=8, network_bandwidth_gb_s=50, network_latency_us=35)  # fmt: skip
    return HardwareSpec(**{**base, **over})


def test_a_collective_within_a_node_runs_on_its_link():
    node = link(device(), peers=8)
    assert (node.name, node.bandwidth, node.latency_s) == ("node", 400e9, pytest.approx(10e-6))


def test_a_collective_across_nodes_runs_on_the_network():
    net = link(device(), peers=16)
    assert (net.name, net.bandwidth, net.latency_s) == ("network", 50e9, pytest.approx(35e-6))
    # 4 ranks 4 devices apart span 13 devices: more than one node
    assert link(device(), peers=4, stride=4).name == "network"


def test_a_spec_without_nodes_is_one_node_of_any_size():
    assert link(device(devices_per_node=None), peers=64).name == "node"


def test_missing_links_are_one_line_errors():
    with pytest.raises(UnsupportedError, match="no interconnect bandwidth"):
        link(device(interconnect_bandwidth_gb_s=0), peers=2)
    with pytest.raises(UnsupportedError, match="no network between nodes"):
        link(device(network_bandwidth_gb_s=0), peers=16)


def test_tensor_parallel_past_a_node_pays_the_network():
    # llama-2-70b decode on H100s: tp = 16 spans two 8-GPU nodes, so its all-reduces cross
    # the 50 GB/s NICs with a 35 µs latency instead of NVLink's 450 GB/s and 12 µs
    est = perfest.estimate("llama-2-70b", "h100-sxm", tp=16)
    ar = next(r for r in est.decode.rows if r.op.name == "attn_allreduce")
    # 80 layers · (35 µs + 2·15/16·(1 row · 8192 · 2 B) / 50 GB/s)
    assert ar.t_comm == pytest.approx(80 * (35e-6 + 2 * 15 / 16 * 8192 * 2 / 50e9))


MOE = perfest.specs.ModelConfig(name="moe", vocab_size=100, hidden_size=64, num_layers=2,
                                num_heads=8, intermediate_size=128, num_experts=8,
                                experts_per_token=2)  # fmt: skip


@pytest.mark.parametrize(
    "layout, message",
    [
        (Layout(tp=3, ep=3), "tp: 3 does not divide the 8 attention heads"),
        (Layout(tp=8, ep=3), "ep: 3 does not divide the 8 experts of moe"),
        (Layout(tp=2, ep=4), "ep: 4 does not divide tp 2: with attention under tensor"),
        (Layout(tp=4, ep=2, dp_attention=True), "ep: 2 is not a multiple of tp 4: with dp_"),
    ],
)
def test_an_expert_layout_must_fit_the_devices(layout, message):
    with pytest.raises(SpecError, match=message):
        shard(MOE, layout)


def test_a_dense_model_has_no_experts_to_divide():
    with pytest.raises(SpecError, match="ep: llama-2-7b has no experts to divide"):
        shard(perfest.load_model("llama-2-7b"), Layout(tp=2, ep=2))


def test_expert_widths():
    # attention under tp 8, ep 4: 2 experts per device, i split over tp/ep = 2 devices
    s = shard(MOE, Layout(tp=8, ep=4))
    assert (s.experts, s.i_e, s.groups) == (2, 64, 1)
    # dp_attention, ep 8 over attention groups of tp 2: 4 groups, 1 whole expert per device
    s = shard(MOE, Layout(tp=2, ep=8, dp_attention=True))
    assert (s.experts, s.i_e, s.groups) == (1, 128, 4)
