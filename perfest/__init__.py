"""perfest: analytical performance estimates for transformer workloads.

    >>> import perfest
    >>> est = perfest.estimate("llama-2-7b", "a100-80gb-sxm", batch=8, input_len=512)
    >>> est.generation.tpot_s, est.decode.bound

A FLOP is one multiply or one add (a multiply-accumulate is 2 FLOPs); GB is 10⁹ bytes.

The public names are imported on first use (PEP 562), so that `perfest estimate` loads only
the modules it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name → the module that defines it
_EXPORTS = {
    "Estimate": "perfest.results",
    "HardwareSpec": "perfest.specs",
    "ModelConfig": "perfest.specs",
    "PerfestError": "perfest.errors",
    "SweepResult": "perfest.sweeps",
    "TrainConfig": "perfest.training.config",
    "TrainingEstimate": "perfest.training.results",
    "Workload": "perfest.specs",
    "count_parameters": "perfest.parameters",
    "estimate": "perfest.inference",
    "explain": "perfest.explain",
    "estimate_training": "perfest.training.estimate",
    "list_hardware": "perfest.catalog",
    "list_models": "perfest.catalog",
    "load_hardware": "perfest.catalog",
    "load_model": "perfest.catalog",
    "sweep": "perfest.sweeps",
}

__all__ = [
    "Estimate",
    "HardwareSpec",
    "ModelConfig",
    "PerfestError",
    "SweepResult",
    "TrainConfig",
    "TrainingEstimate",
    "Workload",
    "count_parameters",
    "estimate",
    "explain",
    "estimate_training",
    "list_hardware",
    "list_models",
    "load_hardware",
    "load_model",
    "sweep",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'perfest' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:
    from perfest.catalog import list_hardware, list_models, load_hardware, load_model
    from perfest.errors import PerfestError
    from perfest.explain import explain
    from perfest.inference import estimate
    from perfest.parameters import count_parameters
    from perfest.results import Estimate
    from perfest.specs import HardwareSpec, ModelConfig, Workload
    from perfest.sweeps import SweepResult, sweep
    from perfest.training.config import TrainConfig
    from perfest.training.estimate import estimate_training
    from perfest.training.results import TrainingEstimate
