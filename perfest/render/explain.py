"""`perfest explain` for people: each op's formulas, numbers, bytes by operand, intensity and
bound, as terminal text (rich) or as a Markdown handout (`--markdown`)."""

from __future__ import annotations

from rich.console import Console

from perfest.explain import Explanation, OpExplanation, PhaseExplanation
from perfest.render import bound_style, seconds, si


def render_explanation(e: Explanation, console: Console) -> None:
    """Terminal text: a block per op."""
    console.print(f"[bold]{e.model}[/] on [bold]{e.hardware}[/] · {_workload(e)}")
    console.print("A FLOP is one multiply or one add (a multiply-accumulate is 2 FLOPs).")
    console.print("symbols: " + ", ".join(f"{n} = {_num(v)}" for n, v, _ in e.symbols))
    for phase in e.phases:
        console.print()
        console.print(f"[bold underline]{phase.phase}[/] at {_point(phase)}")
        for op in phase.ops:
            for line in _op_lines(op, markup=True):
                console.print(line, highlight=False, soft_wrap=True)
        for line in _total_lines(phase):
            console.print(line, highlight=False, soft_wrap=True)


def markdown(e: Explanation) -> str:
    """A Markdown document a teacher could hand out."""
    out = [
        f"# How {e.model} runs on {e.hardware}",
        "",
        f"Workload: {_workload(e)}. A FLOP is one multiply or one add (a multiply-accumulate "
        "is 2 FLOPs); bytes are what each kernel moves to and from device memory.",
        "",
        "| symbol | value | meaning |",
        "|---|---:|---|",
        *(f"| {n} | {_num(v)} | {m} |" for n, v, m in e.symbols),
    ]
    for phase in e.phases:
        out += ["", f"## {phase.phase} at {_point(phase)}", ""]
        for op in phase.ops:
            out += [f"### {op.name} ({op.group}, ×{op.count})", ""]
            out += [f"- {line}" for line in _op_lines(op, markup=False)[1:]]
            out.append("")
        out += ["### Totals", ""]
        out += [f"- {line}" for line in _total_lines(phase)]
    return "\n".join(out) + "\n"


def _op_lines(op: OpExplanation, markup: bool) -> list[str]:
    code = (lambda x: x) if markup else (lambda x: f"`{x}`")
    head = f"[bold]{op.name}[/] ({op.group}, ×{op.count})" if markup else op.name
    lines = [head]
    lines.append(f"FLOPs = {code(op.flops_formula)} = {code(op.flops_numbers)} = {_num(op.flops)}")
    for x in op.operands:
        numbers = (
            f" = {code(x.elements_numbers)}"
            if x.elements_numbers not in (x.elements_formula, _num(x.elements))
            else ""
        )
        lines.append(
            f"{x.direction} {x.tensor} ({x.role}, {x.dtype}): {code(x.elements_formula)}{numbers}"
            f" = {_num(x.elements)} elements × {x.bytes_per_element:g} B = {si(x.bytes, 'B')}"
        )
    intensity = "—" if op.intensity is None else f"{op.intensity:,.2f} FLOP/B"
    lines.append(
        f"bytes = {si(op.bytes, 'B')}; intensity {intensity} against a ridge point of "
        f"{op.ridge_point:,.0f} FLOP/B"
    )
    bound = bound_style(op.bound.value) if markup else op.bound.value
    per = f" per instance, {seconds(op.time_s)} for all {op.count}" if op.count > 1 else ""
    lines.append(
        f"time = {seconds(op.t_compute_s / op.count)} compute + "
        f"{seconds(op.t_memory_s / op.count)} memory"
        + (f" + {seconds(op.t_comm_s / op.count)} communication" if op.t_comm_s else "")
        + f" + {seconds(op.overhead_s / op.count)} launch = {seconds(op.time_s / op.count)}{per}"
        f" (pure roofline {seconds(op.roofline_time_s / op.count)}); bound: {bound}"
    )
    lines.append(f"why: {op.why}")
    return lines


def _total_lines(p: PhaseExplanation) -> list[str]:
    lines = [
        f"one {x.segment} layer (×{x.count}): {si(x.flops, 'FLOP')}, {si(x.bytes, 'B')}, "
        f"{seconds(x.time_s)}"
        for x in p.layers
    ]
    lines += [
        f"the whole {p.phase}: {si(p.flops, 'FLOP')}, {si(p.bytes, 'B')}, {seconds(p.time_s)}, "
        f"{p.bound.value}-bound",
    ]
    for c in p.closed_forms:
        same = "equal" if abs(c.value - c.perfest) <= 1e-9 * max(1.0, c.value) else "differs"
        lines.append(
            f"{c.name}: {c.formula} = {c.numbers} = {_num(c.value)}; perfest's matmul FLOPs: "
            f"{_num(c.perfest)} ({same})"
        )
    return lines


def _workload(e: Explanation) -> str:
    w = e.workload
    return (
        f"batch {w.batch}, {w.input_len} in / {w.output_len} out, {w.dtype}"
        + (f", weights {w.weight_dtype}" if w.weight_dtype else "")
        + (f", tp {w.tp}" if w.tp > 1 else "")
    )


def _point(p: PhaseExplanation) -> str:
    text = ", ".join(f"{k} = {v}" for k, v in p.point._asdict().items())
    derived = "; ".join(f"{n} = {f} = {_num(v)}" for n, v, f in p.derived)
    return f"{text}; {derived}" if derived else text


def _num(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.4g}"
