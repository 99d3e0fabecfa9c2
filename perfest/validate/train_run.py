"""`perfest validate --train`: a measured training step of the PyTorch reference against perfest.

One device, one micro-batch (b sequences of s tokens), in the reference's dtype:

    forward     logits over every position and the cross-entropy loss (an encoder: its
                masked-LM head over every position, as perfest trains it)
    backward    loss.backward()
    optimizer   gradient-norm clipping (torch.nn.utils.clip_grad_norm_), the update
                (torch.optim's fused implementation where the device has one: one kernel, as
                perfest assumes) and zeroing the gradients in place (set_to_none=False: a
                gradient buffer that the next step accumulates into, as perfest models it)

Each phase is timed separately within the same steps (the device synchronized around each),
the median of `repeats` steps after `warmup` untimed ones.
    error % = (predicted − measured) / measured · 100
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from perfest.catalog import load_hardware, load_model
from perfest.errors import UnsupportedError
from perfest.specs import HardwareSpec, ModelConfig
from perfest.training.estimate import estimate_training
from perfest.validate import require_torch
from perfest.validate.measure import resolve_device, synchronize
from perfest.validate.run import default_hardware, error_pct

Progress = Callable[[str], None]
PHASES = ("forward", "backward", "optimizer")


@dataclass(frozen=True)
class TrainPhaseCheck:
    phase: str
    predicted_s: float
    measured_s: float
    error_pct: float


@dataclass(frozen=True)
class TrainValidation:
    model: str
    hardware: str
    device: str
    torch: str
    batch: int
    seq_len: int
    dtype: str
    optimizer: str
    attention: str
    phases: tuple[TrainPhaseCheck, ...]  # forward, backward, optimizer, step
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return asdict(self)


def _optimizer(torch, params, name: str, device: str):
    """torch.optim's optimizer for perfest's name, fused where torch has it for the device."""
    optim = torch.optim
    table = {
        "sgd": (optim.SGD, {"lr": 1e-3}),
        "momentum": (optim.SGD, {"lr": 1e-3, "momentum": 0.9}),
        "rmsprop": (optim.RMSprop, {"lr": 1e-3}),
        "adam": (optim.Adam, {"lr": 1e-3}),
        "adamw": (optim.AdamW, {"lr": 1e-3}),
    }
    if name not in table:
        raise UnsupportedError(
            f"optimizer: torch.optim has no {name}; use one of {', '.join(table)}"
        )
    cls, kw = table[name]
    try:
        return cls(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or optimizer
        return cls(params, foreach=True, **kw)


def measure_step(net, b: int, s: int, optimizer: str, device: str, repeats: int, warmup: int):
    """Median seconds of forward, backward and optimizer over `repeats` training steps."""
    torch = require_torch()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = _optimizer(torch, params, optimizer, device)
    ids = torch.randint(0, net.config.V, (b, s), device=device)
    encoder = net.config.architecture == "encoder"
    samples: dict[str, list[float]] = {phase: [] for phase in PHASES}
    for step in range(warmup + repeats):
        synchronize(device)
        t0 = time.perf_counter()
        logits = net(ids) if encoder else net(ids, None, logits="all")
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten())
        synchronize(device)
        t1 = time.perf_counter()
        loss.backward()
        synchronize(device)
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=False)
        synchronize(device)
        t3 = time.perf_counter()
        if step >= warmup:
            for phase, seconds in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                samples[phase].append(seconds)
    return {phase: statistics.median(values) for phase, values in samples.items()}


def validate_training(
    model: str | ModelConfig,
    hardware: str | HardwareSpec | None = None,
    device: str = "cpu",
    *,
    batch: int = 1,
    seq_len: int = 128,
    dtype: str | None = None,
    optimizer: str = "adamw",
    attention: str = "flash",
    repeats: int = 5,
    warmup: int = 2,
    progress: Progress | None = None,
) -> TrainValidation:
    """Time a training step of the reference of `model` on `device` and compare each phase
    with perfest's prediction on `hardware` (default: the device's calibrated spec)."""
    torch = require_torch()

    say = progress or (lambda _msg: None)
    m = load_model(model)
    device = resolve_device(device)
    dtype = dtype or ("fp32" if device == "cpu" else "bf16")
    hw = load_hardware(hardware) if hardware is not None else default_hardware(device, say)
    est = estimate_training(m, hw, gpus=1, global_batch=batch, micro_batch=batch,
                            seq_len=seq_len, dtype=dtype, optimizer=optimizer,
                            attention=attention)  # fmt: skip
    say(f"building the reference ({dtype}, {device})")
    net = _reference(m, dtype, device, attention).train().requires_grad_(True)
    say("training steps")
    measured = measure_step(net, batch, seq_len, optimizer, device, repeats, warmup)
    predicted = {p.phase: p.time_s for p in est.phases}
    predicted["step"], measured["step"] = est.step_time_s, sum(measured.values())
    checks = tuple(
        TrainPhaseCheck(p, predicted[p], measured[p], error_pct(predicted[p], measured[p]))
        for p in (*PHASES, "step")
    )
    return TrainValidation(m.name, hw.name, device, torch.__version__, batch, seq_len, dtype,
                           optimizer, attention, checks)  # fmt: skip


def _reference(m: ModelConfig, dtype: str, device: str, attention: str):
    """The decoder reference, or an encoder's with its masked-LM head (no pooler)."""
    if m.architecture == "encoder":
        from perfest.validate.reference_encoder import build_encoder_reference

        return build_encoder_reference(m, dtype, device, attention=attention, head="mlm")
    from perfest.validate.reference import build_reference

    return build_reference(m, dtype, device, attention=attention)
