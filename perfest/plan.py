"""The compiled evaluation plan: a graph's ops as arithmetic over the pass's free symbols.

For one (model, device, layout, dtypes) the graph is built once and each op is compiled into a
term: the coefficients of its FLOPs and bytes as polynomials in b, s, t and s_logits (every
count is a polynomial: b·s rows, b·n_h·s·t scores, b·t cached keys), with the device's rates
folded in. Evaluating the plan at a new point (b, s, t, s_logits) is then plain arithmetic over
the terms — no op objects are built — while the parts of the time model that are not
polynomial stay exact per term: tile and wave quantization of each matrix product, the weight
streaming of single products, the bound of each op. The per-op rows (`--layers`, JSON,
`explain`) come from the same evaluation with a sink that records each term; the totals
come from the same loop without it, so the two cannot disagree.

Ops repeated with identical per-instance costs (the two norms of a block and the final norm,
gate and up) are merged into one term for the totals; the rows keep one term per op.

Sizes that are not polynomials in the point — a sliding window's min(t, w), the experts a
batch touches — are derived symbols (perfest.symbols): the plan computes each from the point
once per evaluation and treats it as one more symbol of the monomials, so the fast path and
the rows stay one implementation. With data-parallel attention (perfest.sharding) a device
runs ⌈b/g⌉ of the b sequences: the plan evaluates its ops at that b, while the derived
symbols (the experts' tokens) see the whole batch.

Prefill and decode share one plan unless a layer's form depends on the phase (latent
attention's naive and absorbed forms, an experts-touched override for decode): then the plan
holds a second one for decode (`for_phase`), built from the graph of that phase.

The time model itself, term by term, is documented in perfest.roofline.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple

from perfest.encoder_checks import static_workload_problem
from perfest.errors import SpecError
from perfest.graph import Graph, Segment, build_graph
from perfest.layers import Ctx
from perfest.layers.context import Phase, phase_dependent
from perfest.memory import activation_coefficients
from perfest.ops import Axis, Op, Role
from perfest.parameters import count_parameters
from perfest.roofline import (
    DEQUANT_INSTRUCTIONS_PER_ELEMENT,
    K_SLICE,
    Bound,
    Rates,
    cheapest_tiles,
    fit,
    peak,
    rates,
)
from perfest.sharding import Layout, Link, link, shard
from perfest.specs import HardwareSpec, ModelConfig, Workload
from perfest.symbols import Monomial, Poly, derived_in

#: The bounds as module constants: the evaluation loop reads them per op, and a global is
#: several times faster to read than an enum's class attribute.
COMPUTE, MEMORY = Bound.COMPUTE, Bound.MEMORY
COMMUNICATION, OVERHEAD = Bound.COMMUNICATION, Bound.OVERHEAD

#: The kinds of term, each evaluated by its own loop: element-wise ops, linear layers (only
#: the rows m vary), other matrix products, collectives.
FAMILIES = ("vector", "linear", "gemm", "comm")

#: The free symbols of a point, in this order.
SYMBOLS = ("b", "s", "t", "s_logits", "s_enc")


class Point(NamedTuple):
    """Where a pass is evaluated: b sequences adding s tokens each to a context of t, with
    s_logits positions per sequence reaching the LM head, and s_enc encoder tokens per sequence
    behind an encoder-decoder's cross-attention (0 without one). (A named tuple: built once per
    pass of every estimate, it must be cheap.)"""

    b: int
    s: int
    t: int
    s_logits: int
    s_enc: int = 0


class Totals(NamedTuple):
    """A pass summed over its ops (times in seconds, all instances)."""

    flops: float
    matmul_flops: float
    bytes: float
    time_s: float
    roofline_time_s: float
    overhead_s: float
    comm_time_s: float
    bound: Bound  # the bound holding most of the time
    weights_bound: Bound  # the same over the matmuls with a weight operand


@dataclass(frozen=True, slots=True)
class Row:
    """One op at one point, over all `count` instances."""

    op: Op
    segment: str
    count: int
    flops: float
    matmul_flops: float
    bytes_read: float
    bytes_written: float
    t_compute: float
    t_memory: float
    t_comm: float
    overhead: float
    time: float
    roofline: float
    bound: Bound

    @property
    def bytes(self) -> float:
        return self.bytes_read + self.bytes_written


class _Monomials:
    """Registry of the monomials a plan evaluates, each built from a shorter one times a symbol
    (so evaluating all of them costs one multiplication each). `symbols`: the point's four,
    then the graph's derived symbols."""

    def __init__(self, symbols: tuple[str, ...] = SYMBOLS) -> None:
        self.index: dict[Monomial, int] = {(): 0}
        self.recipe: list[tuple[int, int]] = []
        self.position = {name: i for i, name in enumerate(symbols)}

    def __call__(self, mono: Monomial) -> int:
        if mono not in self.index:
            parent = self(mono[:-1])
            self.recipe.append((parent, self.position[mono[-1]]))
            self.index[mono] = len(self.index)
        return self.index[mono]


def _add(p: Poly, q: Poly) -> Poly:
    out = dict(p)
    for mono, c in q.items():
        out[mono] = out.get(mono, 0) + c
    return {mono: c for mono, c in out.items() if c}


def _pair(f: Poly, y: Poly, monos: _Monomials, op: Op) -> tuple:
    """Two polynomials on the same two monomials: (i1, i2, f1, f2, y1, y2)."""
    support = list(dict.fromkeys([*f, *y]))
    if len(support) > 2:
        raise NotImplementedError(f"{op.name}: {len(support)} monomials (the plan takes 2)")
    support += [()] * (2 - len(support))
    if support[0] == support[1]:  # pad with a zero coefficient on the constant
        return (monos(support[0]), 0, f.get(support[0], 0), 0, y.get(support[0], 0), 0)
    (m1, m2) = support
    return (monos(m1), monos(m2), f.get(m1, 0), f.get(m2, 0), y.get(m1, 0), y.get(m2, 0))


def _sparse(poly: Poly, monos: _Monomials, slots: int, what: str, op: Op) -> tuple:
    """(index, coefficient) pairs of `poly`, padded to `slots` pairs."""
    if len(poly) > slots:
        raise NotImplementedError(
            f"{op.name}: {what} has {len(poly)} monomials (plan takes {slots})"
        )
    pairs: list[Any] = []
    for mono, coef in poly.items():
        pairs += [monos(mono), coef]
    return tuple(pairs + [0, 0] * (slots - len(poly)))


def _dim(expr, monos: _Monomials, op: Op) -> tuple[int, int]:
    """A GEMM dimension as (monomial index, integer coefficient)."""
    poly = expr.poly()
    (mono, coef), *more = poly.items() if poly else [((), 0)]
    if more or coef != int(coef):
        raise NotImplementedError(f"{op.name}: GEMM dimension {expr} is not one whole monomial")
    return monos(mono), int(coef)


class Plan:
    """A graph compiled against a device's rates; `evaluate(point)` → Totals, `rows(point)`."""

    def __init__(self, graph: Graph, rates: Rates, links: dict, ctx: Ctx | None = None) -> None:
        self.graph, self.rates, self.ctx = graph, rates, ctx
        self.derived = graph.derived
        self.groups = ctx.shard.groups if ctx is not None else 1
        self._plain = not self.derived and self.groups == 1  # the point is the symbols' values
        self._monos = _Monomials(SYMBOLS + tuple(d.name for d in self.derived))
        self._phases: dict[str, Plan] = {}
        ops = list(graph.ops())
        # rows: one term per op; totals: ops with equal per-instance terms merged
        self._rows = self._compile(ops, links, merge=False)
        self._fast = self._compile(ops, links, merge=True)
        self.recipe = tuple(self._monos.recipe)
        # element-wise time per FLOP and per byte (predicted), and the pure roofline's
        self._vector_rates = (
            1.0 / (rates.vector_flops * rates.compute_eff),
            1.0 / (rates.bandwidth * rates.memory_eff),
            1.0 / rates.vector_flops,
            1.0 / rates.bandwidth,
        )
        overhead = 0.0
        for segment, op in ops:  # launches do not depend on the point
            overhead += op.kernels * rates.launch_s * segment.count
        self.overhead_s = overhead
        self.weight_bytes = graph.weight_bytes()
        self.kv_bytes_per_token = graph.kv_bytes_per_token()
        kv_shapes = (x for tensor in graph.tensors(Role.KV_CACHE) for x in tensor.shape)
        self._kv_windowed = bool(derived_in(kv_shapes))
        self.parameters = count_parameters(ctx.model) if ctx is not None else 0
        self.activations = activation_coefficients(ctx) if ctx is not None else (0.0, 0.0, 0.0)
        # memory at other tensor-parallel degrees (tp → footprint), filled by perfest.memory
        self.footprints: dict[int, tuple] = {}

    # -----------------------------------------------------------------------------------------
    # Compilation: each op's per-instance signature, then one term per distinct signature.

    def _compile(self, ops: list[tuple[Segment, Op]], links: dict, merge: bool) -> tuple:
        groups: OrderedDict = OrderedDict()
        for index, (segment, op) in enumerate(ops):
            family, signature = self._signature(op, links)
            key = (family, signature) if merge else (family, signature, index)
            entry = groups.setdefault(key, [0, index])
            entry[0] += segment.count
        families: dict[str, list] = {name: [] for name in FAMILIES}
        for (family, signature, *_), (count, index) in groups.items():
            families[family].append((*self._term(family, signature, count), index))
        return tuple(tuple(families[name]) for name in FAMILIES)

    def _signature(self, op: Op, links: dict) -> tuple[str, tuple]:
        r, monos = self.rates, self._monos
        overhead = op.kernels * r.launch_s
        nbytes = _add(op.bytes_read.poly(), op.bytes_written.poly())
        if op.collective is not None:
            link: Link = links[op.collective.axis]
            wire = op.collective.wire_bytes.poly()
            pair = _pair({m: c / link.bandwidth for m, c in wire.items()}, nbytes, monos, op)
            return "comm", (pair, link.latency_s, overhead)
        if op.gemm is None:
            return "vector", (_pair(op.flops.poly(), nbytes, monos, op), overhead)
        g = op.gemm
        dims = tuple(_dim(x, monos, op) for x in (g.m, g.k, g.n, g.batch))
        bias = _add(op.flops.poly(), {m: -c for m, c in g.flops.poly().items()})
        op_peak = peak(op, r)
        instructions = DEQUANT_INSTRUCTIONS_PER_ELEMENT.get(g.b.dtype, 0.0)
        dequant = op.dequant.poly() if instructions else {}
        dequant_rate = instructions / (r.vector_flops / 2)  # an FMA is one instruction, 2 FLOPs
        weight = not op.activation_product
        (row_mono,) = g.m.poly()
        constant_rest = all(i == 0 for i, _ in dims[1:])
        if row_mono and constant_rest and {*bias, *nbytes, *dequant} <= {(), row_mono}:
            # Only the rows vary (a linear layer): k, n and batch are numbers, the FLOPs and
            # bytes are affine in m, and the tile arithmetic can be shared by every product
            # with the same m.
            (_, k), (_, n), (_, batch) = dims[1:]
            linear = (
                dims[0],
                (k, n, batch),
                bias.get(row_mono, 0),
                (nbytes.get(row_mono, 0), nbytes.get((), 0)),
                dequant.get((), 0) * dequant_rate,
            )
            return "linear", (*linear, op_peak, weight, overhead)
        extra = _sparse(bias, monos, 2, "bias and fused FLOPs", op)
        dq = _sparse(dequant, monos, 1, "dequant", op) if dequant else (0, 0)
        byte_pairs = _sparse(nbytes, monos, 4, "bytes", op)
        return "gemm", (dims, extra, byte_pairs, dq, dequant_rate, op_peak, weight, overhead)

    def _term(self, family: str, sig: tuple, n: int) -> tuple:
        """The numbers one evaluation needs, for `n` instances, with the rates folded in."""
        r = self.rates
        if family == "comm":
            (i1, i2, w1, w2, y1, y2), latency, overhead = sig
            return (i1, i2, w1 * n, w2 * n, y1 * n, y2 * n, latency * n, overhead * n)
        if family == "vector":
            (i1, i2, f1, f2, y1, y2), overhead = sig
            return (i1, i2, f1 * n, f2 * n, y1 * n, y2 * n, overhead * n)
        streams = r.gemv_row_s > 0 or r.gemm_memory_eff is not None
        if family == "linear":
            (im, cm), (k, n_cols, batch), xc, (y1, y0), dq, op_peak, weight, overhead = sig
            single = streams and batch == 1  # a single product streams its weights
            # column tiles: each shape's count over all products, and the least padding
            columns = tuple((tn, batch * -(-n_cols // tn)) for tn in r.tile_ns)
            padded_n, tn_best, _ = fit(n_cols, r.tile_ns)
            return (
                im,
                cm,
                columns,
                batch * padded_n,  # padded columns, all products
                batch * padded_n // tn_best,  # their column tiles
                r.compute_units / max(1.0, k / K_SLICE),  # tiles that fill one wave
                2.0 * k,  # FLOPs per output element
                2.0 * k * n_cols * batch,  # FLOPs per row m
                xc,
                y1,
                y0,
                dq * n,
                n / (op_peak * r.compute_eff),
                n / (r.bandwidth * r.memory_eff),
                n_cols * r.gemv_row_s * n if single else 0.0,
                n / (r.bandwidth * r.gemm_memory_eff) if single and r.gemm_memory_eff else 0.0,
                n / op_peak,
                n / r.bandwidth,
                n,
                weight,
                overhead * n,
            )
        dims, extra, byte_pairs, (idq, cdq), rate, op_peak, weight, overhead = sig
        return (
            *dims[0],
            *dims[1],
            *dims[2],
            *dims[3],
            *extra,
            *byte_pairs,
            idq,
            cdq * rate * n,
            n / (op_peak * r.compute_eff),
            n / (r.bandwidth * r.memory_eff),
            r.gemv_row_s * n,
            n / (r.bandwidth * r.gemm_memory_eff) if r.gemm_memory_eff else 0.0,
            n / op_peak,
            n / r.bandwidth,
            n,
            weight,
            overhead * n,
        )

    # -----------------------------------------------------------------------------------------
    # Evaluation.

    def for_phase(self, phase: str) -> Plan:
        """The plan of `phase` ("prefill", "decode"): this one unless the phases differ."""
        return self._phases.get(phase, self)

    def kv_bytes(self, context: int) -> float:
        """KV-cache bytes of one sequence of `context` tokens on a device (windowed layers keep
        min(context, window) of them)."""
        if self._kv_windowed:
            return self.graph.kv_bytes(context)
        return self.kv_bytes_per_token * context

    def values(self, point: Point) -> tuple:
        """The symbols' values at `point`: b (⌈b/g⌉ per attention group), s, t, s_logits, then
        the derived symbols, computed from the whole batch's point."""
        if self._plain:
            return point
        b, s, t, s_logits, s_enc = point
        g = self.groups
        local = -(-b // g) if g > 1 else b
        return (local, s, t, s_logits, s_enc, *(d.fn(b, s, t, s_logits) for d in self.derived))

    def env(self, point: Point) -> dict[str, float]:
        """Every symbol's value at `point`, by name (to evaluate an op's expressions)."""
        names = SYMBOLS + tuple(d.name for d in self.derived)
        return dict(zip(names, self.values(point), strict=True))

    def monomials(self, point: Point) -> list:
        vals = self.values(point)
        M = [1]
        for parent, sym in self.recipe:
            M.append(M[parent] * vals[sym])
        return M

    def evaluate(self, point: Point) -> Totals:
        """The pass's totals at `point`."""
        return self._run(self._fast, self.monomials(point), None)

    def rows(self, point: Point) -> tuple[Row, ...]:
        """One row per op at `point`, in execution order."""
        sink: list = []
        self._run(self._rows, self.monomials(point), sink)
        ops = list(self.graph.ops())
        env = self.env(point)
        rows = []
        for index, t_compute, t_memory, t_comm, overhead, time, roof, bound, flops, mm in sorted(
            sink, key=lambda entry: entry[0]
        ):
            segment, op = ops[index]
            n = segment.count
            read, written = op.bytes_read.value(env) * n, op.bytes_written.value(env) * n
            rows.append(
                Row(
                    op,
                    segment.name,
                    n,
                    flops,
                    mm,
                    read,
                    written,
                    t_compute,
                    t_memory,
                    t_comm,
                    overhead,
                    time,
                    roof,
                    bound,
                )  # fmt: skip
            )
        return tuple(rows)

    def _run(self, terms: tuple, M: list, sink: list | None) -> Totals:
        r = self.rates
        vector, linear, gemm, comm = terms
        comp = mem = over = comm_time = comm_total = roof = 0.0
        flops = mm_flops = nbytes = 0.0
        w_comp = w_mem = w_over = 0.0
        icv, ibm, ipv, ibw = self._vector_rates
        overhead_bound, compute_bound, memory_bound = OVERHEAD, COMPUTE, MEMORY
        for i1, i2, f1, f2, y1, y2, o, index in vector:
            x1, x2 = M[i1], M[i2]
            f = f1 * x1 + f2 * x2
            y = y1 * x1 + y2 * x2
            tm, tb = f * icv, y * ibm
            rf, rb = f * ipv, y * ibw
            rl = rf if rf > rb else rb
            busy = tm + tb
            tt = busy + o
            if o > busy:
                over += tt
                bound = overhead_bound
            elif tm >= tb:
                comp += tt
                bound = compute_bound
            else:
                mem += tt
                bound = memory_bound
            roof += rl
            flops += f
            nbytes += y
            if sink is not None:
                sink.append((index, tm, tb, 0.0, o, tt, rl, bound, f, 0.0))
        tms, tns, units = r.tile_ms, r.tile_ns, r.compute_units
        last_m = 0
        for (
            im, cm, columns, padded_n, nt, waves, two_k, row_flops, xc, y1, y0, dq,
            ipc, ibmc, rowc, ibgc, ipk, ibwc, n_inst, is_weight, o, index,
        ) in linear:  # fmt: skip
            m = cm * M[im]
            if m != last_m:  # qkv, out, gate, up, down share m = b·s
                padded_m, _, mt = fit(m, tms)
                last_m = m
            # The least padding on both sides is the cheapest shape when its tiles fill a
            # wave (no cheaper shape exists); otherwise compare every shape (roofline).
            if not dq and mt * nt >= waves:
                area, mtc = padded_m * padded_n, mt
            else:
                area, mtc = cheapest_tiles(m, columns, waves, r, two_k * ipc, dq)
            extra = xc * m  # bias adds in the epilogue
            mm = row_flops * m
            f = mm + extra
            tm = (two_k * area + extra) * ipc
            if dq:  # weight-only: unpack the weights once per m-tile
                tm += dq * mtc
            y = y1 * m + y0
            tb = y * ibmc
            if rowc:  # a single product streams its weights (CPU BLAS): a time per row
                tb += rowc
            if ibgc and m > 1:  # and, from m = 2, at least the packed GEMM's time
                packed = y * ibgc
                if packed > tb:
                    tb = packed
            rf, rb = f * ipk, y * ibwc
            rl = rf if rf > rb else rb
            busy = tm + tb
            tt = busy + o
            if o > busy:
                over += tt
                bound = overhead_bound
                if is_weight:
                    w_over += tt
            elif tm >= tb:
                comp += tt
                bound = compute_bound
                if is_weight:
                    w_comp += tt
            else:
                mem += tt
                bound = memory_bound
                if is_weight:
                    w_mem += tt
            roof += rl
            flops += f * n_inst
            mm_flops += mm * n_inst
            nbytes += y * n_inst
            if sink is not None:
                sink.append((index, tm, tb, 0.0, o, tt, rl, bound, f * n_inst, mm * n_inst))
        for (
            im, cm, ik, ck, in_, cn, ib, cb, ix, cx, ix2, cx2, j1, y1, j2, y2, j3, y3, j4, y4,
            idq, cdq,
            ipc, ibmc, rowc, ibgc, ipk, ibwc, n_inst, is_weight, o, index,
        ) in gemm:  # fmt: skip
            m, k, n, bt = cm * M[im], ck * M[ik], cn * M[in_], cb * M[ib]
            if m != last_m:  # attention's two products share m = s
                padded_m, _, mt = fit(m, tms)
                last_m = m
            padded_n, tn_best, nt = fit(n, tns)
            waves = units / (k / K_SLICE if k > K_SLICE else 1.0)
            unpack = cdq * M[idq] if cdq else 0.0
            if not unpack and bt * mt * nt >= waves:  # as for linear layers, above
                area, mtc = padded_m * padded_n * bt, mt
            else:
                columns = tuple((tn_, bt * -(-n // tn_)) for tn_ in tns)
                area, mtc = cheapest_tiles(m, columns, waves, r, 2.0 * k * ipc, unpack)
            extra = cx * M[ix] + cx2 * M[ix2]  # bias adds, fused element-wise work (epilogue)
            mm = 2.0 * m * k * n * bt
            f = mm + extra
            tm = (2.0 * k * area + extra) * ipc
            if unpack:  # weight-only: unpack the weights once per m-tile
                tm += unpack * mtc
            y = y1 * M[j1] + y2 * M[j2] + y3 * M[j3] + y4 * M[j4]
            tb = y * ibmc
            if (bt == 1 or is_weight) and (rowc or ibgc):
                # a single product streams its weights (CPU BLAS); so does each of a grouped
                # GEMM's products with its own weights (routed experts: bt = e_t of them)
                tb += n * rowc * bt
                if ibgc and m > 1:
                    packed = y * ibgc
                    if packed > tb:
                        tb = packed
            rf, rb = f * ipk, y * ibwc
            rl = rf if rf > rb else rb
            busy = tm + tb
            tt = busy + o
            if o > busy:
                over += tt
                bound = overhead_bound
                if is_weight:
                    w_over += tt
            elif tm >= tb:
                comp += tt
                bound = compute_bound
                if is_weight:
                    w_comp += tt
            else:
                mem += tt
                bound = memory_bound
                if is_weight:
                    w_mem += tt
            roof += rl
            flops += f * n_inst
            mm_flops += mm * n_inst
            nbytes += y * n_inst
            if sink is not None:
                sink.append((index, tm, tb, 0.0, o, tt, rl, bound, f * n_inst, mm * n_inst))
        for i1, i2, w1, w2, y1, y2, latency, o, index in comm:
            x1, x2 = M[i1], M[i2]
            wire = w1 * x1 + w2 * x2  # seconds on the link, all instances
            tc = latency + wire
            comm_time += tc
            comm_total += tc + o
            roof += wire
            nbytes += y1 * x1 + y2 * x2
            if sink is not None:
                sink.append((index, 0.0, 0.0, tc, o, tc + o, wire, COMMUNICATION, 0.0, 0.0))
        # the bound holding the most time; ties go to the first of compute, memory, …
        bound, best = COMPUTE, comp
        if mem > best:
            bound, best = MEMORY, mem
        if comm_total > best:
            bound, best = COMMUNICATION, comm_total
        if over > best:
            bound = overhead_bound
        weights, best = MEMORY, 0.0  # memory when there is no weight matmul
        if w_comp > best:
            weights, best = COMPUTE, w_comp
        if w_mem > best:
            weights, best = MEMORY, w_mem
        if w_over > best:
            weights = OVERHEAD
        time = comp + mem + comm_total + over
        return Totals(
            flops, mm_flops, nbytes, time, roof, self.overhead_s, comm_time, bound, weights
        )


def time_op(
    op: Op, rates: Rates, point: Point | None = None, links: dict | None = None, count: int = 1
) -> Row:
    """`count` instances of one op, timed alone at `point` (default b = s = t = s_logits = 1):
    the time model applied to a single op, for hand-worked cases and `explain`."""
    plan = Plan(Graph((Segment(op.name, (op,), count),)), rates, links or {})
    return plan.rows(point or Point(1, 1, 1, 1))[0]


# ---------------------------------------------------------------------------------------------
# Building plans, once per (model, device, the workload's static fields).


def check(model: ModelConfig, hw: HardwareSpec, w: Workload) -> None:
    """Reject what cannot run: tp that does not split the heads, a dtype the device lacks, an
    expert layout that does not fit the devices, options the model has no use for."""
    shard(model, Layout(tp=w.tp, ep=w.ep, dp_attention=w.dp_attention))
    if w.tp > 1:
        link(hw, w.tp)
    if w.ep > 1 and w.dp_attention:
        link(hw, w.ep, axis="ep")
    hw.peak_flops(w.dtype)  # the dtype combinations themselves are the Workload's to check
    if w.experts_touched is not None:
        if not model.moe:
            raise SpecError(f"experts_touched: {model.name} has no experts")
        if w.experts_touched > model.num_experts:
            raise SpecError(
                f"experts_touched: {w.experts_touched:g} exceeds the {model.num_experts} "
                f"experts of {model.name}"
            )
    if w.mla != "auto" and not model.mla:
        raise SpecError(f"mla: {model.name} has no latent attention")
    problem = static_workload_problem(model, w)  # encoders: --head, no KV cache
    if problem:
        raise SpecError(problem)


def compile_plan(
    model: ModelConfig, hw: HardwareSpec, w: Workload, phase: Phase = Phase.PREFILL
) -> Plan:
    """The plan of a forward pass of `model` on `hw` with `w`'s dtypes and layout, with the
    decode plan attached when the phases need different graphs."""
    check(model, hw, w)
    links = {Axis.TP: link(hw, w.tp)} if w.tp > 1 else {}
    if w.ep > 1 and w.dp_attention:
        links[Axis.EP] = link(hw, w.ep, axis="ep")
    ctx = Ctx.of(model, w, phase)
    plan = Plan(build_graph(ctx), rates(hw, w), links, ctx)
    if phase is Phase.PREFILL and phase_dependent(model, w):
        decode = Ctx.of(model, w, Phase.DECODE)
        plan._phases[Phase.DECODE.value] = Plan(build_graph(decode), plan.rates, links, decode)
    if phase is Phase.PREFILL and model.architecture == "encoder-decoder":  # the encoder's pass
        encode = Ctx.of(model, w, Phase.ENCODE)
        plan._phases[Phase.ENCODE.value] = Plan(build_graph(encode), plan.rates, links, encode)
    return plan


#: Plans kept per process (a sweep over devices and dtypes needs a few dozen).
PLAN_CACHE_SIZE = 256
_plans: OrderedDict = OrderedDict()


def plan_for(model: ModelConfig, hw: HardwareSpec, w: Workload) -> Plan:
    """The cached plan for (model, hw, w's static fields). Specs are compared by identity first
    (the catalog hands out one object per file), then by value."""
    static = w.static_key()
    key = (id(model), id(hw), static)
    entry = _plans.get(key)
    if entry is not None and entry[0] is model and entry[1] is hw:
        _plans.move_to_end(key)  # least recently used goes first
        return entry[2]
    by_value = (model.model_dump_json(), hw.model_dump_json(), static)
    entry = _plans.get(by_value)
    if entry is None:
        entry = (model, hw, compile_plan(model, hw, w))
        _plans[by_value] = entry
    else:
        _plans.move_to_end(by_value)
    _plans[key] = entry
    _plans.move_to_end(key)
    while len(_plans) > PLAN_CACHE_SIZE:
        _plans.popitem(last=False)
    return entry[2]
