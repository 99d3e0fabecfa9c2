"""`perfest sweep` and `perfest roofline`: parse options, call `perfest.sweeps.sweep` or
`perfest.estimate`, hand the result to perfest.render.sweep (people) or perfest.export
(scripts), and plot (the optional matplotlib extra).
"""

from __future__ import annotations

import math

import click

from perfest.options import (
    emit,
    fail,
    gpu_option,
    memory_failure,
    model_option,
    output_options,
    pick_workload,
    progress,
    report_notes,
    reports_errors,
    workload_options,
)
from perfest.sweeps import MAX_POINTS, parse_axis

#: Sweeps this long show a progress bar (on a terminal only).
PROGRESS_MIN_POINTS = 50
AXES = {"batch": "--batch", "input_len": "--input-len", "output_len": "--output-len"}


def _plot_path(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.lower().endswith((".png", ".svg")):
        raise click.BadParameter(f"'{value}' must end in .png or .svg", ctx, param)
    return value


def _devices(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",")]
    if not any(names):
        fail("--gpu: empty list of devices")
    if not all(names):
        fail(f"--gpu: empty name in '{value}'")
    return names


# ---------------------------------------------------------------------------------------------
# Commands.


@click.command()
@model_option
@gpu_option(many=True)
@workload_options(ranges=True)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    callback=_plot_path,
    help="Also draw throughput and TPOT against batch to this .png or .svg (perfest[plot]).",
)
@output_options
@reports_errors
def sweep(
    model: str, gpu: str, plot_path: str | None, as_json: bool, as_csv: bool, **kwargs
) -> None:
    """Sweep batch size (and lengths, and devices: --gpu a,b,c): throughput, latency, bound
    and memory per point, and where decode turns compute-bound."""
    from perfest.export import sweep_csv
    from perfest.sweeps import sweep as run

    if plot_path:
        from perfest import plot
        from perfest.catalog import load_model

        if load_model(model).architecture == "encoder":
            fail("--plot: an encoder's sweep has no throughput-against-batch plot yet; use "
                 "--json or --csv")  # fmt: skip
        plot.require()
    workload = pick_workload(kwargs)
    axes = {
        field: parse_axis(text, AXES[field])
        for field in AXES
        if (text := workload.pop(field)) is not None
    }
    devices = _devices(gpu)
    total = len(devices) * math.prod(len(values) for values in axes.values())
    if total > MAX_POINTS:
        sizes = " × ".join(str(len(values)) for values in (*axes.values(), devices))
        flags = ", ".join([*(AXES[field] for field in axes), "--gpu"])
        fail(f"{flags}: {sizes} = {total:,} points; at most {MAX_POINTS:,}")
    with progress(total, "sweeping", minimum=PROGRESS_MIN_POINTS) as advance:
        result = run(
            model,
            devices,
            batches=axes.get("batch"),
            input_lens=axes.get("input_len"),
            output_lens=axes.get("output_len"),
            progress=lambda done, _total: advance(done=done),
            **workload,
        )
    emit(
        as_json,
        as_csv,
        result.to_dict,
        lambda: sweep_csv(result),
        lambda console: _render(result, console),
    )
    if plot_path:
        plot.sweep_plot(result, plot_path)
        click.echo(f"wrote {plot_path}", err=True)
    report_notes(result.warnings, _memory_failure(result))


def _memory_failure(result) -> str | None:
    """The estimate policy: a result that cannot run is an error, after it is printed. Points
    that do not fit beside others that do are what a sweep is for: its table marks them."""
    if any(p.fits for p in result.points):
        return None
    largest = ", ".join(f"{s.hardware} {s.max_batch}" for s in result.summaries)
    return f"memory: no swept point fits in device memory (largest batch that fits: {largest})"


@click.command()
@model_option
@gpu_option
@click.option(
    "--output",
    "-o",
    "path",
    required=True,
    type=click.Path(dir_okay=False),
    callback=_plot_path,
    help="The picture to write: .png or .svg (needs perfest[plot]).",
)
@workload_options
@click.option(
    "--compare",
    default=None,
    help="Draw each op group before and after: fusion (none → full) or attention (eager → flash).",
)
@reports_errors
def roofline(model: str, gpu: str, path: str, compare: str | None, **kwargs) -> None:
    """Draw the device's roofline with every op of prefill and decode placed on it."""
    from perfest import plot
    from perfest.catalog import load_hardware, load_model

    m, hw = load_model(model), load_hardware(gpu)  # bad names first, then the missing extra
    if compare is not None:
        from perfest.compare import compare as run

        comparison = run(m, hw, compare, **pick_workload(kwargs))  # a bad axis before the extra
        plot.require()
        plot.compare_plot(comparison, hw, path)
        click.echo(f"wrote {path}", err=True)
        return
    plot.require()
    from perfest.inference import estimate

    est = estimate(m, hw, **pick_workload(kwargs))
    plot.roofline_plot(est, hw, path)
    click.echo(f"wrote {path}", err=True)
    report_notes(est.warnings, memory_failure(est))  # as estimate does


def _render(result, console) -> None:
    from perfest.encoder_sweeps import EncoderSweepResult
    from perfest.render.sweep import render_sweep  # rich: only for people

    if isinstance(result, EncoderSweepResult):
        from perfest.render.encoder import render_encoder_sweep

        render_encoder_sweep(result, console)
    else:
        render_sweep(result, console)
