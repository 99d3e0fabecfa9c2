"""Encoders (BERT family) and encoder-decoders (T5 family): phases, results, memory, parameter
counts against the published checkpoints, sweeps, the CLI and its one-line errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import perfest
from perfest.cli import cli
from perfest.errors import SpecError
from perfest.graph import model_graph
from perfest.layers import Ctx
from perfest.ops import Role
from perfest.specs import Workload

ENCODERS = ["bert-base-uncased", "bert-large-uncased", "roberta-large"]
SEQ2SEQ = ["t5-base", "flan-t5-xl"]


def run(*args):
    return CliRunner().invoke(cli, list(args))


def parameters_with(name: str, head: str) -> int:
    """The model's parameters with `head` in place of its own."""
    return model_graph(Ctx.of(perfest.load_model(name), Workload(head=head))).parameters()


# ---------------------------------------------------------------------------------------------
# Parameter counts: which heads the published totals include.


def test_bert_checkpoint_total_is_bert_model_plus_both_pretraining_heads():
    """HF safetensors.total of bert-base-uncased, 110,106,428, is BertForPreTraining's: the
    encoder and pooler (109,482,240), the MLM head's transform and bias (768² + 768 + 2·768 +
    30,522 = 622,650; its decoder is the tied embedding) and the next-sentence head (2·768 + 2)."""
    pooler = perfest.count_parameters(perfest.load_model("bert-base-uncased"))
    mlm = parameters_with("bert-base-uncased", "mlm") - parameters_with("bert-base-uncased", "none")
    assert (pooler, mlm) == (109_482_240, 622_650)
    assert pooler + mlm + (2 * 768 + 2) == 110_106_428


def test_roberta_checkpoint_total_is_the_masked_lm_model():
    """HF safetensors.total of roberta-large, 355,412,057 (plus a 514-entry int64 buffer), is
    RobertaForMaskedLM's: the encoder and the MLM head, no pooler."""
    assert parameters_with("roberta-large", "mlm") == 355_412_057
    assert parameters_with("roberta-large", "pooler") == 355_359_744


def test_t5_stacks_share_one_embedding():
    # t5-base: 24,674,304 shared + 12·7,079,424 encoder + 12·9,439,488 decoder layers
    # + 2 bias tables 32·12 + 2 final norms 768 = 222,903,552 (tied head: no extra)
    graph = model_graph(Ctx.of(perfest.load_model("t5-base"), Workload()))
    weights = graph.tensors(Role.WEIGHT)
    assert sum(1 for t in weights if t.name == "embed.tokens") == 1
    assert graph.parameters() == 24_674_304 + 12 * (7_079_424 + 9_439_488) + 2 * 384 + 2 * 768


# ---------------------------------------------------------------------------------------------
# Estimates.


def test_encoder_reports_one_encode_phase():
    est = perfest.estimate("bert-base-uncased", "h100-sxm", batch=8, input_len=128)
    assert [p.phase for p in est.phases] == ["encode"] and est.generation is None
    enc = est.encoding
    assert enc.latency_s == est.encode.time_s
    assert enc.sequences_per_s == pytest.approx(8 / enc.latency_s)
    assert enc.tokens_per_s == pytest.approx(8 * 128 / enc.latency_s)
    assert enc.roofline_latency_s <= enc.latency_s
    assert est.memory.kv_cache_bytes == 0
    assert est.memory.weights_bytes == 2 * 109_482_240  # bf16, with the pooler
    data = est.to_dict()
    assert "encode" in data and "decode" not in data and "generation" not in data
    assert data["encoding"]["tokens_per_s"] == enc.tokens_per_s
    assert data["workload"]["head"] == "pooler"  # the model's own, the head that ran


def test_head_changes_the_encode_pass():
    kinds = {}
    for head in ("none", "pooler", "mlm"):
        est = perfest.estimate("bert-base-uncased", "a100-80gb-sxm", batch=4, head=head)
        kinds[head] = (est.encode.flops, {row.name for row in est.encode.layers})
    assert kinds["none"][0] < kinds["pooler"][0] < kinds["mlm"][0]
    assert "pooler" in kinds["pooler"][1] and "mlm_decoder" in kinds["mlm"][1]
    assert not {"pooler", "mlm_decoder"} & kinds["none"][1]


def test_encoder_decoder_phases_and_time_to_first_token():
    est = perfest.estimate("t5-base", "h100-sxm", batch=4, input_len=256, output_len=32)
    assert [p.phase for p in est.phases] == ["encode", "prefill", "decode"]
    encode, prefill, decode = est.phases
    assert (encode.query_len, encode.context_len) == (256, 256)
    assert (prefill.query_len, prefill.context_len, prefill.point.s_enc) == (1, 1, 256)
    assert (decode.query_len, decode.context_len) == (1, 1 + 16)
    gen = est.generation
    assert gen.ttft_s == pytest.approx(encode.time_s + prefill.time_s)
    assert gen.e2e_latency_s == pytest.approx(gen.ttft_s + 31 * decode.time_s)
    # the cross K/V projection is prefill's: decode has none of it
    assert "cross_kv_proj" in {r.name for r in prefill.layers}
    assert "cross_kv_proj" not in {r.name for r in decode.layers}
    # every weight of both stacks is held (bf16)
    assert est.memory.weights_bytes == 2 * 222_903_552


def test_encoder_decoder_never_says_its_input_exceeds_positions():
    """T5's relative positions have no table to run out of; BERT's learned ones do."""
    t5 = perfest.estimate("t5-base", "h100-sxm", input_len=2048, output_len=600)
    assert not t5.warnings
    bert = perfest.estimate("bert-base-uncased", "h100-sxm", input_len=600)
    assert "max_position_embeddings 512" in bert.warnings[0].text


def test_decoders_keep_their_json():
    data = perfest.estimate("gpt2", "l4").to_dict()
    assert "head" not in data["workload"] and "encoding" not in data
    assert list(data)[-3:] == ["decode", "generation", "warnings"]


@pytest.mark.parametrize(
    "name, fields, message",
    [
        ("bert-base-uncased", {"output_len": 16}, "output_len: bert-base-uncased is an encoder"),
        ("bert-base-uncased", {"kv_dtype": "fp8"}, "kv_dtype: bert-base-uncased is an encoder"),
        ("bert-base-uncased", {"logits": "all"}, "logits: bert-base-uncased is an encoder"),
        ("gpt2", {"head": "mlm"}, "head: gpt2 is a decoder"),
        ("t5-base", {"head": "pooler"}, "head: t5-base is an encoder-decoder"),
    ],
)
def test_what_a_model_does_not_do_is_one_line(name, fields, message):
    with pytest.raises(SpecError, match=message):
        perfest.estimate(name, "h100-sxm", **fields)


# ---------------------------------------------------------------------------------------------
# Sweeps.


def test_encoder_sweep_over_batch_and_length():
    result = perfest.sweep(
        "bert-large-uncased", "h100-sxm", batches="1:64:x2", input_lens="128,512"
    )
    assert len(result.points) == 14 and len(result.summaries) == 2
    for summary in result.summaries:
        series = result.series(summary)
        assert [p.latency_s for p in series] == sorted(p.latency_s for p in series)
        assert [p.sequences_per_s for p in series] == sorted(p.sequences_per_s for p in series)
        # compute-bound once b·s passes ≈ R·w/2 = 295 tokens: batch 4 at 128, 1 at 512
        assert summary.knee_batch == {128: 4, 512: 1}[summary.input_len]
    data = result.to_dict()
    assert data["architecture"] == "encoder" and "output_lens" not in data
    assert data["workload"]["head"] == "pooler"
    assert data["points"][0]["bound"] in ("compute", "memory", "overhead")


def test_encoder_decoder_sweeps_like_a_decoder():
    result = perfest.sweep("t5-base", "h100-sxm", batches="1:64:x4", input_lens=512, output_lens=64)
    (summary,) = result.summaries
    assert summary.decode_context_len == 1 + 32
    # its decode step reads 33 tokens of self cache and 512 of cross cache per sequence
    assert summary.kv_bytes_per_sequence == 2 * 12 * (33 + 512) * 768 * 2
    rates = [p.output_tokens_per_s for p in result.points]
    assert rates == sorted(rates)


def test_encoder_sweep_refuses_output_lengths():
    with pytest.raises(SpecError, match="output_lens: bert-base-uncased is an encoder"):
        perfest.sweep("bert-base-uncased", "h100-sxm", batches="1,2", output_lens="8")


# ---------------------------------------------------------------------------------------------
# Properties: monotonic in batch and length, never faster than the roofline, memory ≥ 0.

shapes = st.fixed_dictionaries({"batch": st.integers(1, 256), "input_len": st.integers(1, 512)})


def encode_measures(est):
    return [est.encode.flops, est.encode.bytes, est.encode.time_s, est.memory.total_bytes]


@given(st.sampled_from(ENCODERS + SEQ2SEQ), st.sampled_from(["h100-sxm", "l4", "mi300x"]),
       shapes, st.sampled_from(["batch", "input_len"]), st.integers(1, 200))  # fmt: skip
def test_encode_grows_with_batch_and_length(name, device, w, field, by):
    small = perfest.estimate(name, device, **w)
    large = perfest.estimate(name, device, **{**w, field: w[field] + by})
    pairs = zip(encode_measures(small), encode_measures(large), strict=True)
    assert all(b >= a * (1 - 1e-12) for a, b in pairs)
    if small.generation is not None:  # an encoder-decoder's TTFT includes the encoder
        assert large.generation.ttft_s >= small.generation.ttft_s * (1 - 1e-12)


@given(st.sampled_from(ENCODERS + SEQ2SEQ), st.sampled_from(["h100-sxm", "a100-80gb-sxm"]),
       shapes, st.integers(1, 256), st.sampled_from(["flash", "eager"]))  # fmt: skip
def test_never_faster_than_the_roofline_and_memory_never_negative(name, device, w, out, attn):
    fields = {**w, "attention": attn}
    if perfest.load_model(name).architecture == "encoder-decoder":
        fields["output_len"] = out
    est = perfest.estimate(name, device, **fields)
    for phase in est.phases:
        assert phase.time_s >= phase.roofline_time_s > 0
        for row in phase.layers:
            assert row.time_s >= row.roofline_time_s * (1 - 1e-12)
    m = est.memory
    assert min(m.weights_bytes, m.kv_cache_bytes, m.activation_bytes) >= 0
    assert m.max_batch >= 0


# ---------------------------------------------------------------------------------------------
# The CLI.


def test_cli_estimate_encoder_tables_json_and_csv():
    r = run("estimate", "-m", "bert-base-uncased", "-g", "h100-sxm", "-b", "8", "-i", "128",
            "--layers")  # fmt: skip
    assert r.exit_code == 0, r.output
    for text in ("encode", "sequences/s", "tokens/s", "no KV cache", "pooler", "qkv_proj"):
        assert text in r.output
    data = json.loads(run("estimate", "-m", "roberta-large", "-g", "l4", "--json").output)
    assert data["encoding"]["sequences_per_s"] > 0 and data["parameters"] == 355_359_744
    rows = list(csv.DictReader(io.StringIO(run("estimate", "-m", "bert", "-g", "l4",
                                               "--head", "mlm", "--csv").output)))  # fmt: skip
    assert {row["phase"] for row in rows} == {"encode"}
    assert "mlm_decoder" in {row["name"] for row in rows}


def test_cli_estimate_encoder_decoder_layers():
    r = run("estimate", "-m", "flan-t5-xl", "-g", "h100-sxm", "-i", "512", "--output-len", "64",
            "--layers")  # fmt: skip
    assert r.exit_code == 0, r.output
    for text in (
        "time to first token (encode + prefill)",
        "cross_kv_proj",
        "position_bias",
        "encode (the encoder over 512 tokens), per op",
        "decode step at context 33",
    ):
        assert text in r.output  # fmt: skip


def test_cli_sweep_encoder_table_and_csv():
    r = run("sweep", "-m", "bert-base-uncased", "-g", "h100-sxm,l4", "-b", "1,8", "-i", "64,256")
    assert r.exit_code == 0, r.output
    assert "seq/s" in r.output and "knee" in r.output
    out = run("sweep", "-m", "bert-base-uncased", "-g", "l4", "-b", "1:4:x2", "--csv").output
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 3 and "sequences_per_s" in rows[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["estimate", "-m", "bert", "-g", "h100", "--output-len", "8"],
         "error: --output-len: bert-base-uncased is an encoder"),
        (["estimate", "-m", "bert", "-g", "h100", "--kv-dtype", "fp8"],
         "error: --kv-dtype: bert-base-uncased is an encoder: it keeps no KV cache"),
        (["estimate", "-m", "gpt2", "-g", "h100", "--head", "mlm"],
         "error: --head: gpt2 is a decoder"),
        (["estimate", "-m", "bert", "-g", "h100", "--head", "cls"],
         "error: Invalid value for '--head'"),
        (["sweep", "-m", "bert", "-g", "h100", "-b", "1,2", "--output-len", "4"],
         "error: --output-len: bert-base-uncased is an encoder"),
        (["sweep", "-m", "bert", "-g", "h100", "--plot", "x.png"],
         "error: --plot: an encoder's sweep has no throughput-against-batch plot yet"),
    ],
)  # fmt: skip
def test_cli_bad_input_is_one_line_and_exit_2(args, message):
    r = run(*args)
    assert r.exit_code == 2
    assert r.stderr.startswith(message) and r.stderr.count("\n") == 1, r.stderr


def test_heads_not_dividing_hidden_is_one_line(tmp_path):
    text = (perfest.catalog._catalog_dir("models") / "bert-base-uncased.yaml").read_text()
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("num_heads: 12", "num_heads: 7").replace("num_kv_heads: 12", ""))
    r = run("estimate", "-m", str(path), "-g", "h100")
    assert r.exit_code == 2 and "num_heads: 7 heads do not divide hidden_size 768" in r.stderr


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"head": "mlm"}, "head: only an encoder or encoder-decoder has it"),
        ({"architecture": "encoder", "position": "rope"}, "position: rotary positions"),
        ({"architecture": "encoder-decoder", "head": "pooler"}, "head: pooler: only an encoder"),
        ({"architecture": "encoder", "num_decoder_layers": 2}, "num_decoder_layers: an encoder"),
        ({"position": "relative"}, "position: relative position buckets"),
        ({"architecture": "encoder", "num_experts": 4, "experts_per_token": 2}, "num_experts"),
    ],
)
def test_inconsistent_encoder_fields_are_one_line(fields, message):
    from perfest.specs import ModelConfig, build

    base = dict(name="x", vocab_size=100, hidden_size=64, num_layers=2, num_heads=4,
                intermediate_size=128, position="learned")  # fmt: skip
    with pytest.raises(SpecError, match=message):
        build(ModelConfig, {**base, **fields})


@pytest.mark.plot
def test_roofline_places_encode_ops(tmp_path):
    path = tmp_path / "bert.png"
    r = run("roofline", "-m", "bert-base-uncased", "-g", "h100-sxm", "-o", str(path))
    assert r.exit_code == 0 and path.stat().st_size > 0
    from perfest.plot import roofline_figure

    est = perfest.estimate("bert-base-uncased", "h100-sxm")
    fig = roofline_figure(est, perfest.load_hardware("h100-sxm"))
    labels = [t.get_label() for t in fig.axes[0].collections]
    assert labels == ["encode ops (batch 1)"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "-m", "t5-base", "-g", "h100", "--gpus", "8", "--global-batch", "64",
          "--seq-len", "128"], "error: --model: training an encoder-decoder (t5-base) is not"),
        (["validate", "-m", "t5-base", "--train"],
         "error: --train: training an encoder-decoder is not modelled yet"),
    ],
)  # fmt: skip
def test_training_an_encoder_decoder_is_refused_in_one_line(args, message):
    r = run(*args)
    assert r.exit_code == 2 and r.stderr.startswith(message), r.stderr


def test_show_model_says_the_architecture():
    r = run("show", "model", "t5-base")
    assert "encoder-decoder, 12 + 12 layers, 32 relative position buckets" in r.output
    assert "encoder, post-norm, head pooler" in run("show", "model", "bert").output


@pytest.mark.parametrize("name", ENCODERS + SEQ2SEQ)
@pytest.mark.parametrize("tp", [1, 2, 4])
def test_memory_weights_are_the_weights_the_ops_read(name, tp):
    """Every weight tensor any phase's op reads, once per layer holding it (a tensor shared by
    the two stacks once), is what memory counts — at every tensor-parallel degree."""
    fields = {"tp": tp, "batch": 3, "input_len": 100}
    if name in SEQ2SEQ:
        fields["output_len"] = 20
    est = perfest.estimate(name, "h100-sxm", **fields)
    held = {a.tensor: row.count for phase in est.phases for row in phase.rows
            for a in row.op.reads if a.tensor.role is Role.WEIGHT}  # fmt: skip
    assert est.memory.weights_bytes == sum(n * t.nbytes.value() for t, n in held.items())
    if tp > 1:  # Megatron's two all-reduces per sub-block, and the vocabulary-split embedding
        names = {row.op.name for row in est.phases[0].rows}
        assert {"embed_allreduce", "attn_allreduce", "mlp_allreduce"} <= names


@pytest.mark.parametrize("name, phases", [("bert-base-uncased", 1), ("t5-base", 3)])
def test_explain_covers_encoders(name, phases):
    r = run("explain", "-m", name, "-g", "h100", "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)["phases"]) == phases


@pytest.mark.parametrize("fusion", ["none", "default", "full"])
def test_fusion_levels_apply_to_encoders(fusion):
    """Full fusion folds an encoder's element-wise chains into its products too: fewer bytes,
    fewer kernels, the same matmul FLOPs."""
    est = {f: perfest.estimate("bert-base-uncased", "h100-sxm", batch=8, input_len=128, fusion=f)
           for f in ("default", fusion)}  # fmt: skip
    base, other = est["default"].encode, est[fusion].encode
    assert other.matmul_flops == base.matmul_flops
    if fusion == "full":
        assert other.bytes < base.bytes and other.time_s < base.time_s
        t5 = perfest.estimate("t5-base", "h100-sxm", output_len=8, fusion="full")
        assert [p.phase for p in t5.phases] == ["encode", "prefill", "decode"]
