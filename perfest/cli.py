"""The `perfest` command: a thin shell that parses options, calls the library and renders.

Every PerfestError (and every click usage error) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from perfest import catalog
from perfest.options import (
    emit,
    fail,
    gpu_option,
    memory_failure,
    model_option,
    option_names,
    output_options,
    pick_workload,
    report_notes,
    reports_errors,
    stdout,
    workload_options,
)

#: Commands defined in their own modules, imported only when run (or listed by --help), so
#: that `perfest estimate` never pays for them.
LAZY_COMMANDS = {
    "sweep": "perfest.sweep_cli:sweep",
    "roofline": "perfest.sweep_cli:roofline",
    "validate": "perfest.validate.cli:validate",
    "calibrate": "perfest.validate.cli:calibrate",
    "explain": "perfest.explain_cli:explain",
    "train": "perfest.train_cli:train",
}


class OneLineErrors(click.Group):
    """A group whose usage errors, like library errors, are one line and exit code 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        target = self._lazy().get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    @staticmethod
    def _lazy() -> dict[str, str]:
        """The lazy commands whose module is present in this installation."""
        found = {}
        for name, target in LAZY_COMMANDS.items():
            try:
                if importlib.util.find_spec(target.split(":")[0]) is not None:
                    found[name] = target
            except ModuleNotFoundError:  # its parent package is absent
                pass
        return found

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `perfest`: the usual help
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        except click.ClickException as exc:
            fail(option_names(exc.format_message().replace("\n", " ")))
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="perfest")
def cli() -> None:
    """Analytical performance estimates for transformer inference: FLOPs, bytes, rooflines,
    predicted latency and throughput, per layer and per phase."""


@cli.command()
@model_option
@gpu_option
@workload_options
@click.option("--layers", is_flag=True, help="Add the per-op tables for prefill and decode.")
@click.option(
    "--compare",
    default=None,
    help="Show the variants of one axis side by side: fusion (none, default, full) or "
    "attention (eager, flash).",
)
@output_options
@reports_errors
def estimate(
    model: str, gpu: str, layers: bool, compare: str | None, as_json: bool, as_csv: bool, **kwargs
) -> None:
    """Predict prefill, decode and generation time, memory and the bound of each."""
    from perfest.export import estimate_csv
    from perfest.inference import estimate as run

    if compare is not None:
        return _compare(model, gpu, compare, as_json, as_csv, kwargs)

    est = run(model, gpu, **pick_workload(kwargs))
    emit(
        as_json,
        as_csv,
        est.to_dict,
        lambda: estimate_csv(est),
        lambda console: _render_estimate(est, console, layers),
    )
    report_notes(est.warnings, memory_failure(est))


@cli.command("list")
@click.argument("kind", type=click.Choice(["models", "hardware"]))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@reports_errors
def list_(kind: str, as_json: bool) -> None:
    """List the catalogued models or devices."""
    from perfest.export import dumps
    from perfest.render.catalog import catalog_table

    names = catalog.list_models() if kind == "models" else catalog.list_hardware()
    load = catalog.load_model if kind == "models" else catalog.load_hardware
    specs = [load(name) for name in names]
    if as_json:
        click.echo(dumps([spec.model_dump(mode="json") for spec in specs]))
    else:
        stdout().print(catalog_table(kind, specs))


@cli.command()
@click.argument("kind", type=click.Choice(["model", "hardware"]))
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@reports_errors
def show(kind: str, name: str, as_json: bool) -> None:
    """Show one model (parameter count, derived sizes, source) or one device."""
    from perfest.export import dumps
    from perfest.render.catalog import show_hardware, show_model

    if kind == "model":
        spec = catalog.load_model(name)
        if as_json:
            from perfest.parameters import (
                active_parameters,
                count_parameters,
                kv_cache_bytes_per_token,
                parameter_breakdown,
                weight_bytes_by_dtype,
            )

            data = spec.model_dump(mode="json")
            data.update(
                parameters=count_parameters(spec),
                parameter_breakdown=parameter_breakdown(spec),
                head_dim=spec.d,
                num_kv_heads=spec.n_kv,
                weight_bytes=weight_bytes_by_dtype(spec),
                kv_cache_bytes_per_token=kv_cache_bytes_per_token(spec),
            )
            data["active_parameters"] = active_parameters(spec)  # per token (k of E experts)
            click.echo(dumps(data))
        else:
            show_model(spec, stdout())
    else:
        spec = catalog.load_hardware(name)
        if as_json:
            click.echo(dumps(spec.model_dump(mode="json")))
        else:
            show_hardware(spec, stdout())


def _compare(model: str, gpu: str, axis: str, as_json: bool, as_csv: bool, kwargs) -> None:
    from perfest.compare import compare

    if as_csv:
        fail("--compare, --csv: the comparison prints as a table or --json")
    result = compare(model, gpu, axis, **pick_workload(kwargs))

    def render(console) -> None:
        from perfest.render.estimate import render_comparison

        render_comparison(result, console)

    emit(as_json, False, result.to_dict, lambda: "", render)


def _render_estimate(est, console, layers: bool) -> None:
    from perfest.render.estimate import render_estimate  # rich: only for people

    render_estimate(est, console, layers=layers)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
