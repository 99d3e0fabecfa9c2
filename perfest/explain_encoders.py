"""The closed forms of an encoder's and an encoder-decoder's passes, beside perfest's sums
(perfest.explain shows them under each phase). Per device; N counts the matmul weights of the
stack's layers (all L of them), a product of m rows by an [k, n] weight costs 2·m·k·n FLOPs.

    encoder (BERT), encode      2·b·s·N + 4·b·n_h·s·d·L·t + head       (t = s: bidirectional,
                                                                         every token sees all s)
        head  masked LM         2·b·s_logits·h·h + 2·b·s_logits·h·V    (transform, tied decoder)
              pooler            2·b·h·h                                ([CLS] only: b rows)
    BERT-style blocks           24·b·s·h²·L·(1 + s/(6h)) + head        (i = 4h, n_kv = n_h,
                                                                         n_h·d = h, one device)
        8·b·s·h² of Q, K, V, O projections + 16·b·s·h² of FFN + 4·b·s²·h of attention core
    encoder-decoder, decoder    2·b·s·N + 2·b·s_enc·N_kv + 4·b·n_h·s·d·L·(t + s_enc)
    (prefill, decode)             + 2·b·s_logits·h·V
        N_kv: the cross-attention K/V projections, which run once, in prefill, over the s_enc
        encoder outputs (decode reads their cache: N_kv = 0 there); N: every other layer weight
"""

from __future__ import annotations

from perfest.explain import ClosedForm, matmul_weights
from perfest.plan import Point, Row


def encoder_forms(ctx, rows: tuple[Row, ...], point: Point, matmul: float) -> list[ClosedForm]:
    """The forms of the module docstring that apply to this pass."""
    m, sh = ctx.model, ctx.shard
    b, s, t, s_l, s_enc = point
    layers = [r for r in rows if r.segment in ("encoder", "decoder")]
    if not layers:
        return []
    L = layers[0].count
    weights, cross = _weights(layers)
    core = f"4·{b}·{sh.n_h}·{s}·{m.d}·{L}"
    if layers[0].segment == "decoder":
        attention = 4 * b * sh.n_h * s * m.d * L * (t + s_enc)
        value = 2 * b * s * weights + 2 * b * s_enc * cross + attention + 2 * b * s_l * m.h * sh.V
        return [ClosedForm(
            "2 FLOPs per weight per token, plus self- and cross-attention (N: the decoder "
            "layers' weights but the cross K/V projections, N_kv: those, prefill only)",
            "2·b·s·N + 2·b·s_enc·N_kv + 4·b·n_h·s·d·L·(t + s_enc) + 2·b·s_logits·h·V",
            f"2·{b}·{s}·{weights:.0f} + 2·{b}·{s_enc}·{cross:.0f} + {core}·({t} + {s_enc}) "
            f"+ 2·{b}·{s_l}·{m.h}·{sh.V}",
            value, matmul)]  # fmt: skip
    head, head_formula, head_numbers = _head(ctx, point, rows)
    forms = [ClosedForm(
        "2 FLOPs per weight per token, plus bidirectional attention over all t = s keys "
        f"(N: the encoder layers' weights){head_numbers and ', plus the head'}",
        f"2·b·s·N + 4·b·n_h·s·d·L·t{head_formula}",
        f"2·{b}·{s}·{weights:.0f} + {core}·{t}{head_numbers}",
        2 * b * s * weights + 4 * b * sh.n_h * s * m.d * L * t + head, matmul)]  # fmt: skip
    bert = (m.mlp == "classic" and sh.i == 4 * m.h and m.n_kv == m.n_h and m.q_dim == m.h
            and not sh.split and t == s)  # fmt: skip
    if bert:
        h = m.h
        forms.append(ClosedForm(
            "BERT-style encoder (i = 4h): 8·b·s·h² projections + 16·b·s·h² FFN + 4·b·s²·h "
            "attention per layer",
            f"24·b·s·h²·L·(1 + s/(6h)){head_formula}",
            f"24·{b}·{s}·{h}²·{L}·(1 + {s}/(6·{h})){head_numbers}",
            24 * b * s * h * h * L * (1 + s / (6 * h)) + head, matmul))  # fmt: skip
    return forms


def _weights(layers: list[Row]) -> tuple[float, float]:
    """(N, N_kv): the layers' matmul weights, all L of them, the cross K/V projections' apart
    (the products whose rows are the encoder's s_enc outputs)."""
    weights = cross = 0.0
    for r in layers:
        n = r.count * sum(w.elements.value() for w in matmul_weights(r.op))
        if n and "s_enc" in r.op.gemm.m.symbols():
            cross += n
        else:
            weights += n
    return weights, cross


def _head(ctx, point: Point, rows: tuple[Row, ...]) -> tuple[float, str, str]:
    """(FLOPs, formula, numbers) of the head that ran: masked LM, pooler, or none."""
    from perfest.encoder_graph import encoder_head

    b, _, _, s_l, _ = point
    h, V = ctx.model.h, ctx.shard.V
    if not any(r.segment == "head" for r in rows) or ctx.model.architecture != "encoder":
        return 0.0, "", ""
    head = encoder_head(ctx)
    if head == "mlm":
        return (2 * b * s_l * h * h + 2 * b * s_l * h * V, " + 2·b·s_logits·h·h + 2·b·s_logits·h·V",
                f" + 2·{b}·{s_l}·{h}·{h} + 2·{b}·{s_l}·{h}·{V}")  # fmt: skip
    if head == "pooler":
        return 2 * b * h * h, " + 2·b·h·h", f" + 2·{b}·{h}·{h}"
    return 0.0, "", ""
