"""Optional: prove perfest's predictions against PyTorch (the `perfest[torch]` extra).

    reference   a small, readable PyTorch model built from any ModelConfig (random weights)
    flops       FlopCounterMode on the reference, compared op group by op group with perfest
    measure     honest timing: warm-up excluded, synchronized clocks, median of repeats
    calibrate   what this device achieves (GEMM FLOP/s, copy bandwidth, per-op overhead) → YAML
    run         `perfest validate`: predicted against measured time per phase and op group

Nothing here imports torch at import time: each submodule that needs it calls `require_torch()`,
and the CLI imports them only inside its commands, so `perfest --help` stays fast.
"""

from __future__ import annotations

import importlib

from perfest.errors import MissingExtraError

INSTALL_HINT = "PyTorch is not installed; install the extra: pip install 'perfest[torch]'"
#: The dtypes the PyTorch reference runs in (its quantized kernels are not modelled).
REFERENCE_DTYPES = ("fp32", "tf32", "bf16", "fp16")


def require_torch():
    """Import and return torch, or raise MissingExtraError with the install line."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise MissingExtraError(INSTALL_HINT) from None


__all__ = ["INSTALL_HINT", "REFERENCE_DTYPES", "require_torch"]
