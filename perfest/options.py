"""Options, error handling and output helpers shared by every `perfest` command.

Command modules import from here (never from perfest.cli, which imports them).
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import click

from perfest.errors import PerfestError, SpecError
from perfest.specs import DTYPES as DTYPE_NAMES
from perfest.specs import WORKLOAD_FIELDS
from perfest.validate import REFERENCE_DTYPES

DTYPES = click.Choice(DTYPE_NAMES)


if TYPE_CHECKING:
    from rich.console import Console


def stdout() -> Console:
    """Rich console; when piped, wide enough that tables do not wrap (rich assumes 80). rich is
    imported here, not at start-up: `--json` and `--csv` never need it."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def json_indent() -> int | None:
    """Indented JSON for a person at a terminal, compact JSON for a script (the C encoder
    writes a 100,000-point sweep several times faster without indentation)."""
    return 2 if sys.stdout.isatty() else None


def fail(message: str) -> None:
    """One line on stderr (whatever the message holds) and exit code 2."""
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(2)


#: The library's argument names whose CLI option is not `--` + the name with dashes.
_FLAGS = {
    "model": "--model",
    "hardware": "--gpu",
    "batches": "--batch",
    "input_lens": "--input-len",
    "output_lens": "--output-len",
    "compare": "--compare",
    "phase": "--phase",
    "op": "--op",
}


def option_names(message: str) -> str:
    """'input_len: …' → '--input-len: …', so messages name the option the user typed."""
    match = re.match(r"(\w+):", message)
    if match and match.group(1) in _FLAGS:
        return _FLAGS[match.group(1)] + message[match.end(1) :]
    if match and match.group(1) in WORKLOAD_FIELDS:
        return "--" + match.group(1).replace("_", "-") + message[match.end(1) :]
    return message


def reports_errors(fn: Callable) -> Callable:
    """Turn library errors into one line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (SpecError, PerfestError) as exc:
            fail(option_names(str(exc)))

    return wrapper


def model_option(fn: Callable) -> Callable:
    return click.option(
        "--model",
        "-m",
        required=True,
        help="Catalog id, model YAML file, or Hugging Face config.json (or its folder).",
    )(fn)


def gpu_option(
    fn: Callable | None = None, *, many: bool = False, required: bool = True
) -> Callable:
    """--gpu; many=True: a comma-separated list of devices to compare (sweep); required=False:
    optional, the command falls back to the local device's calibrated spec (validate)."""
    if fn is None:
        return functools.partial(gpu_option, many=many, required=required)
    if many:
        text = "Catalog ids or hardware YAML files, comma-separated: a100,h100."
    elif required:
        text = "Catalog id or hardware YAML file (e.g. from calibrate)."
    else:
        text = "Catalog id or hardware YAML for the prediction [the device's calibrated spec]."
    return click.option("--gpu", "--hardware", "-g", "gpu", required=required, help=text)(fn)


def workload_options(
    fn: Callable | None = None, *, ranges: bool = False, reference: bool = False
) -> Callable:
    """The workload options shared by estimate, sweep, roofline and validate. With ranges=True
    (sweep), --batch, --input-len and --output-len take lists and ranges as text. With
    reference=True (validate), only what the PyTorch reference runs: its float dtypes (the
    default depends on the device), one device, weights and KV cache in --dtype."""
    if fn is None:
        return functools.partial(workload_options, ranges=ranges, reference=reference)
    size = click.STRING if ranges else int
    axis = " List or range: 1,2,4 · 1:1024:x2 (geometric) · 1:64:+8 (arithmetic)." if ranges else ""
    options = [
        click.option("--batch", "-b", type=size, default=None, help=f"Sequences [1].{axis}"),
        click.option(
            "--input-len", "-i", type=size, default=None, help=f"Prompt tokens [512].{axis}"
        ),
        # no -o: commands that write a file (roofline, calibrate) use -o for it
        click.option(
            "--output-len", type=size, default=None, help=f"Generated tokens [128].{axis}"
        ),
        click.option(
            "--dtype",
            type=click.Choice(REFERENCE_DTYPES) if reference else DTYPES,
            default=None,
            help="Dtype the reference runs in [fp32 on cpu, bf16 on cuda]."
            if reference
            else "Activation and matmul compute dtype [bf16].",
        ),
        click.option(
            "--weight-dtype",
            type=DTYPES,
            default=None,
            help="Weight storage dtype; int4/int8 = weight-only quantization [=dtype].",
        ),
        click.option("--kv-dtype", type=DTYPES, default=None, help="KV-cache dtype [=dtype]."),
        click.option("--tp", type=int, default=None, help="Tensor-parallel degree [1]."),
        click.option(
            "--logits",
            type=click.Choice(["last", "all"]),
            default=None,
            help="Prefill LM head over the last position (serving) or all [last].",
        ),
        click.option(
            "--attention",
            type=click.Choice(["flash", "eager"]),
            default=None,
            help="Fused flash attention or eager (scores through memory) [flash].",
        ),
        click.option(
            "--fusion",
            type=click.Choice(["none", "default", "full"]),
            default=None,
            help="Element-wise fusion: none (eager PyTorch), default (serving kernels), full "
            "(fused into the matmuls, as a compiler can) [default].",
        ),
        click.option(
            "--compute-efficiency",
            type=float,
            default=None,
            help="Override the device's achievable fraction of peak FLOP/s.",
        ),
        click.option(
            "--memory-efficiency",
            type=float,
            default=None,
            help="Override the device's achievable fraction of peak bandwidth.",
        ),
        # mixtures of experts and latent attention (README, "MoE and attention variants")
        click.option("--ep", type=int, default=None, help="Expert-parallel degree [1]."),
        click.option(
            "--dp-attention",
            is_flag=True,
            default=None,
            help="Attention data-parallel over ep/tp groups, all-to-all to the experts.",
        ),
        click.option(
            "--experts-touched",
            type=float,
            default=None,
            help="Experts a decode step touches per MoE layer [E·(1 − (1 − k/E)^b)].",
        ),
        click.option(
            "--mla",
            type=click.Choice(["auto", "naive", "absorbed"]),
            default=None,
            help="Latent attention form [auto: naive prefill, absorbed decode].",
        ),
        # encoders (README, "Encoders and encoder-decoders")
        click.option(
            "--head",
            type=click.Choice(["pooler", "mlm", "none"]),
            default=None,
            help="An encoder's head: pooler (first token), mlm (every position), none "
            "[the model's].",
        ),
    ]
    if reference:  # one device, everything stored in --dtype
        dropped = ("--weight-dtype", "--kv-dtype", "--tp")
        options = [o for o in options if _option_name(o) not in dropped]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _option_name(option: Callable) -> str:
    """The long name of a click.option decorator (applied to a throwaway function)."""
    probe = option(lambda: None)
    return probe.__click_params__[0].opts[0]


def output_options(fn: Callable) -> Callable:
    """--json and --csv, one or the other (refused together before any work)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if kwargs.get("as_json") and kwargs.get("as_csv"):
            fail("--json, --csv: choose one output form")
        return fn(*args, **kwargs)

    csv_help = "Print CSV rows (not with --json)."
    wrapper = click.option("--csv", "as_csv", is_flag=True, help=csv_help)(wrapper)
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the result as JSON (not with --csv)."
    )(wrapper)


def memory_failure(est) -> str | None:
    """The memory note of an estimate that does not fit, else None."""
    from perfest.results import NoteKind

    if est.memory.fits:
        return None
    return next(note.text for note in est.warnings if note.kind is NoteKind.MEMORY)


def report_notes(notes: Iterable, memory: str | None = None) -> None:
    """The one warning policy of every command, after its result is out: each note that is not
    about memory is a `warning:` line on stderr; a result that does not fit in memory (`memory`,
    the sentence saying so) is then an `error:` line and exit code 2."""
    from perfest.results import NoteKind

    for note in notes:
        if getattr(note, "kind", None) is not NoteKind.MEMORY:
            click.echo(f"warning: {note}", err=True)
    if memory:
        fail(memory)


def pick_workload(kwargs: dict) -> dict:
    """Split the workload options out of a command's keyword arguments."""
    return {key: kwargs.pop(key) for key in WORKLOAD_FIELDS if key in kwargs}


def emit(
    as_json: bool, as_csv: bool, to_dict: Callable, to_csv: Callable, render: Callable
) -> None:
    """Print a result as JSON, CSV, or rich tables for people (each given as a callable, so only
    the chosen form is built)."""
    if as_json:
        from perfest.export import dumps

        click.echo(dumps(to_dict(), json_indent()))
    elif as_csv:
        click.echo(to_csv(), nl=False)
    else:
        render(stdout())


@contextlib.contextmanager
def progress(
    total: int, label: str, minimum: int = 1, console: Console | None = None
) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr while long work runs, for `total` steps; silent when
    stderr is not a terminal (piped, CI) or the work is shorter than `minimum` steps.

    Yields `advance(message=None, done=None)`: one step more, or `done` steps in all."""
    if console is None:
        if total < minimum or not sys.stderr.isatty():
            yield lambda message=None, done=None: None
            return
        from rich.console import Console

        console = Console(stderr=True)
    if total < minimum or not console.is_terminal:
        yield lambda message=None, done=None: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)

        def advance(message: str | None = None, done: int | None = None) -> None:
            if done is None:
                bar.update(task, advance=1, description=message or label)
            else:
                bar.update(task, completed=done, description=message or label)

        yield advance
