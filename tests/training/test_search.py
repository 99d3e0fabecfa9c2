"""The layout search: what it enumerates, how it ranks, and why."""

from __future__ import annotations

import perfest
from perfest.training.search import search, shapes


def test_shapes_divide_the_gpus_the_heads_and_the_sequence():
    gpt2 = perfest.load_model("gpt2")  # 12 heads
    assert shapes(gpt2, 8, 1024) == [(1, 1), (1, 2), (1, 4), (1, 8), (2, 1), (2, 2), (2, 4),
                                     (4, 1), (4, 2)]  # fmt: skip
    assert shapes(gpt2, 8, 1024, flash=False) == [(1, 1), (2, 1), (4, 1)]


def test_search_ranks_the_layouts_that_fit_by_tokens_per_second():
    result = search("gpt2", "a100-80gb-sxm", gpus=4, global_batch=16, seq_len=1024)
    assert result.evaluated == len(result.candidates) > 100
    top = [r.candidate for r in result.top]
    assert len(top) == 10 and all(c.fits for c in top)
    assert [c.tokens_per_s for c in top] == sorted((c.tokens_per_s for c in top), reverse=True)
    best = top[0]
    assert best.tokens_per_s == max(c.tokens_per_s for c in result.candidates if c.fits)
    for ranked in result.top[1:]:
        assert ranked.reason.startswith("+")
    # each candidate is the estimate of its layout
    lay = best.layout
    est = perfest.estimate_training("gpt2", "a100-80gb-sxm", gpus=4, tp=lay.tp, pp=lay.pp,
                                    cp=lay.cp, global_batch=16, micro_batch=lay.micro_batch,
                                    seq_len=1024, zero=lay.zero, recompute=lay.recompute,
                                    interleave=lay.interleave,
                                    sequence_parallel=lay.sequence_parallel)  # fmt: skip
    assert est.step_time_s == best.step_s


def test_layouts_that_do_not_fit_are_kept_but_not_ranked():
    result = search("llama-3-8b", "l4", gpus=8, global_batch=16, seq_len=4096)
    assert any(not c.fits for c in result.candidates)
    assert all(r.candidate.fits for r in result.top)
