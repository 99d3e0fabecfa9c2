"""Inference phases → Estimate: prefill (time to first token), a decode step, the generation.

    TTFT       = T(prefill: s = t = input_len)
    TPOT       = T(decode: s = 1, t = input_len + max(1, ⌊output_len / 2⌋))
    e2e        = TTFT + (output_len − 1)·TPOT
    tokens/s   = b·output_len / e2e                     (all sequences of the batch together)

The first output token comes out of prefill; each of the output_len − 1 further tokens costs a
decode step whose context grows from input_len + 1 to input_len + output_len − 1. Step time is
affine in the context length within each bound, so the step at the mean context stands for the
average step: `decode` reports that step and its `context_len`.
"""

from __future__ import annotations

from math import floor

from pydantic import ValidationError

from perfest.catalog import load_hardware, load_model
from perfest.errors import SpecError, UnsupportedError
from perfest.layers import Pass, forward
from perfest.memory import activation_bytes_per_sequence, kv_bytes_per_sequence, weight_bytes
from perfest.parameters import count_parameters
from perfest.results import (
    Estimate,
    GenerationEstimate,
    MemoryEstimate,
    PhaseEstimate,
    make,
)
from perfest.roofline import DEQUANT_INSTRUCTIONS_PER_ELEMENT, Rates, time_op
from perfest.specs import (
    DTYPE_BYTES,
    SCALE_BYTES_PER_WEIGHT,
    HardwareSpec,
    ModelConfig,
    Workload,
    first_error,
)


def make_workload(workload: Workload | None = None, **fields) -> Workload:
    """A Workload from keyword fields (None values dropped), one-line errors on bad input."""
    if workload is not None and not fields:
        return workload
    base = workload.model_dump(exclude_unset=True) if workload is not None else {}
    base.update({key: value for key, value in fields.items() if value is not None})
    try:
        return Workload(**base)
    except ValidationError as exc:
        raise first_error(exc) from None


def check(model: ModelConfig, hw: HardwareSpec, w: Workload) -> None:
    """Reject what cannot run: tp that does not split the heads, a dtype the device lacks."""
    if model.n_h % w.tp:
        raise SpecError(
            f"tp: {w.tp} does not divide the {model.n_h} attention heads of {model.name}"
        )
    if w.tp > 1 and hw.interconnect_bandwidth <= 0:
        raise UnsupportedError(f"tp: {hw.name} has no interconnect bandwidth in its spec")
    hw.peak_flops(w.dtype)
    if w.dtype in ("int8",) and w.w_dtype not in ("int8", "int4"):
        raise SpecError("weight_dtype: int8 activations need int8 (or int4) weights")


def attention_dtype(hw: HardwareSpec, w: Workload) -> str:
    """The dtype of attention's q·kᵀ and p·v. fp8 and int8 mean W8A8 *linear layers*, as vLLM,
    TensorRT-LLM and SmoothQuant run them; the products of two activations stay in 16-bit."""
    if w.dtype in ("fp8", "int8"):
        return next((dt for dt in ("bf16", "fp16") if dt in hw.dtypes), w.dtype)
    return w.dtype


def rates(hw: HardwareSpec, w: Workload) -> Rates:
    """The device's rates for this workload; matmuls run at the peak of the activation dtype
    (weight-only int4/int8 weights are dequantized to it), element-wise work at the device's
    vector rate. `--memory-efficiency` overrides η_memory; the weight-streaming terms
    (per-row GEMV time, η of m ≥ 2 products) are the device's."""
    return Rates(
        matmul_flops=hw.peak_flops(w.dtype),
        attention_flops=hw.peak_flops(attention_dtype(hw, w)),
        vector_flops=hw.vector_flops,
        bandwidth=hw.memory_bandwidth,
        compute_eff=w.compute_efficiency or hw.compute_efficiency,
        memory_eff=w.memory_efficiency or hw.memory_efficiency,
        gemv_row_s=hw.gemv_row_s,
        gemm_memory_eff=hw.gemm_memory_efficiency,
        launch_s=hw.kernel_launch_s,
        link_bandwidth=hw.interconnect_bandwidth,
        link_latency_s=hw.interconnect_latency_s,
        compute_units=hw.compute_units,
        tile_m_min=hw.tile_m_min,
        tile_m_max=hw.tile_m_max,
        tile_n=hw.tile_n,
        dequant_instructions=(
            DEQUANT_INSTRUCTIONS_PER_ELEMENT.get(w.w_dtype, 0.0) if w.weight_only else 0.0
        ),
    )


def make_pass(w: Workload, s: int, t: int, s_logits: int) -> Pass:
    act = DTYPE_BYTES[w.dtype]
    return Pass(
        b=w.batch,
        s=s,
        t=t,
        s_logits=s_logits,
        act=act,
        w=DTYPE_BYTES[w.w_dtype]
        + (SCALE_BYTES_PER_WEIGHT.get(w.w_dtype, 0.0) if w.weight_only else 0.0),
        emb=act if w.weight_only else DTYPE_BYTES[w.w_dtype],
        kv=DTYPE_BYTES[w.cache_dtype],
        tp=w.tp,
        flash=w.attention == "flash",
        weight_only=w.weight_only,
    )


def decode_context(w: Workload) -> int:
    """Context length of the decode step that stands for the average step."""
    return w.input_len + max(1, w.output_len // 2)


def run_phase(name: str, model: ModelConfig, p: Pass, r: Rates) -> PhaseEstimate:
    """Cost and time every op of one forward pass and sum them (one plain loop: sweeps run
    this thousands of times)."""
    ops = forward(model, p)
    rows = []
    by_bound = {"compute": 0.0, "memory": 0.0, "communication": 0.0, "overhead": 0.0}
    flops = mm_flops = nbytes = time = roofline = overhead = comm = 0.0
    for op in ops:
        tm = time_op(op, r)
        rows.append((op, tm))
        n, c = op.count, op.cost
        by_bound[tm.bound] += tm.time
        flops += c.flops * n
        nbytes += (c.bytes_read + c.bytes_written) * n
        if op.gemm is not None:
            mm_flops += op.gemm.flops * n
        time += tm.time
        roofline += tm.roofline
        overhead += tm.overhead
        comm += tm.t_comm
    return make(
        PhaseEstimate,
        {"_rows": tuple(rows)},
        phase=name,
        batch=p.b,
        query_len=p.s,
        context_len=p.t,
        flops=flops,
        matmul_flops=mm_flops,
        bytes=nbytes,
        intensity=flops / nbytes if nbytes else 0.0,
        time_s=time,
        roofline_time_s=roofline,
        overhead_s=overhead,
        comm_time_s=comm,
        bound=max(by_bound, key=by_bound.__getitem__),
    )


def memory_estimate(model: ModelConfig, hw: HardwareSpec, w: Workload, p: Pass) -> MemoryEstimate:
    weights = weight_bytes(model, p.w, p.emb, w.tp)
    kv_seq = kv_bytes_per_sequence(model, w.input_len + w.output_len, p.kv, w.tp)
    act_seq = activation_bytes_per_sequence(model, p)
    kv, act = kv_seq * w.batch, act_seq * w.batch
    total = weights + kv + act
    capacity = hw.memory_bytes
    max_batch = max(0, floor((capacity - weights) / (kv_seq + act_seq)))
    return make(
        MemoryEstimate,
        weights_bytes=weights,
        kv_cache_bytes=kv,
        activation_bytes=act,
        total_bytes=total,
        capacity_bytes=capacity,
        fits=total <= capacity,
        max_batch=max_batch,
    )


def _generation(w: Workload, prefill: PhaseEstimate, decode: PhaseEstimate) -> GenerationEstimate:
    steps = w.output_len - 1
    e2e = prefill.time_s + steps * decode.time_s
    roof_e2e = prefill.roofline_time_s + steps * decode.roofline_time_s
    return make(
        GenerationEstimate,
        ttft_s=prefill.time_s,
        tpot_s=decode.time_s,
        e2e_latency_s=e2e,
        output_tokens_per_s=w.batch * w.output_len / e2e,
        per_sequence_tokens_per_s=w.output_len / e2e,
        roofline_ttft_s=prefill.roofline_time_s,
        roofline_tpot_s=decode.roofline_time_s,
        roofline_output_tokens_per_s=w.batch * w.output_len / roof_e2e,
    )


def _warnings(model: ModelConfig, hw: HardwareSpec, w: Workload, mem: MemoryEstimate) -> tuple:
    notes = []
    if not mem.fits:
        notes.append(
            f"memory: needs {mem.total_bytes / 1e9:.1f} GB per device but {hw.name} has "
            f"{mem.capacity_bytes / 1e9:.0f} GB (largest batch that fits: {mem.max_batch})"
        )
    if w.input_len + w.output_len > model.max_position_embeddings:
        notes.append(
            f"input_len + output_len = {w.input_len + w.output_len} exceeds {model.name}'s "
            f"max_position_embeddings {model.max_position_embeddings}"
        )
    return tuple(notes)


def estimate(
    model: str | ModelConfig,
    hardware: str | HardwareSpec,
    workload: Workload | None = None,
    **fields,
) -> Estimate:
    """Estimate inference of `model` on `hardware`.

    `model` and `hardware` are catalog names, file paths, or loaded specs; the workload is a
    `Workload` or its fields as keywords (batch, input_len, output_len, dtype, weight_dtype,
    kv_dtype, tp, logits, attention, compute_efficiency, memory_efficiency).
    """
    m, hw = load_model(model), load_hardware(hardware)
    w = make_workload(workload, **fields)
    check(m, hw, w)
    r = rates(hw, w)
    s_logits = w.input_len if w.logits == "all" else 1
    p_prefill = make_pass(w, w.input_len, w.input_len, s_logits)
    prefill = run_phase("prefill", m, p_prefill, r)
    decode = run_phase("decode", m, make_pass(w, 1, decode_context(w), 1), r)
    mem = memory_estimate(m, hw, w, p_prefill)
    return make(
        Estimate,
        schema_version=1,
        model=m.name,
        hardware=hw.name,
        workload=w.model_dump(),
        parameters=count_parameters(m),
        ridge_point=hw.ridge_point(w.dtype),
        compute_efficiency=r.compute_eff,
        memory_efficiency=r.memory_eff,
        memory=mem,
        prefill=prefill,
        decode=decode,
        generation=_generation(w, prefill, decode),
        warnings=_warnings(m, hw, w, mem),
    )
