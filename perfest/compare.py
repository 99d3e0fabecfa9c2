"""What-ifs side by side: the same workload under each fusion level, or each attention kernel.

    perfest estimate … --compare fusion      none | default | full
    perfest estimate … --compare attention   eager | flash

For every phase and op group (embedding, norm, attention, MLP, residual, LM head, …): the
bytes moved, the intensity (FLOP/B) and the predicted time under each variant, so a reader
sees fusion raise the intensity and the memory-bound ops shrink. The products' FLOPs do not
change between variants; only what reaches memory and how many kernels launch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perfest.catalog import load_hardware, load_model
from perfest.errors import SpecError
from perfest.inference import estimate, for_model, make_workload
from perfest.results import Estimate
from perfest.specs import HardwareSpec, ModelConfig, Workload

#: axis → the workload field it varies and its values, in the order they are shown
AXES = {
    "fusion": ("fusion", ("none", "default", "full")),
    "attention": ("attention", ("eager", "flash")),
}


@dataclass(frozen=True, slots=True)
class GroupCosts:
    """One op group of one phase under each variant (tuples in the order of the variants)."""

    phase: str
    group: str
    flops: tuple[float, ...]
    bytes: tuple[float, ...]
    time_s: tuple[float, ...]
    kernels: tuple[int, ...]

    @property
    def intensity(self) -> tuple[float | None, ...]:
        return tuple(f / b if b else None for f, b in zip(self.flops, self.bytes, strict=True))


@dataclass(frozen=True, slots=True)
class Comparison:
    model: str
    hardware: str
    axis: str
    variants: tuple[str, ...]
    estimates: tuple[Estimate, ...]
    groups: tuple[GroupCosts, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "hardware": self.hardware,
            "axis": self.axis,
            "variants": list(self.variants),
            "groups": [
                {
                    "phase": g.phase,
                    "group": g.group,
                    "flops": list(g.flops),
                    "bytes": list(g.bytes),
                    "intensity": list(g.intensity),
                    "time_s": list(g.time_s),
                    "kernels": list(g.kernels),
                }  # fmt: skip
                for g in self.groups
            ],
            "estimates": {
                v: e.to_dict() for v, e in zip(self.variants, self.estimates, strict=True)
            },
        }


def compare(
    model: str | ModelConfig,
    hardware: str | HardwareSpec,
    axis: str,
    workload: Workload | None = None,
    **fields: Any,
) -> Comparison:
    """Estimate `model` on `hardware` under every value of `axis` (fusion, attention)."""
    if axis not in AXES:
        raise SpecError(f"compare: unknown axis '{axis}' (choose from {', '.join(AXES)})")
    field, variants = AXES[axis]
    m, hw = load_model(model), load_hardware(hardware)
    base = for_model(m, make_workload(workload, **{k: v for k, v in fields.items() if k != field}))
    ests = tuple(estimate(m, hw, base.model_copy(update={field: v})) for v in variants)
    return Comparison(m.name, hw.name, axis, variants, ests, _groups(ests))


def _groups(ests: tuple[Estimate, ...]) -> tuple[GroupCosts, ...]:
    rows = []
    for index, phase in enumerate(ests[0].phases):
        per_variant = []
        for est in ests:
            sums: dict[str, list[float]] = {}
            for row in est.phases[index].rows:
                acc = sums.setdefault(row.op.group.value, [0.0, 0.0, 0.0, 0])
                acc[0] += row.flops
                acc[1] += row.bytes
                acc[2] += row.time
                acc[3] += row.op.kernels * row.count
            per_variant.append(sums)
        for group in dict.fromkeys(g for sums in per_variant for g in sums):
            values = [sums.get(group, [0.0, 0.0, 0.0, 0]) for sums in per_variant]
            rows.append(
                GroupCosts(
                    phase.phase,
                    group,
                    tuple(v[0] for v in values),
                    tuple(v[1] for v in values),
                    tuple(v[2] for v in values),
                    tuple(int(v[3]) for v in values),
                )
            )
    return tuple(rows)
