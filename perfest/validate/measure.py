"""Honest timing (after gpt-fast): warm-up excluded, the device synchronized on both sides of the
clock, the median of repeats reported; and the facts about this machine that measurements
depend on (its CPU's name, its RAM, its last-level cache).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from perfest.errors import UnsupportedError
from perfest.validate import require_torch


def resolve_device(device: str) -> str:
    """'cpu' or 'cuda' (or 'cuda:N'); a CUDA device where none exists is a one-line error."""
    torch = require_torch()
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UnsupportedError(
                f"--device: {device} requested but this PyTorch sees no CUDA device "
                f"(torch {torch.__version__}; use --device cpu)"
            )
        return device
    raise UnsupportedError(f"--device: '{device}' is not one of cpu, cuda")


def last_level_cache_bytes() -> int:
    """The largest cache of CPU 0 (Linux sysfs; 0 where unknown)."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = path.read_text(encoding="ascii").strip()
            sizes.append(int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text))
        except (OSError, ValueError, IndexError):
            continue
    return max(sizes, default=0)


def _host_memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        require_torch().cuda.synchronize(device)


def time_call(
    fn: Callable[[], object], device: str, repeats: int = 5, warmup: int = 2, best: bool = False
) -> float:
    """Median seconds of `fn()` over `repeats` runs after `warmup` untimed ones (`best`: the
    fastest run instead, for calibrating what a device can achieve)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        samples.append(time.perf_counter() - start)
    return min(samples) if best else statistics.median(samples)


class GroupTimer:
    """Wall time per op group, from forward hooks on the reference's modules.

    Each hook synchronizes the device, so the clock brackets exactly that module's kernels; the
    hooks add a few µs per module, which is why phase totals are measured without them.
    """

    #: reference module class → perfest op group
    GROUPS = {
        "Embedding": "embedding",
        "RMSNorm": "norm",
        "LayerNorm": "norm",
        "Attention": "attention",
        "LatentAttention": "attention",
        "MLP": "mlp",
        "MoE": "mlp",
        "Block": "block",
        # encoders (perfest.validate.reference_encoder)
        "EncoderEmbedding": "embedding",
        "EncoderAttention": "attention",
        "CrossAttention": "attention",
        "EncoderBlock": "block",
        "DecoderBlock": "block",
        "Pooler": "lm_head",
        "MLMHead": "lm_head",
    }

    def __init__(self, net, device: str):
        self.device = device
        self.totals: dict[str, float] = {}
        self._starts: dict[int, float] = {}
        self._handles = []
        for name, module in net.named_modules():
            group = "lm_head" if name == "lm_head" else self.GROUPS.get(type(module).__name__)
            if group == "norm" and name.startswith("blocks."):
                group = "block_norm"  # kept apart to split a block's time; merged in by_group
            if group:
                self._handles.append(module.register_forward_pre_hook(self._start))
                self._handles.append(module.register_forward_hook(self._stop(group)))

    def _start(self, module, args):
        synchronize(self.device)
        self._starts[id(module)] = time.perf_counter()

    def _stop(self, group: str):
        def hook(module, args, output):
            synchronize(self.device)
            elapsed = time.perf_counter() - self._starts.pop(id(module))
            self.totals[group] = self.totals.get(group, 0.0) + elapsed

        return hook

    def by_group(self, split_block_norms: bool = False) -> dict[str, float]:
        """Seconds per group; residual = block time not spent in its norms, attention or MLP.
        `split_block_norms` keeps the blocks' norms apart from the final norm (`block_norm`)."""
        t = self.totals
        out = {k: v for k, v in t.items() if k not in ("block", "block_norm")}
        if split_block_norms:
            out["block_norm"] = t.get("block_norm", 0.0)
        else:
            out["norm"] = t.get("norm", 0.0) + t.get("block_norm", 0.0)
        inside = t.get("attention", 0.0) + t.get("mlp", 0.0) + t.get("block_norm", 0.0)
        if "block" in t:
            out["residual"] = max(0.0, t["block"] - inside)
        return out

    def reset(self) -> None:
        self.totals = {}

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
