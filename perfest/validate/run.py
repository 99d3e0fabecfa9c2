"""`perfest validate`: perfest's prediction against a measured PyTorch run of the same model.

    error % = (predicted − measured) / measured · 100       (positive: perfest too slow)

Prefill runs the prompt (s = t = input_len) into an empty KV cache; decode is the step perfest
reports (s = 1 at t = input_len + max(1, output_len // 2)), with the cache already holding
t − 1 (random) keys. A model too large for the device is timed on its first k blocks and
scaled: T = T_k + (L − k)/k · T_blocks,k, with the blocks' share of T_k from the per-group run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

from perfest.catalog import load_hardware, load_model
from perfest.errors import SpecError, UnsupportedError
from perfest.graph import build_graph
from perfest.inference import decode_context, estimate, for_model, make_workload, prefill_point
from perfest.layers import Ctx
from perfest.memory import activation_bytes_per_sequence
from perfest.parameters import block_params, count_parameters
from perfest.specs import DTYPE_BYTES, HardwareSpec, ModelConfig, Workload
from perfest.validate import require_torch
from perfest.validate.measure import GroupTimer, resolve_device, synchronize, time_call

Progress = Callable[[str], None]
#: Groups whose time grows with the number of blocks (scaled by L/k when k < L).
BLOCK_GROUPS = ("attention", "mlp", "residual", "block_norm")


@dataclass(frozen=True)
class GroupCheck:
    group: str
    predicted_s: float
    measured_s: float
    error_pct: float


@dataclass(frozen=True)
class PhaseCheck:
    phase: str
    mode: str  # eager | compiled
    fusion: str  # the fusion level predicted: none for eager, full for compiled (unless given)
    predicted_s: float
    measured_s: float
    error_pct: float
    flops: float  # perfest's count for the full model
    bytes: float
    achieved_flops_s: float
    achieved_bytes_s: float
    groups: tuple[GroupCheck, ...] = ()


@dataclass(frozen=True)
class Validation:
    model: str
    hardware: str
    device: str
    torch: str
    workload: dict
    layers_timed: int
    layers_total: int
    peak_flops_s: float
    peak_bytes_s: float
    phases: tuple[PhaseCheck, ...]
    flops_match: bool
    notes: tuple[str, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())  # e.g. a phase faster than the spec's peak

    def to_dict(self) -> dict:
        return asdict(self)


def error_pct(predicted: float, measured: float) -> float:
    return (predicted - measured) / measured * 100.0


def bytes_needed(model: ModelConfig, w: Workload, layers: int) -> float:
    """Memory of the reference timed on `layers` blocks: weights, KV cache, live activations."""
    params = count_parameters(model) - (model.L - layers) * block_params(model)
    ctx = Ctx.of(model, w)
    kv = build_graph(ctx).kv_bytes_per_token() * decode_context(w) * layers / model.L
    act = activation_bytes_per_sequence(ctx, prefill_point(w), act=4.0)  # fp32 upper bound
    return params * DTYPE_BYTES[w.dtype] + w.batch * (kv + act)


def available_bytes(device: str) -> float:
    """Free memory the run may use: 80 % of the host's available RAM, 90 % of free GPU memory."""
    torch = require_torch()
    if device.startswith("cuda"):
        return torch.cuda.mem_get_info(device)[0] * 0.9
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 * 0.8
    except OSError:
        pass
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") * 0.8


def layers_that_fit(model: ModelConfig, w: Workload, device: str, layers: int | None) -> int:
    """The most blocks (≤ `layers`, ≤ L) whose run fits; one-line error if not even one does."""
    free = available_bytes(device)
    k = min(layers or model.L, model.L)
    while k > 1 and bytes_needed(model, w, k) > free:
        k -= 1
    if bytes_needed(model, w, k) > free:
        need = bytes_needed(model, w, 1)
        raise UnsupportedError(
            f"memory: {model.name} at batch {w.batch}, input {w.input_len} needs "
            f"{need / 1e9:.1f} GB with even one block, but {device} has {free / 1e9:.1f} GB free"
        )
    return k


def check_workload(w: Workload) -> None:
    """What the reference cannot run: tensor parallelism, separate weight/KV dtypes."""
    if w.tp != 1:
        raise UnsupportedError("--tp: the reference runs on one device (use --tp 1)")
    if w.ep != 1 or w.dp_attention:
        raise UnsupportedError("--ep: the reference runs on one device (use --ep 1)")
    for name in ("weight_dtype", "kv_dtype"):
        value = getattr(w, name)
        if value not in (None, w.dtype):
            raise UnsupportedError(f"{name}: the reference stores everything in --dtype")


def default_hardware(device: str, progress: Progress) -> HardwareSpec:
    """The local device's calibrated spec, calibrating it the first time (about 25 s; where it
    will be written is checked before)."""
    from perfest.validate.calibrate import (
        calibrate,
        check_default_spec_path,
        default_spec_path,
        write_spec,
    )

    path = default_spec_path(device)
    if not path.exists():
        path = check_default_spec_path(device)
        progress(f"calibrating {device} (first run, about 25 s; saved to {path})")
        spec, _ = calibrate(device)
        write_spec(spec, path)
    return load_hardware(path)


def above_peak(phases: tuple[PhaseCheck, ...], hw: HardwareSpec, dtype: str) -> tuple[str, ...]:
    """A measured phase that moved more bytes per second than the spec's bandwidth, or did more
    FLOP/s than its peak, proves the spec wrong (a calibration that under-measured): say so."""
    out = []
    for p in phases:
        for what, achieved, peak, field_ in (
            ("bandwidth", p.achieved_bytes_s, hw.memory_bandwidth, "memory_bandwidth_gb_s"),
            ("FLOP/s", p.achieved_flops_s, hw.peak_flops(dtype), f"{dtype} peak"),
        ):
            if achieved > peak:
                out.append(
                    f"{p.phase} ({p.mode}) measured {achieved / peak:.0%} of {hw.name}'s peak "
                    f"{what}: the spec's {field_} is below what this machine did; recalibrate "
                    "(perfest calibrate) or check the spec"
                )
    return tuple(out)


def _compile(module):
    """torch.compile, with the recompile limit raised: the reference's KV-cache length changes
    between passes, and the default limit (8) floods stderr with warnings, then stops compiling."""
    torch = require_torch()
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), 256))
    return torch.compile(module)


def _phase_inputs(net, w: Workload, phase: str, device: str):
    """A callable running one prefill or decode pass, and its (s, t)."""
    torch = require_torch()
    t = decode_context(w)
    cache = net.new_cache(w.batch, max(t, w.input_len))
    s, past, logits = (w.input_len, 0, w.logits) if phase == "prefill" else (1, t - 1, "last")
    ids = torch.randint(0, net.config.V, (w.batch, s), device=device)

    def run_pass(module=net):
        cache.length = past
        with torch.no_grad():
            return module(ids, cache, logits=logits)

    return run_pass


def measure_groups(net, run_pass, device: str, repeats: int) -> dict[str, float]:
    """Median seconds per op group over `repeats` instrumented passes (k blocks)."""
    import statistics

    timer = GroupTimer(net, device)
    samples: dict[str, list[float]] = {}
    try:
        run_pass()  # warm-up
        for _ in range(repeats):
            timer.reset()
            run_pass()
            synchronize(device)
            for group, seconds in timer.by_group(split_block_norms=True).items():
                samples.setdefault(group, []).append(seconds)
    finally:
        timer.close()
    return {group: statistics.median(values) for group, values in samples.items()}


def scale_to_model(total_k: float, groups: dict[str, float], k: int, L: int) -> tuple:
    """Phase time and group times of L blocks from a run of k (identical) blocks."""
    if k == L:
        merged = dict(groups)
    else:
        merged = {g: v * (L / k if g in BLOCK_GROUPS else 1.0) for g, v in groups.items()}
        blocks = sum(groups.get(g, 0.0) for g in BLOCK_GROUPS)
        share = blocks / sum(groups.values()) if groups else 0.0
        total_k = total_k + (L - k) / k * share * total_k
    merged["norm"] = merged.get("norm", 0.0) + merged.pop("block_norm", 0.0)
    return total_k, merged


def _predicted_groups(phase_estimate) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in phase_estimate.layers:
        out[row.group] = out.get(row.group, 0.0) + row.time_s
    return out


def validate(
    model: str | ModelConfig,
    hardware: str | HardwareSpec | None = None,
    device: str = "cpu",
    workload: Workload | None = None,
    *,
    compile: bool = False,
    layers: int | None = None,
    repeats: int = 5,
    warmup: int = 2,
    progress: Progress | None = None,
    **fields,
) -> Validation:
    """Time prefill and a decode step of the reference model on `device` and compare with
    perfest's prediction on `hardware` (default: the device's calibrated spec)."""
    torch = require_torch()
    from perfest.validate.flops import check_flops
    from perfest.validate.reference import build_reference, torch_dtype

    say = progress or (lambda _msg: None)
    m = load_model(model)
    if layers is not None and (type(layers) is not int or layers < 1):  # a bool is not a count
        raise SpecError(f"layers: {layers!r} must be a whole number of blocks, at least 1")
    if workload is None and fields.get("dtype") is None:  # what each device runs natively
        fields["dtype"] = "fp32" if device == "cpu" else "bf16"
    w = for_model(m, make_workload(workload, **fields))
    check_workload(w)
    torch_dtype(w.dtype)
    device = resolve_device(device)
    hw = load_hardware(hardware) if hardware is not None else default_hardware(device, say)
    if m.architecture != "decoder":  # one encode pass (perfest.validate.encoder_run)
        from perfest.validate.encoder_run import validate_encoder

        return validate_encoder(m, hw, device, w, compile=compile, layers=layers,
                                repeats=repeats, warmup=warmup, say=say)  # fmt: skip
    # Eager PyTorch runs every element-wise op as its own kernel and torch.compile fuses them:
    # each mode is predicted at its fusion level, unless --fusion was given.
    chosen = "fusion" in w.model_fields_set
    predictions = {
        mode: estimate(m, hw, w if chosen else w.model_copy(update={"fusion": fusion}))
        for mode, fusion in (("eager", "none"), ("compiled", "full"))
    }
    k = layers_that_fit(m, w, device, layers)
    notes = []
    if k < m.L:
        notes.append(f"timed {k} of {m.L} blocks and scaled the block time by {m.L}/{k}")
    say("FLOP cross-check (meta device)")
    flops_match = all(c.match for c in check_flops(m, w))
    say(f"building the reference ({k} blocks, {w.dtype}, {device})")
    net = build_reference(m, w.dtype, device, layers=k, attention=w.attention)
    modes = [("eager", net)]
    if compile:
        modes.append(("compiled", _compile(net)))
    phases = []
    for phase in ("prefill", "decode"):
        run_pass = _phase_inputs(net, w, phase, device)
        say(f"{phase} (per op group)")
        groups = measure_groups(net, run_pass, device, repeats)
        for mode, module in modes:
            say(f"{phase} ({mode})")
            seconds = time_call(partial(run_pass, module), device, repeats, warmup)
            seconds, by_group = scale_to_model(seconds, groups, k, m.L)
            by_group = by_group if mode == "eager" else {}
            predicted = predictions[mode]
            phases.append(_phase_check(phase, mode, predicted.phase(phase), seconds, by_group,
                                       predicted.workload.fusion))  # fmt: skip
    return Validation(
        model=m.name,
        hardware=hw.name,
        device=device,
        torch=torch.__version__,
        workload=w.model_dump(),
        layers_timed=k,
        layers_total=m.L,
        peak_flops_s=hw.peak_flops(w.dtype),
        peak_bytes_s=hw.memory_bandwidth,
        phases=tuple(phases),
        flops_match=flops_match,
        notes=tuple(notes),
        warnings=above_peak(tuple(phases), hw, w.dtype),
    )


def _phase_check(
    phase: str, mode: str, predicted, measured: float, groups: dict, fusion: str
) -> PhaseCheck:
    pred_groups = _predicted_groups(predicted)
    rows = tuple(
        GroupCheck(
            g, pred_groups.get(g, 0.0), groups[g], error_pct(pred_groups.get(g, 0.0), groups[g])
        )
        for g in ("embedding", "norm", "attention", "mlp", "residual", "lm_head")
        if g in groups and groups[g] > 0
    )
    return PhaseCheck(
        phase=phase,
        mode=mode,
        fusion=fusion,
        predicted_s=predicted.time_s,
        measured_s=measured,
        error_pct=error_pct(predicted.time_s, measured),
        flops=predicted.flops,
        bytes=predicted.bytes,
        achieved_flops_s=predicted.flops / measured,
        achieved_bytes_s=predicted.bytes / measured,
        groups=rows,
    )
