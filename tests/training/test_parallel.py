"""Communication outside the parts and the pipeline schedule, by hand."""

from __future__ import annotations

import pytest

import perfest
from perfest.ops import CollectiveKind
from perfest.sharding import Link
from perfest.training.parallel import (
    Replicas,
    Unit,
    buckets,
    collective_s,
    gradient_reduction,
    pipeline,
    step_links,
    zero3,
)

NIC = Link("network", 25e9, 36e-6)  # A100 HDR: 25 GB/s per GPU, 36 µs


def test_pipeline_bubble_is_pp_minus_one_over_v_m():
    # 4 equal stages of 1 s per micro-batch, m = 8: 8 s steady + 3 s of fill and drain;
    # interleaved v = 3: 3/3 = 1 s; bubble fraction (pp − 1)/(v·m)
    assert pipeline([1.0] * 4, 8, 1) == (8.0, 3.0)
    assert pipeline([1.0] * 4, 8, 3) == (8.0, 1.0)
    # unequal stages: the slowest paces the steady state, the others add their fill
    assert pipeline([1.0, 2.0, 1.5], 4, 1) == (8.0, 2.5)


def test_ring_collectives_by_hand():
    # all-reduce of 1 GB over 8 ranks: 2·7/8 GB at 25 GB/s = 70 ms, + 36 µs
    assert collective_s(CollectiveKind.ALL_REDUCE, 8, 1e9, NIC) == pytest.approx(0.070036)
    # reduce-scatter: 7/8 GB = 35 ms, in 3 buckets: 3 latencies
    assert collective_s(CollectiveKind.REDUCE_SCATTER, 8, 1e9, NIC, 3) == pytest.approx(
        0.035 + 3 * 36e-6
    )


def test_gradient_reduction_hides_behind_the_last_backward_but_its_last_bucket():
    # 100M fp32 gradients over 8 ranks: 3 buckets of ≤ 40M (Megatron's default); all-reduce
    # 2·7/8·400 MB = 700 MB at 25 GB/s = 28 ms + 3·36 µs
    assert buckets(100e6, 8) == 3
    total = 0.028 + 3 * 36e-6
    last = 2 * 7 / 8 * 400e6 / 3 / 25e9 + 36e-6
    group = (Replicas(100e6, 8, NIC),)
    long_backward = gradient_reduction(group, 4, 0, window=1.0)
    assert long_backward.total_s == pytest.approx(total)
    assert long_backward.exposed_s == pytest.approx(last)  # only the last bucket waits
    short = gradient_reduction(group, 4, 0, window=0.010)
    assert short.exposed_s == pytest.approx(total - 0.010)
    assert gradient_reduction((Replicas(100e6, 1, None),), 4, 0, 1.0) == (0.0, 0.0)


def test_experts_gradients_are_reduced_over_their_own_replicas_after_the_dense_ones():
    # a mixture of experts: 100M dense gradients over 8 ranks (as above), 80M expert gradients
    # over edp = 2 ranks: 2 buckets of 40M, 2·1/2·320 MB = 320 MB at 25 GB/s = 12.8 ms + 2·36 µs
    dense, experts = Replicas(100e6, 8, NIC), Replicas(80e6, 2, NIC)
    both = gradient_reduction((dense, experts), 4, 0, window=0.0)
    assert both.total_s == pytest.approx(0.028 + 3 * 36e-6 + 0.0128 + 2 * 36e-6)
    assert both.exposed_s == both.total_s  # nothing to hide behind


def test_zero3_prefetches_one_unit_ahead():
    # two identical units, gather 1 s each way, reduce-scatter 1 s, compute 2 s forward and
    # 2 s backward: only the first gather (forward), the first gather and the last reduction
    # (backward) wait
    link = Link("node", 1.0, 0.0)  # 1 byte/s: times equal wire bytes
    units = [Unit(2, 2.0, 2.0, 2.0)]  # 2 parameters of 1 byte: (2 − 1)/2·2 = 1 s each
    comm = zero3(units, 1.0, 1.0, (2, link))
    assert comm.total_s == pytest.approx(2 * (2 * 1 + 1))
    assert comm.exposed_s == pytest.approx(1 + 1 + 1)


def test_groups_run_on_the_links_their_ranks_span():
    h100 = perfest.load_hardware("h100-sxm")  # 8 GPUs per node
    links = step_links(h100, tp=8, cp=1, dp=4, pp=2)
    assert links.tp.name == "node"
    assert links.dp.name == "network"  # ranks 8 apart: another node
    assert links.pp.name == "network" and links.ends.name == "network"
    inside = step_links(h100, tp=2, cp=1, dp=4, pp=1)  # dp ranks 2 apart: 0, 2, 4, 6
    assert inside.dp.name == "node" and inside.pp is None


def flat_zero3(units, d, link):
    """The definition, unit by unit: forward ag_0 + Σ max(0, ag_k+1 − f_k); backward
    ag_n−1 + rs_0 + Σ max(0, ag_k−1 + rs_k+1 − b_k)."""
    flat = []
    for u in units:
        ag = collective_s(CollectiveKind.ALL_GATHER, d, u.parameters, link)
        rs = collective_s(CollectiveKind.REDUCE_SCATTER, d, u.parameters, link)
        flat += [(ag, rs, u.forward_s, u.backward_s)] * u.count
    n = len(flat)
    exposed = flat[0][0] + sum(max(0, flat[k + 1][0] - flat[k][2]) for k in range(n - 1))
    exposed += flat[-1][0] + flat[0][1]
    for k in range(n):
        comm = (flat[k - 1][0] if k else 0) + (flat[k + 1][1] if k + 1 < n else 0)
        exposed += max(0, comm - flat[k][3])
    return exposed


@pytest.mark.parametrize(
    "units",
    [
        [Unit(1, 4.0, 1.0, 2.0), Unit(5, 2.0, 0.5, 1.5), Unit(1, 6.0, 0.2, 0.1)],
        [Unit(3, 2.0, 3.0, 0.4)],
        [Unit(1, 8.0, 0.1, 0.1), Unit(2, 1.0, 0.7, 0.2)],
    ],
)
def test_zero3_runs_in_closed_form_equal_the_unit_by_unit_definition(units):
    link = Link("node", 1.0, 0.0)
    assert zero3(units, 1.0, 1.0, (4, link)).exposed_s == pytest.approx(flat_zero3(units, 4, link))


def test_zero3_gathers_the_experts_over_their_replicas():
    # one unit of 2 dense parameters over 2 ranks and 4 expert parameters over 4 ranks (1 byte
    # each, 1 byte/s): gather (2 − 1)/2·2 + (4 − 1)/4·4 = 1 + 3 = 4 s, reduce-scatter the same
    link = Link("node", 1.0, 0.0)
    comm = zero3([Unit(1, 6.0, 100.0, 100.0, experts=4.0)], 1.0, 1.0, (2, link), (4, link))
    assert comm.total_s == pytest.approx(2 * 4 + 4)
