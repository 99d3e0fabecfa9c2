"""perfest: analytical performance estimates for transformer workloads.

    >>> import perfest
    >>> est = perfest.estimate("llama-2-7b", "a100-80gb-sxm", batch=8, input_len=512)
    >>> est.generation.tpot_s, est.decode.bound

A FLOP is one multiply or one add (a multiply-accumulate is 2 FLOPs); GB is 10⁹ bytes.
"""

from perfest.catalog import list_hardware, list_models, load_hardware, load_model
from perfest.errors import PerfestError
from perfest.estimate import estimate
from perfest.parameters import count_parameters
from perfest.results import Estimate
from perfest.specs import HardwareSpec, ModelConfig, Workload
from perfest.sweep import SweepResult, sweep

__version__ = "0.1.0"

__all__ = [
    "Estimate",
    "HardwareSpec",
    "ModelConfig",
    "PerfestError",
    "SweepResult",
    "Workload",
    "count_parameters",
    "estimate",
    "list_hardware",
    "list_models",
    "load_hardware",
    "load_model",
    "sweep",
]
