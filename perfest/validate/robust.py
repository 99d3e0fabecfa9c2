"""A calibration that cannot lie: each measurement repeated until it is stable (its spread
reported), physically impossible results refused, and the output location checked before any
measuring starts.

    stable(measure)   samples measure() until the spread (max − min) / median of the samples
                      is within TOLERANCE (at least ROUNDS[0] samples, at most ROUNDS[1]);
                      reports the median and the spread, stable or not
    plausible(...)    a rate above any plausible ceiling for the kind of device, or not a
                      positive finite number, is a one-line UnsupportedError (a clock that
                      jumped, a timer that read zero), never a YAML that validate trusts
    check_output(p)   the YAML can be written at p: checked first, not after a minute of
                      measuring (PERFEST_HOME pointing at a file is named as such); write_spec
                      writes it, default_spec_path is where validate looks for it

Why: one full CPU calibration once wrote 14,340,000,000 GB/s (a negative slope of the GEMV line
fit, clamped to 1e-15 s/B) and an efficiency of 6e-10, which validate then used silently.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from perfest.errors import SpecError, UnsupportedError
from perfest.specs import HardwareSpec

#: Samples per measurement: at least, at most (`quick`: fewer). Five at least: three samples
#: that happen to agree said 0.8 % on a VM whose next run measured 5 % away.
ROUNDS = {"full": (5, 9), "quick": (5, 7)}
#: Samples within this relative spread (max − min over median) count as stable.
TOLERANCE = 0.05

#: The fastest any device of a kind plausibly goes, with a wide margin over the fastest that
#: ship: a two-socket CPU server streams ~1 TB/s (DDR5, 2 × 12 channels; HBM Xeon Max ~1.6
#: TB/s) and reaches a few hundred dense TFLOP/s with AMX; a GPU 8 TB/s (B200) and ~2,250 dense
#: bf16 TFLOP/s. A measurement above these is broken (a clock that jumped, a timer that read
#: zero, a line fit through noise), not fast.
CEILINGS = {
    "cpu": {"bandwidth": 3e12, "flops": 2e15},
    "cuda": {"bandwidth": 30e12, "flops": 50e15},
}


@dataclass(frozen=True, slots=True)
class Reading:
    """A repeated measurement: the median of its samples, their range and how many."""

    value: float
    low: float
    high: float
    rounds: int

    @property
    def spread(self) -> float:
        """(high − low) / value: the relative range of the samples."""
        return (self.high - self.low) / self.value if self.value else math.inf

    @property
    def stable(self) -> bool:
        return self.spread <= TOLERANCE

    def scaled(self, factor: float) -> Reading:
        return Reading(self.value * factor, self.low * factor, self.high * factor, self.rounds)

    def record(self, name: str, digits: int = 4) -> dict[str, float | int]:
        """The YAML `calibration` entries: name, name_low, name_high, name_rounds."""
        return {
            name: _sig(self.value, digits),
            f"{name}_low": _sig(self.low, digits),
            f"{name}_high": _sig(self.high, digits),
            f"{name}_rounds": self.rounds,
        }


def stable(measure: Callable[[], float], quick: bool = False) -> Reading:
    """Repeat `measure()` until its samples agree within TOLERANCE (see the module docstring)."""
    least, most = ROUNDS["quick" if quick else "full"]
    samples: list[float] = []
    while len(samples) < most:
        samples.append(measure())
        if len(samples) >= least:
            middle = statistics.median(samples)
            if middle > 0 and (max(samples) - min(samples)) / middle <= TOLERANCE:
                break
    return Reading(statistics.median(samples), min(samples), max(samples), len(samples))


def plausible(what: str, value: float, kind: str, ceiling: str) -> float:
    """`value` (a rate in SI units) if it is positive, finite and below the device kind's
    ceiling (`ceiling`: "bandwidth" in byte/s or "flops" in FLOP/s); else UnsupportedError."""
    limit = CEILINGS[kind][ceiling]
    unit, scale = ("GB/s", 1e9) if ceiling == "bandwidth" else ("TFLOP/s", 1e12)
    if not math.isfinite(value) or value <= 0:
        raise UnsupportedError(
            f"calibration: {what} measured {value:g} {unit}, which is impossible; the clock "
            "or the machine was unreliable, run calibrate again"
        )
    if value > limit:
        raise UnsupportedError(
            f"calibration: {what} measured {value / scale:,.4g} {unit}, above any plausible "
            f"{kind} ({limit / scale:,.0f} {unit}); the clock or the machine was unreliable, "
            "run calibrate again"
        )
    return value


def fraction(what: str, value: float) -> float:
    """An efficiency must lie in (0, 1]: else the calibration is refused (UnsupportedError)."""
    if not (math.isfinite(value) and 0 < value <= 1):
        raise UnsupportedError(
            f"calibration: {what} came out as {value:g}, outside (0, 1]; the measurement was "
            "unreliable, run calibrate again"
        )
    return value


def check_output(path: Path, option: str = "--output") -> Path:
    """Make sure a spec can be written at `path` (its folder created), before measuring.
    `option` names where the path came from in errors (--output, PERFEST_HOME, …)."""
    path = Path(path).expanduser()
    folder = path.parent
    try:
        if path.is_dir():
            raise SpecError(f"{option}: {path} is a folder; give a file name ending in .yaml")
        if path.exists() and not path.is_file():
            raise SpecError(f"{option}: {path} exists and is not a regular file")
        for parent in (folder, *folder.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise SpecError(f"{option}: {parent} is a file, not a folder")
                break
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(f"{option}: cannot create {folder} ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK):
        raise SpecError(f"{option}: {folder} is not writable")
    return path


def write_spec(spec: HardwareSpec, path: str | Path) -> Path:
    """Write `spec` as a hardware YAML that `estimate`, `sweep` and `validate` accept."""
    path = check_output(Path(path))
    cal = spec.calibration or {}
    header = (
        f"# {spec.label}: measured by `perfest calibrate` on {cal.get('host', '?')} at "
        f"{cal.get('measured_at', '?')} (torch {cal.get('torch', '?')}).\n"
        "# Peaks: best measured rates; efficiencies: measured fractions of them for\n"
        "# inference-shaped kernels (see perfest/validate/calibrate.py).\n"
    )
    data = spec.model_dump(mode="json", exclude_defaults=True)
    data.update(
        compute_efficiency=spec.compute_efficiency, memory_efficiency=spec.memory_efficiency
    )
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def default_spec_path(device: str) -> Path:
    """Where `validate` keeps the local device's calibration: $PERFEST_HOME, else the user
    cache ($XDG_CACHE_HOME or ~/.cache)/perfest."""
    home = os.environ.get("PERFEST_HOME")
    if home:
        root = Path(home)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "perfest"
    return root.expanduser() / f"calibrated-{device.replace(':', '')}.yaml"


def spec_origin() -> str:
    """What chose default_spec_path's folder, to name it in an error."""
    if os.environ.get("PERFEST_HOME"):
        return "PERFEST_HOME"
    return "XDG_CACHE_HOME" if os.environ.get("XDG_CACHE_HOME") else "~/.cache"


def check_default_spec_path(device: str) -> Path:
    """default_spec_path(device), checked writable before anything is measured."""
    return check_output(default_spec_path(device), spec_origin())


def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")
