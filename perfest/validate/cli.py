"""`perfest validate` and `perfest calibrate`: parse options, call one library function, render.

Imports nothing heavy at module level: torch is imported by the library functions, inside the
commands, so a missing extra becomes one line and exit code 2.
"""

from __future__ import annotations

import click

from perfest.errors import PerfestError
from perfest.options import (
    emit,
    gpu_option,
    model_option,
    output_options,
    pick_workload,
    progress,
    reports_errors,
    stdout,
    workload_options,
)

DEVICE = click.option(
    "--device",
    "-d",
    default="cpu",
    show_default=True,
    help="Where to run PyTorch: cpu, cuda or cuda:N.",
)


@click.command()
@model_option
@gpu_option(required=False)
@DEVICE
@workload_options(reference=True)
@click.option("--compile", "compile_", is_flag=True, help="Also time the torch.compile'd model.")
@click.option(
    "--layers",
    type=click.IntRange(1),
    default=None,
    help="Time at most this many blocks (at least 1) and scale to all [as many as fit].",
)
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True)
@click.option("--warmup", type=click.IntRange(0), default=2, show_default=True)
@click.option("--train", is_flag=True,
              help="Time a training step (forward, backward, optimizer) of --batch sequences "
              "of --input-len tokens instead.")  # fmt: skip
@click.option("--optimizer", default="adamw", show_default=True, help="With --train.")
@output_options
@reports_errors
def validate(
    model: str,
    gpu: str | None,
    device: str,
    compile_: bool,
    layers: int | None,
    repeats: int,
    warmup: int,
    train: bool,
    optimizer: str,
    as_json: bool,
    as_csv: bool,
    **kwargs,
) -> None:
    """Time prefill and decode of a PyTorch reference of MODEL on this machine and compare with
    perfest's prediction (default spec: this device, calibrated on first use, ~25 s)."""
    if train:
        from perfest.catalog import load_model

        arch = load_model(model).architecture
        if arch == "encoder-decoder":
            raise PerfestError(f"--train: training an {arch} is not modelled yet")
        return _validate_training(model, gpu, device, repeats, warmup, optimizer, as_json,
                                  as_csv, pick_workload(kwargs))  # fmt: skip
    from perfest.validate.render import render_validation, validation_csv
    from perfest.validate.run import validate as run

    if gpu is None:
        _announce_calibration(model, device)
    steps = 6 + (2 if compile_ else 0) + (0 if gpu else 1)
    with progress(steps, "validating") as advance:
        result = run(
            model,
            gpu,
            device,
            compile=compile_,
            layers=layers,
            repeats=repeats,
            warmup=warmup,
            progress=advance,
            **pick_workload(kwargs),
        )
    emit(
        as_json,
        as_csv,
        result.to_dict,
        lambda: validation_csv(result),
        lambda console: render_validation(result, console),
    )
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


def _announce_calibration(model: str, device: str) -> None:
    """The first validate on a device calibrates it: say so before the wait (after checking
    the model, the device and where the spec will be written, so nothing fails after it)."""
    from perfest.catalog import load_model
    from perfest.validate.calibrate import check_default_spec_path, default_spec_path
    from perfest.validate.measure import resolve_device

    load_model(model)
    device = resolve_device(device)
    if not default_spec_path(device).exists():
        path = check_default_spec_path(device)
        click.echo(
            f"note: no calibrated spec for {device} yet: measuring it first (about 25 s, once; "
            f"saved to {path})",
            err=True,
        )


def _validate_training(model, gpu, device, repeats, warmup, optimizer, as_json, as_csv, w):
    from perfest.validate.render import render_train_validation, train_validation_csv
    from perfest.validate.train_run import validate_training

    with progress(4, "validating a training step") as advance:
        result = validate_training(
            model, gpu, device, batch=w.get("batch") or 1, seq_len=w.get("input_len") or 128,
            dtype=w.get("dtype"), optimizer=optimizer, attention=w.get("attention") or "flash",
            repeats=repeats, warmup=warmup, progress=advance,
        )  # fmt: skip
    emit(as_json, as_csv, result.to_dict, lambda: train_validation_csv(result),
         lambda console: render_train_validation(result, console))  # fmt: skip


@click.command()
@DEVICE
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Hardware YAML to write [the default spec validate uses].",
)
@click.option("--quick", is_flag=True, help="Fewer sizes and repeats (seconds; for tests).")
@click.option("--json", "as_json", is_flag=True, help="Print the spec as JSON.")
@reports_errors
def calibrate(device: str, output: str | None, quick: bool, as_json: bool) -> None:
    """Measure this device's achievable GEMM FLOP/s per dtype, memory bandwidth and per-op
    overhead, and write a hardware YAML that estimate, sweep and validate accept."""
    from perfest.validate.calibrate import calibrate as run
    from perfest.validate.calibrate import check_default_spec_path, write_spec
    from perfest.validate.render import render_calibration
    from perfest.validate.robust import check_output

    # where the spec goes is checked first, not after the measuring
    path = check_output(output) if output else check_default_spec_path(device)
    with progress(8, "calibrating") as advance:
        spec, curves = run(device, quick=quick, progress=advance)
    path = write_spec(spec, path)
    if as_json:
        from perfest.export import dumps

        click.echo(dumps(spec.model_dump(mode="json")))
    else:
        render_calibration(spec, curves, stdout())
    click.echo(f"wrote {path}", err=as_json)  # stdout stays pure JSON with --json
