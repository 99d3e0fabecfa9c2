"""`perfest train`: one training layout, a scaling curve over GPU counts, or the best layouts.

A thin shell: it parses the options, calls perfest.training (estimate_training, scaling,
search) and renders the result (perfest.render.train) or writes JSON / CSV.
"""

from __future__ import annotations

import re
import sys

import click

from perfest.errors import PerfestError
from perfest.options import emit, fail, gpu_option, model_option, output_options, progress
from perfest.training.config import CONFIG_FIELDS, OPTIMIZERS, RECOMPUTE, TRAIN_DTYPES

#: Library field names the messages may start with (→ the option the user typed).
_FIELDS = {*CONFIG_FIELDS, "tokens", "model"}


def option_names(message: str) -> str:
    """'global_batch: …' → '--global-batch: …'."""
    match = re.match(r"(\w+):", message)
    if match and match.group(1) in _FIELDS:
        return "--" + match.group(1).replace("_", "-") + message[match.end(1) :]
    return message


GPUS_HELP = "GPU count; a list or range (64,128,256 · 64:1024:x2): a scaling curve."
SP_HELP = "Split norms, dropout and activations over tp (reduce-scatter + all-gather)."
WEAK_HELP = "Scaling at a fixed batch per GPU (--global-batch is the first count's)."


def _int(name: str, help_text: str, **kw):
    return click.option(name, type=int, default=None, help=help_text, **kw)


@click.command()
@model_option
@gpu_option
@click.option("--gpus", "-n", required=True, help=GPUS_HELP)
@_int("--tp", "Tensor-parallel degree [1].")
@_int("--pp", "Pipeline stages [1].")
@_int("--cp", "Context-parallel degree (sequence split) [1].")
@_int("--dp", "Data-parallel degree [GPUs / (tp·pp·cp)].")
@_int("--ep", "Expert parallelism: experts divided over ep devices (mixtures of experts) [1].")
@_int("--etp", "The experts' own tensor-parallel degree (Megatron-Core's folding) [tp].")
@_int("--interleave", "Virtual pipeline stages per GPU (interleaved 1F1B) [1].")
@click.option("--sequence-parallel", is_flag=True, default=None, help=SP_HELP)
@_int("--zero", "ZeRO stage 0-3 over data parallelism (FSDP = 3) [0].")
@_int("--global-batch", "Sequences per optimizer step.", required=True)
@_int("--micro-batch", "Sequences per micro-batch [1].")
@_int("--seq-len", "Tokens per sequence.", required=True)
@click.option("--dtype", type=click.Choice(TRAIN_DTYPES), default=None,
              help="bf16/fp16 mixed precision, fp8 GEMMs, or fp32 [bf16].")  # fmt: skip
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None, help="[adamw]")
@click.option("--recompute", type=click.Choice(RECOMPUTE), default=None,
              help="Activation recomputation [none].")  # fmt: skip
@click.option("--attention", type=click.Choice(["flash", "eager"]), default=None,
              help="Fused flash attention or eager [flash].")  # fmt: skip
@_int("--mlm-positions", "Encoders: positions per sequence the masked-LM head scores [all].")
@click.option("--grad-dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
              help="Weight gradients' dtype [fp32 under mixed precision].")  # fmt: skip
@click.option("--compute-efficiency", type=float, default=None,
              help="Override the device's achievable fraction of peak FLOP/s.")  # fmt: skip
@click.option("--memory-efficiency", type=float, default=None,
              help="Override the device's achievable fraction of peak bandwidth.")  # fmt: skip
@click.option("--tokens", type=float, default=None, help="Tokens to train on: days, GPU-hours.")
@click.option("--weak", is_flag=True, help=WEAK_HELP)
@click.option("--search", "do_search", is_flag=True,
              help="Rank every layout of --gpus that divides the model and fits.")  # fmt: skip
@click.option("--top", type=click.IntRange(1), default=10, show_default=True,
              help="Layouts shown by --search.")  # fmt: skip
@click.option("--layers", is_flag=True, help="Add the per-op table of each phase.")
@output_options
def train(model, gpu, gpus, weak, do_search, top, layers, tokens, as_json, as_csv, **fields):
    """Predict a training step: time and its breakdown, tokens/s, MFU, memory per device; a
    scaling curve over GPU counts; or, with --search, the best layouts for the cluster."""
    try:
        _train(model, gpu, gpus, weak, do_search, top, layers, tokens, as_json, as_csv, fields)
    except PerfestError as exc:
        fail(option_names(str(exc)))


def _train(model, gpu, gpus, weak, do_search, top, layers, tokens, as_json, as_csv, fields):
    from perfest.catalog import load_model
    from perfest.sweeps import parse_axis
    from perfest.training.config import check_architecture

    # an unknown name, or a model that does not train: one line before the options are read
    check_architecture(load_model(model))
    counts = parse_axis(gpus, "--gpus")
    fields = {key: value for key, value in fields.items() if value is not None}
    if do_search:
        return _search(model, gpu, counts, top, as_json, as_csv, fields)
    if len(counts) > 1:
        return _scaling(model, gpu, counts, weak, as_json, as_csv, fields)
    from perfest.export import training_csv
    from perfest.training.estimate import estimate_training

    est = estimate_training(model, gpu, gpus=counts[0], tokens=tokens, **fields)
    emit(as_json, as_csv, lambda: est.to_dict(layers), lambda: training_csv(est),
         lambda console: _render("render_training", est, console, layers=layers))  # fmt: skip
    for note in est.warnings:
        click.echo(f"warning: {note}", err=True)


def _scaling(model, gpu, counts, weak, as_json, as_csv, fields):
    from perfest.export import scaling_csv
    from perfest.training.estimate import scaling

    if "dp" in fields:
        raise PerfestError("dp: a list of GPU counts derives dp from each count; drop --dp")
    ests = scaling(model, gpu, counts, weak=weak, **fields)
    emit(as_json, as_csv, lambda: [e.to_dict() for e in ests], lambda: scaling_csv(ests),
         lambda console: _render("render_scaling", ests, console, weak=weak))  # fmt: skip


def _search(model, gpu, counts, top, as_json, as_csv, fields):
    from perfest.catalog import load_model
    from perfest.export import search_csv
    from perfest.training.search import LAYOUT_FIELDS, search, shapes

    if len(counts) > 1:
        raise PerfestError(f"gpus: --search ranks the layouts of one GPU count (got {len(counts)})")
    fixed = sorted(set(fields) & set(LAYOUT_FIELDS))
    if fixed:
        names = ", ".join("--" + name.replace("_", "-") for name in fixed)
        raise PerfestError(f"gpus: --search chooses {names} itself; drop them")
    flash = fields.get("attention", "flash") == "flash"
    total = len(shapes(load_model(model), counts[0], fields["seq_len"], flash))
    with progress(total, "searching layouts", minimum=2) as advance:
        result = search(model, gpu, gpus=counts[0], top=top, progress=advance, **fields)
    emit(as_json, as_csv, result.to_dict, lambda: search_csv(result),
         lambda console: _render("render_search", result, console))  # fmt: skip


def _render(name: str, result, console, **kw) -> None:
    from perfest.render import train as render  # rich: only for people

    getattr(render, name)(result, console, **kw)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train())
