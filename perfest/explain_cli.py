"""`perfest explain`: parse options, call `perfest.explain.explain`, render it as terminal text,
Markdown or JSON."""

from __future__ import annotations

import click

from perfest.options import (
    fail,
    gpu_option,
    json_indent,
    model_option,
    pick_workload,
    reports_errors,
    stdout,
    workload_options,
)


@click.command()
@model_option
@gpu_option
@workload_options
@click.option(
    "--phase",
    default=None,
    help="Explain one phase: prefill, decode, encode (an encoder's or encoder-decoder's), or "
    "train (one micro-batch's forward and backward: --batch is the micro-batch, --input-len "
    "the sequence) [every inference phase of the model].",
)
@click.option("--op", default=None, help="Explain one op, by name (e.g. mlp_up) [every op].")
@click.option("--markdown", is_flag=True, help="Print a Markdown document (a handout).")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@reports_errors
def explain(
    model: str,
    gpu: str,
    phase: str | None,
    op: str | None,
    markdown: bool,
    as_json: bool,
    **kwargs,
) -> None:
    """Explain every op of a pass: its FLOPs and bytes as formulas and as numbers, its intensity
    against the ridge point, its time and bound, and why."""
    from perfest.explain import explain as run

    if markdown and as_json:
        fail("--markdown, --json: choose one output")
    result = run(model, gpu, phase=phase, op=op, **pick_workload(kwargs))
    if as_json:
        from perfest.export import dumps

        click.echo(dumps(result.to_dict(), json_indent()))
    elif markdown:
        from perfest.render.explain import markdown as to_markdown

        click.echo(to_markdown(result), nl=False)
    else:
        from perfest.render.explain import render_explanation

        render_explanation(result, stdout())
