"""The tables of `perfest list` and `perfest show`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from perfest.render import count, gb, si


def catalog_table(kind: str, specs: Sequence[Any]) -> Table:
    from perfest.parameters import count_parameters

    table = Table(show_edge=False)
    if kind == "models":
        for col in ("id", "name", "params", "L", "h", "heads", "kv", "d", "i", "V", "mlp"):
            table.add_column(col, justify="left" if col in ("id", "name", "mlp") else "right")
        for m in specs:
            table.add_row(
                m.name,
                m.label,
                count(count_parameters(m)),
                str(m.L),
                str(m.h),
                str(m.n_h),
                str(m.n_kv),
                str(m.d),
                str(m.i),
                str(m.V),
                m.mlp,
            )
    else:
        for col in ("id", "name", "bf16", "fp8", "memory", "bandwidth", "ridge (bf16)"):
            table.add_column(col, justify="left" if col in ("id", "name") else "right")
        for hw in specs:
            fp8 = si(hw.fp8_tflops * 1e12, "FLOP/s") if hw.fp8_tflops else "–"
            bf16 = si(hw.bf16_tflops * 1e12, "FLOP/s") if hw.bf16_tflops else "–"
            ridge = f"{hw.ridge_point('bf16'):,.0f}" if hw.bf16_tflops else "–"
            table.add_row(
                hw.name,
                hw.label,
                bf16,
                fp8,
                gb(hw.memory_bytes),
                si(hw.memory_bandwidth, "B/s"),
                ridge,
            )
    return table


def _facts(rows: Iterable[tuple[str, str]]) -> Table:
    table = Table(show_header=False, show_edge=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


def _variant_facts(m: Any) -> list[tuple[str, str]]:
    """Rows for a mixture of experts and the attention variants (none for a plain model)."""
    from perfest.parameters import active_parameters

    rows = []
    if m.architecture == "encoder":
        extras = [f"token types {m.type_vocab_size}"] if m.type_vocab_size else []
        extras += ["embedding norm"] if m.embedding_norm else []
        rows.append(("architecture", f"encoder, {m.norm_position}-norm, head {m.head}"
                     + (f" ({', '.join(extras)})" if extras else "")))  # fmt: skip
    elif m.architecture == "encoder-decoder":
        scale = ", LM head input × h^-1/2" if m.head_scale else ""
        buckets = m.relative_attention_num_buckets
        text = f"encoder-decoder, {m.L_enc} + {m.L_dec} layers, {buckets} relative position buckets"
        rows.append(("architecture", text + scale))
    if m.moe:
        active = active_parameters(m)
        rows.append(("active parameters", f"{active:,} ({count(active)}) per token"))
        moe_layers = sum(1 for moe, _ in m.layer_kinds() if moe)
        shared = f", shared i {m.i_shared}" if m.i_shared else ""
        rows.append(
            (
                "experts",
                f"top-{m.experts_per_token} of {m.num_experts} ({m.router_scoring}), i_e "
                f"{m.i_e}{shared}, {moe_layers} of {m.L} layers"
                + (f", weights {m.expert_weight_dtype}" if m.expert_weight_dtype else ""),
            )
        )
    if m.mla:
        q = f"q rank {m.q_lora_rank}, " if m.q_lora_rank else ""
        rows.append(
            (
                "latent attention",
                f"{q}kv rank {m.kv_lora_rank}, head dims nope {m.qk_nope_head_dim} + rope "
                f"{m.qk_rope_head_dim}, v {m.v_head_dim}; cache {m.kv_lora_rank + m.rope_dim} "
                "per token per layer",
            )
        )
    if m.sliding_window:
        windowed = sum(1 for _, window in m.layer_kinds() if window)
        window = f"{m.sliding_window:,} tokens on {windowed} of {m.L} layers"
        rows.append(("sliding window", window))
    return rows


def show_model(m: Any, console: Console) -> None:
    from perfest.parameters import (
        count_parameters,
        kv_cache_bytes_per_token,
        parameter_breakdown,
        weight_bytes_by_dtype,
    )

    total = count_parameters(m)
    parts = ", ".join(f"{k} {count(v)}" for k, v in parameter_breakdown(m).items())
    weights = ", ".join(f"{k} {gb(v)}" for k, v in weight_bytes_by_dtype(m).items())
    kv = kv_cache_bytes_per_token(m)
    kv_text = ", ".join(f"{k} {v / 1e3:,.1f} KB" for k, v in kv.items() if k != "fp16")
    console.print(
        _facts(
            [
                ("model", f"{m.name} ({m.label})"),
                ("parameters", f"{total:,} ({count(total)}): {parts}"),
                *_variant_facts(m),
                ("layers L", str(m.L)),
                ("hidden h", str(m.h)),
                ("heads n_h / n_kv", f"{m.n_h} / {m.n_kv} ({m.attention_kind})"),
                ("head dim d", str(m.d)),
                ("intermediate i", f"{m.i} ({m.mlp}, {m.activation})"),
                ("vocab V", str(m.V)),
                (
                    "norm, positions",
                    f"{m.norm}, {m.position}"
                    + (f" (rotary dim {m.rope_dim})" if m.rope_dim and m.rope_dim != m.d else ""),
                ),
                ("block", "parallel attention + MLP" if m.parallel_block else "sequential"),
                ("tied embeddings", "yes" if m.tied_embeddings else "no"),
                ("max positions", str(m.max_position_embeddings)),
                ("weights", weights + " (int4: W4A16, embeddings and head in bf16)"),
                ("KV cache per token", kv_text + " (one sequence, all layers)"),
                ("stored weights", m.weight_dtype or "as computed (set by --weight-dtype)"),
                ("aliases", ", ".join(m.aliases) or "–"),
                ("source", m.source or "–"),
            ]
        )
    )


def show_hardware(hw: Any, console: Console) -> None:
    peaks = ", ".join(f"{dt} {si(hw.peak_flops(dt), 'FLOP/s')}" for dt in hw.dtypes)
    rows = [
        ("device", f"{hw.name} ({hw.label})"),
        ("vendor", hw.vendor or "–"),
        ("dense peaks", peaks),
        ("memory", f"{gb(hw.memory_bytes)} at {si(hw.memory_bandwidth, 'B/s')}"),
        ("ridge points", ", ".join(f"{dt} {hw.ridge_point(dt):,.0f} FLOP/B" for dt in hw.dtypes)),
        (
            "interconnect",
            f"{hw.interconnect or '–'}, {si(hw.interconnect_bandwidth, 'B/s')} "
            f"per direction, α = {hw.interconnect_latency_us:g} µs",
        ),
        ("compute units", str(hw.compute_units)),
        ("efficiency", f"compute {hw.compute_efficiency:.0%}, memory {hw.memory_efficiency:.0%}"),
        ("kernel launch", f"{hw.kernel_launch_us:g} µs"),
        ("aliases", ", ".join(hw.aliases) or "–"),
        ("source", hw.source or "–"),
    ]
    if hw.calibration:
        rows.append(("calibration", ", ".join(f"{k}: {v}" for k, v in hw.calibration.items())))
    console.print(_facts(rows))
