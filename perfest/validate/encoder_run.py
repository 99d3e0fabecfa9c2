"""`perfest validate` of an encoder: its one pass, predicted against a measured PyTorch run.

The reference (perfest.validate.reference_encoder) encodes b sequences of input_len tokens
with the workload's head; the pass is timed as the median of `repeats` after `warmup`, and per
op group from a separate run with hooks (perfest.validate.measure), as decoders are
(perfest.validate.run). A model too large for the device is timed on its first k blocks and
scaled to L the same way. Encoder-decoders are checked by FLOPs (perfest.validate.flops), not
timed here.
"""

from __future__ import annotations

from functools import partial

from perfest.encoders import encode_point
from perfest.errors import UnsupportedError
from perfest.inference import estimate
from perfest.specs import HardwareSpec, ModelConfig, Workload
from perfest.validate import require_torch
from perfest.validate.measure import time_call
from perfest.validate.run import (
    Progress,
    Validation,
    _compile,
    _phase_check,
    above_peak,
    layers_that_fit,
    measure_groups,
    scale_to_model,
)


def validate_encoder(
    m: ModelConfig,
    hw: HardwareSpec,
    device: str,
    w: Workload,
    *,
    compile: bool,
    layers: int | None,
    repeats: int,
    warmup: int,
    say: Progress,
) -> Validation:
    """Time the encode pass of `m`'s reference on `device` against perfest's prediction."""
    torch = require_torch()
    from perfest.validate.encoder_flops import check_stack_flops
    from perfest.validate.reference_encoder import build_encoder_reference

    if m.architecture != "encoder":
        raise UnsupportedError(
            f"{m.name}: validate times encoders and decoders; an encoder-decoder's FLOPs are "
            "checked by perfest.validate.flops.check_flops (not timed yet)"
        )
    # eager PyTorch runs every element-wise op apart, torch.compile fuses: each mode is
    # predicted at its fusion level unless --fusion was given (as for decoders)
    chosen = "fusion" in w.model_fields_set
    predictions = {
        mode: estimate(m, hw, w if chosen else w.model_copy(update={"fusion": fusion}))
        for mode, fusion in (("eager", "none"), ("compiled", "full"))
    }
    k = layers_that_fit(m, w, device, layers)
    notes = [f"timed {k} of {m.L} blocks and scaled the block time by {m.L}/{k}"] if k < m.L else []
    say("FLOP cross-check (meta device)")
    flops_match = all(c.match for c in check_stack_flops(m, w))
    say(f"building the reference ({k} blocks, {w.dtype}, {device})")
    net = build_encoder_reference(m, w.dtype, device, layers=k, attention=w.attention, head=w.head)
    ids = torch.randint(0, m.V, (w.batch, encode_point(w).s), device=device)

    def run_pass(module=net):
        with torch.no_grad():
            return module(ids)

    modes = [("eager", net)] + ([("compiled", _compile(net))] if compile else [])
    say("encode (per op group)")
    groups = measure_groups(net, run_pass, device, repeats)
    phases = []
    for mode, module in modes:
        say(f"encode ({mode})")
        seconds = time_call(partial(run_pass, module), device, repeats, warmup)
        seconds, by_group = scale_to_model(seconds, groups, k, m.L)
        predicted = predictions[mode]
        phases.append(_phase_check("encode", mode, predicted.encode, seconds,
                                   by_group if mode == "eager" else {},
                                   predicted.workload.fusion))  # fmt: skip
    return Validation(
        model=m.name,
        hardware=hw.name,
        device=device,
        torch=torch.__version__,
        workload=w.model_dump(exclude={"output_len", "logits"}),
        layers_timed=k,
        layers_total=m.L,
        peak_flops_s=hw.peak_flops(w.dtype),
        peak_bytes_s=hw.memory_bandwidth,
        phases=tuple(phases),
        flops_match=flops_match,
        notes=tuple(notes),
        warnings=above_peak(tuple(phases), hw, w.dtype),
    )
