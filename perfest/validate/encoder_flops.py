"""The FLOP cross-check of encoders and encoder-decoders: FlopCounterMode on the reference
(perfest.validate.reference_encoder, meta device) against perfest's matmul FLOPs, op group by
op group (perfest.validate.flops's rows), for every phase perfest reports:

    encoder          encode: the encoder and its head over b sequences of input_len tokens
    encoder-decoder  encode: the encoder over input_len tokens;
                     prefill: the decoder's start token, projecting the cross cache;
                     decode: the decoder step at context 1 + max(1, output_len // 2), its caches
                     holding the context before it and the input's cross keys and values
"""

from __future__ import annotations

from perfest.graph import build_graph
from perfest.inference import make_workload
from perfest.layers import Ctx
from perfest.layers.context import Phase
from perfest.specs import ModelConfig, Workload
from perfest.validate import require_torch
from perfest.validate.flops import ROWS, FlopCheck, FlopRow


def perfest_flops(model: ModelConfig, w: Workload, phase: Phase, point) -> dict[str, int]:
    """perfest's matmul FLOPs of one pass by op name (all layers), from the op definitions."""
    env = dict(zip(("b", "s", "t", "s_logits", "s_enc"), point, strict=True))
    flops: dict[str, int] = {}
    for segment, op in build_graph(Ctx.of(model, w, phase)).ops():
        if op.gemm is not None:
            flops[op.name] = flops.get(op.name, 0) + round(op.gemm.flops.value(env)) * segment.count
    return flops


def counted(run) -> tuple[dict[str, int], int]:
    """FlopCounterMode's count per leaf-module name (summed over layers) of `run()`, and its
    total."""
    torch = require_torch()
    from torch.utils.flop_counter import FlopCounterMode

    leaves = {row[3] for row in ROWS}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        run()
    by_leaf: dict[str, int] = {}
    for fqn, per_op in counter.get_flop_counts().items():
        leaf = fqn.rsplit(".", 1)[-1]
        if fqn != "Global" and leaf in leaves:
            by_leaf[leaf] = by_leaf.get(leaf, 0) + int(sum(per_op.values()))
    return by_leaf, int(counter.get_total_flops())


def _passes(net, model: ModelConfig, w: Workload) -> list:
    """(phase name, perfest phase, point, the reference's pass) for each phase."""
    from perfest import encoders

    torch = require_torch()
    device = next(net.parameters()).device
    b, n = w.batch, w.input_len
    ids = torch.zeros(b, n, dtype=torch.long, device=device)
    if model.architecture == "encoder":
        return [("encode", Phase.ENCODE, encoders.encode_point(w), lambda: net(ids))]
    start = torch.zeros(b, 1, dtype=torch.long, device=device)
    context = encoders.step_context(w)
    encoded = torch.zeros(b, n, model.h, dtype=net.lm_head.weight.dtype, device=device)

    def prefill():
        net(start, net.new_cache(b, context, n), encoded)

    def decode():
        cache = net.new_cache(b, context, n)
        cache.length = context - 1
        net(start, cache)

    return [
        ("encode", Phase.ENCODE, encoders.encode_point(w), lambda: net.encode(ids)),
        ("prefill", Phase.PREFILL, encoders.start_point(w), prefill),
        ("decode", Phase.DECODE, encoders.step_point(w), decode),
    ]


def check_stack_flops(
    model: ModelConfig, workload: Workload | None = None, net=None, **fields
) -> tuple[FlopCheck, ...]:
    """A FlopCheck per phase of an encoder or encoder-decoder at `workload`; `net` defaults to
    the full-size reference on the meta device (with the workload's head)."""
    from perfest.validate.reference_encoder import build_encoder_reference

    w = make_workload(workload, **fields)
    if net is None:
        net = build_encoder_reference(model, w.dtype, "meta", attention=w.attention, head=w.head)
    checks = []
    for name, phase, point, run in _passes(net, model, w):
        ours = perfest_flops(model, w, phase, point)
        theirs, total = counted(run)
        rows = tuple(
            FlopRow(group, label, sum(ours.get(n, 0) for n in names), theirs.get(leaf, 0))
            for group, label, names, leaf in ROWS
            if any(n in ours for n in names) or leaf in theirs
        )
        checks.append(FlopCheck(name, rows, sum(ours.values()), total))
    return tuple(checks)
