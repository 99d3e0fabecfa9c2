"""Bad training input: one PerfestError naming the option, for every case the issue lists."""

from __future__ import annotations

import pytest

import perfest
from perfest.errors import PerfestError

BASE = {"gpus": 8, "global_batch": 16, "seq_len": 1024}
NODE = perfest.HardwareSpec(name="node", fp32_tflops=10, bf16_tflops=100, memory_gb=80,
                            memory_bandwidth_gb_s=1000, interconnect_bandwidth_gb_s=100,
                            devices_per_node=8)  # fmt: skip
LONE = perfest.HardwareSpec(name="lone", fp32_tflops=10, bf16_tflops=100, memory_gb=80,
                            memory_bandwidth_gb_s=1000)  # fmt: skip


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"tp": 4, "pp": 4}, "gpus: tp·pp·cp = 4·4·1 = 16 does not divide the 8 GPUs"),
        ({"tp": 2, "dp": 2}, "gpus: tp·pp·cp·dp = 2·1·1·2 = 4 is not the 8 GPUs"),
        ({"tp": 8, "gpus": 8, "model": "gpt2-xl"}, "tp: 8 does not divide the 25 attention"),
        ({"pp": 16, "gpus": 16}, "pp: 16 pipeline stages exceed the 12 layers"),
        ({"global_batch": 12, "micro_batch": 2}, "global_batch: 12 is not divisible by"),
        ({"cp": 8, "seq_len": 1020}, "cp: 8 does not divide the sequence length 1020"),
        ({"optimizer": "adagrad"}, "optimizer: must be one of 'sgd', 'momentum'"),
        ({"zero": 4}, "zero: must be at most 3 (got 4)"),
        ({"dtype": "fp8", "hardware": "a100-80gb-sxm"}, "dtype: a100-80gb-sxm has no fp8"),
        ({"interleave": 2}, "interleave: virtual stages need pipeline parallelism"),
        ({"pp": 2, "interleave": 2, "gpus": 8, "global_batch": 4},
         "interleave: the interleaved schedule needs"),
        ({"pp": 4, "interleave": 2}, "interleave: pp·v = 4·2 does not divide the 12 layers"),
        ({"recompute": "some"}, "recompute: must be one of 'none', 'selective' or 'full'"),
        ({"gpus": 0}, "gpus: must be greater than 0 (got 0)"),
        ({"gpus": 16, "hardware": NODE}, "gpus: 16 devices span more than one 8-device node"),
        ({"gpus": 2, "hardware": LONE}, "gpus: lone has no interconnect"),
    ],
)  # fmt: skip
def test_bad_input_is_one_error_naming_the_option(fields, message):
    fields = {**BASE, **fields}
    model = fields.pop("model", "gpt2")
    hw = fields.pop("hardware", "h100-sxm")
    with pytest.raises(PerfestError) as err:
        perfest.estimate_training(model, hw, **fields)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_a_layout_that_does_not_fit_is_reported_not_raised():
    est = perfest.estimate_training("llama-3.1-405b", "h100-sxm", gpus=8, global_batch=8,
                                    seq_len=8192)  # fmt: skip
    assert not est.memory.fits and est.memory.max_micro_batch == 0
    assert est.warnings[0].text.startswith("memory: needs")


@pytest.mark.parametrize(
    "fields, start",
    [
        (dict(ep=3), "ep: 3 does not divide the 8 experts"),
        # Megatron-Core: etp·ep must divide the tp·cp·dp ranks of a stage
        (dict(tp=2, ep=8, sequence_parallel=True), "ep: etp·ep = 2·8 does not divide the tp·cp"),
        (dict(tp=2, ep=4), "sequence_parallel: a mixture of experts under tp > 1"),
    ],
)
def test_expert_layouts_that_cannot_run_are_one_line(fields, start):
    with pytest.raises(PerfestError) as err:
        perfest.estimate_training("mixtral-8x7b", "h100-sxm", **{"gpus": 8, "global_batch": 8,
                                  "seq_len": 1024, **fields})  # fmt: skip
    assert str(err.value).startswith(start)


def test_a_dense_model_has_no_experts_to_divide():
    with pytest.raises(PerfestError) as err:
        perfest.estimate_training("llama-3-8b", "h100-sxm", gpus=8, ep=8, global_batch=8,
                                  seq_len=1024)  # fmt: skip
    assert str(err.value) == "ep: llama-3-8b has no experts to divide"
