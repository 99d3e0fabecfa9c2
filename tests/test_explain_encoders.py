"""`perfest explain` on encoders and encoder-decoders: the printed formulas evaluate to the ops'
numbers, the closed forms hold (worked by hand below), the rows are the estimate's, and phases
a model does not run are one line."""

import json

import pytest
from click.testing import CliRunner

import perfest
from perfest.cli import cli
from perfest.errors import SpecError
from perfest.explain import explain
from tests.test_explain import check_printed_formulas, evaluate


@pytest.mark.parametrize(
    "model, workload",
    [
        ("bert-base-uncased", dict(batch=2, input_len=16, head="mlm")),
        ("roberta-large", dict(batch=1, input_len=9, tp=2)),
        ("t5-base", dict(batch=2, input_len=16, output_len=4, tp=2)),
        ("flan-t5-xl", dict(batch=3, input_len=7, output_len=5, fusion="full")),
    ],
)
def test_printed_formulas_evaluate_to_the_ops_numbers(model, workload):
    e = explain(model, "h100-sxm", **workload)
    check_printed_formulas(e)
    for phase in e.phases:
        for c in phase.closed_forms:  # every form that is shown holds
            assert c.value == pytest.approx(c.perfest, rel=1e-12), (phase.phase, c.name)


def test_bert_base_forward_by_hand():
    # BERT-Base (h = 768, L = 12, i = 4h, 12 heads of 64), b = 1, s = 128, the pooler head.
    # Per layer: Q, K, V, O 4·2·128·768² = 603,979,776; FFN 16·128·768² = 1,207,959,552;
    # scores and values 2·2·128²·768 = 50,331,648; sum 1,862,270,976 = 24·b·s·h²·(1 + s/6h).
    # ×12 = 22,347,251,712, plus the pooler's [CLS] product 2·768² = 1,179,648:
    # 22,348,431,360 FLOPs of matmuls.
    (phase,) = explain("bert-base-uncased", "a100-80gb-sxm", batch=1, input_len=128).phases
    names = [c.name.split(",")[0].split(" (")[0] for c in phase.closed_forms]
    assert names == ["classic FFN", "2 FLOPs per weight per token", "BERT-style encoder"]
    ffn, per_weight, bert = phase.closed_forms
    assert ffn.value == ffn.perfest == 1_207_959_552
    assert per_weight.perfest == 22_348_431_360
    assert bert.value == pytest.approx(22_348_431_360, rel=1e-12)
    assert evaluate(per_weight.numbers, {}) == 22_348_431_360
    assert [(x.segment, x.count) for x in phase.layers] == [("encoder", 12)]
    assert phase.layers[0].flops == pytest.approx(
        sum(o.flops * o.count for o in phase.ops if o.segment == "encoder") / 12
    )


def test_t5_decoder_start_by_hand():
    # t5-base (h = 768, 12 decoder layers, i = 3072 = 4h, V = 32128), b = 1, the start token
    # (s = t = 1) over s_enc = 128 encoder outputs. Per layer: self Q, K, V, O 8·768² =
    # 4,718,592; cross Q, O 4·768² = 2,359,296; FFN 16·768² = 9,437,184; the cross K/V
    # projection of the encoder outputs 4·128·768² = 301,989,888; self-attention core
    # 4·1·1·768 = 3,072; cross core 4·1·128·768 = 393,216; sum 318,901,248, ×12 =
    # 3,826,814,976; the LM head 2·768·32128 = 49,348,608: 3,876,163,584.
    (prefill,) = explain("t5-base", "a100-80gb-sxm", batch=1, input_len=128, phase="prefill").phases
    (form,) = [c for c in prefill.closed_forms if c.name.startswith("2 FLOPs")]
    assert form.value == form.perfest == 3_876_163_584
    assert "2·b·s_enc·N_kv" in form.formula and prefill.point.s_enc == 128
    # decode reads the cross cache: no K/V projection (N_kv = 0), t = 1 + 16 // 2 = 9 keys
    (decode,) = explain("t5-base", "a100-80gb-sxm", batch=1, input_len=128, output_len=16,
                        phase="decode").phases  # fmt: skip
    (form,) = [c for c in decode.closed_forms if c.name.startswith("2 FLOPs")]
    # per layer 16,515,072 + 4·9·768 + 393,216 = 16,935,936; ×12 + 49,348,608 = 252,579,840
    assert form.value == form.perfest == 252_579_840


@pytest.mark.parametrize("model", ["bert-large-uncased", "t5-base"])
def test_the_rows_are_the_estimates(model):
    est = perfest.estimate(model, "h100-sxm", batch=4, input_len=64)
    e = explain(model, "h100-sxm", batch=4, input_len=64)
    assert [p.phase for p in e.phases] == [p.phase for p in est.phases]
    for ours, theirs in zip(e.phases, est.phases, strict=True):
        assert [o.time_s for o in ours.ops] == [r.time_s for r in theirs.layers]
        assert ours.time_s == theirs.time_s


def test_phases_a_model_does_not_run():
    with pytest.raises(SpecError, match="bert-base-uncased is an encoder, which has no decode"):
        explain("bert-base-uncased", "h100-sxm", phase="decode")
    with pytest.raises(SpecError, match="llama-2-7b is a decoder, which has no encode phase"):
        explain("llama-2-7b", "h100-sxm", phase="encode")
    with pytest.raises(SpecError, match="op: no op 'cross_kv_proj' in t5-base"):
        explain("t5-base", "h100-sxm", phase="decode", op="cross_kv_proj")  # prefill's only


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_cli_markdown_and_json_of_an_encoder_decoder():
    base = ["explain", "-m", "t5-base", "-g", "l4", "-b", "2", "-i", "32", "--output-len", "8"]
    md = run(*base, "--markdown")
    assert md.exit_code == 0, md.output
    assert "### cross_kv_proj (attention, ×12)" in md.output and "s_enc" in md.output
    data = json.loads(run(*base, "--json", "--phase", "encode").output)
    (phase,) = data["phases"]
    assert phase["phase"] == "encode" and phase["layers"][0]["segment"] == "encoder"


@pytest.mark.parametrize(
    "model, args, message",
    [
        ("bert-base-uncased", ["--phase", "decode"], "has no decode phase (its phases: encode)"),
        ("bert-base-uncased", ["--output-len", "4"], "--output-len: bert-base-uncased is an"),
        ("gpt2", ["--head", "mlm"], "--head: gpt2 is a decoder"),
        ("t5-base", ["--op", "cros_q_proj"], "closest: cross_q_proj"),
    ],
)
def test_cli_bad_input_is_one_line(model, args, message):
    r = run("explain", "-m", model, "-g", "l4", *args)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and message in r.output, r.output


def test_an_encoders_training_micro_batch_by_hand():
    # BERT-Base, b = 2, s = t = 128, one device, flash: N = 12·(4·768² + 2·768·3072) matmul
    # weights of the layers + the MLM transform 768² + the tied decoder 30522·768
    # = 84,934,656 + 589,824 + 23,440,896 = 108,965,376 (the pooler does not train);
    # 6·2·128·N = 167,370,817,536; the bidirectional core's 7 products (2 forward, 5 backward),
    # each 2·b·n_h·s·d·t·L = 2·2·12·128·64·128·12 = 603,979,776 → 4,227,858,432
    (phase,) = explain("bert-base-uncased", "h100-sxm", batch=2, input_len=128,
                       phase="train").phases  # fmt: skip
    (rule,) = phase.closed_forms
    assert rule.value == 167_370_817_536 + 4_227_858_432
    assert rule.perfest == pytest.approx(rule.value, rel=1e-12)
    assert [(t.segment, t.count) for t in phase.layers] == [("encoder", 12)]
    assert "mlm_decoder.wgrad" in [o.name for o in phase.ops]


def test_an_encoder_decoders_training_is_refused():
    with pytest.raises(SpecError, match="phase: training an encoder-decoder is not modelled"):
        explain("t5-base", "h100-sxm", phase="train")
