"""Ops with operands: what each kernel reads, writes and computes, in symbols.

A FLOP is one multiply or one add, so a multiply-accumulate is 2 FLOPs and the product of an
[m, k] and a [k, n] matrix costs 2·m·k·n FLOPs. Bytes are what a kernel must move to and from
device memory (DRAM/HBM), each tensor at its own element size; caches are assumed to hold
nothing between kernels.

An `Op` names the tensors it touches, each with a role (a weight, an activation, the KV cache,
…), a shape, a dtype and its bytes per element, and how many elements of each it reads and
writes (`Access`). Its FLOPs and bytes are derived from those, never stated twice. Every
size is an expression (perfest.symbols) over the pass's free symbols b, s, t, s_logits, so
the same definition gives the plan its numbers and `explain` its formulas. Three builders make
every op: `matmul` (the one matrix-product primitive), `elementwise`, `collective`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from perfest.enums import StrEnum
from perfest.symbols import ONE, ZERO, Expr, expr, mul, total


class Role(StrEnum):
    """What a tensor is, which decides where its bytes are counted and how it is trained."""

    WEIGHT = "weight"  # parameters: resident for the whole run, counted once in memory
    ACTIVATION = "activation"  # produced and consumed within a pass
    KV_CACHE = "kv_cache"  # keys and values kept across decode steps
    INPUT = "input"  # token ids and position tables: neither weights nor activations
    GRADIENT = "gradient"
    OPTIMIZER_STATE = "optimizer_state"


class Group(StrEnum):
    """The part of the model an op belongs to (rows, validation and plots group by it)."""

    EMBEDDING = "embedding"
    NORM = "norm"
    ATTENTION = "attention"
    MLP = "mlp"
    RESIDUAL = "residual"
    LM_HEAD = "lm_head"
    COMM = "comm"
    OPTIMIZER = "optimizer"


class Fn(StrEnum):
    """What an element-wise op computes, so that its backward can be derived from it
    (perfest.training.backward); matrix products and collectives are derived from their
    `gemm` and `collective` instead."""

    NORM = "norm"  # LayerNorm / RMSNorm over h
    ACTIVATION = "activation"  # the MLP's activation (and gating multiply)
    ROPE = "rope"  # rotary position embedding
    SOFTMAX = "softmax"  # attention's softmax over the keys
    DROPOUT = "dropout"  # random mask and scale
    RESIDUAL = "residual"  # residual add of a sub-block's branches
    GATHER = "gather"  # embedding lookup: rows of a table
    COPY = "copy"  # pure data movement (the KV-cache write)
    LOSS = "loss"  # cross-entropy over the logits
    TO_TP = "to_tp"  # entry of a tensor-parallel region: identity forward, all-reduce backward
    OPTIMIZER = "optimizer"  # an optimizer's update, gradient norm or zeroing


class Kind(StrEnum):
    """How an op runs: matrix units, vector units, pure data movement, or the network."""

    MATMUL = "matmul"
    VECTOR = "vector"
    MEMORY = "memory"
    COMM = "comm"


class CollectiveKind(StrEnum):
    ALL_REDUCE = "all-reduce"
    ALL_GATHER = "all-gather"
    REDUCE_SCATTER = "reduce-scatter"
    ALL_TO_ALL = "all-to-all"  # expert dispatch and combine (perfest.layers.moe)


class Axis(StrEnum):
    """The parallel dimension a collective runs over; the network decides its link."""

    TP = "tp"
    PP = "pp"
    DP = "dp"
    CP = "cp"
    EP = "ep"


@dataclass(frozen=True, slots=True)
class Tensor:
    """A tensor on one device: its role, shape (symbols), storage dtype and bytes per element
    (quantization scales included). Two ops that name the same Tensor share it (a tied
    embedding and LM head). `routed`: a bank of routed experts (first dimension), of which a
    token uses k of E (perfest.layers.moe; active parameters count k/E of it)."""

    name: str
    role: Role
    shape: tuple[Expr, ...]
    dtype: str
    itemsize: float
    routed: bool = False

    @property
    def elements(self) -> Expr:
        return mul(*self.shape)

    @property
    def nbytes(self) -> Expr:
        return mul(self.elements, self.itemsize)


@dataclass(frozen=True, slots=True)
class Access:
    """`elements` of `tensor` moved by one op (all of it unless a part is gathered)."""

    tensor: Tensor
    elements: Expr

    @property
    def nbytes(self) -> Expr:
        return mul(self.elements, self.tensor.itemsize)


@dataclass(frozen=True, slots=True)
class Gemm:
    """[m, k] @ [k, n] → [m, n], `batch` times; `a`, `b`, `c` are the operands (for deriving
    the backward products). b_batch < batch when several products share one B (grouped-query
    attention's kv heads; a weight shared by the batch is a single product)."""

    m: Expr
    k: Expr
    n: Expr
    batch: Expr
    a: Tensor
    b: Tensor
    c: Tensor
    b_batch: Expr = ONE

    @property
    def flops(self) -> Expr:
        """2·batch·m·k·n (written batch first: 2·b·n_h·s·d·t reads as the attention formula)."""
        return mul(2, self.batch, self.m, self.k, self.n)


@dataclass(frozen=True, slots=True)
class Collective:
    """A collective among `peers` devices of a parallel `axis`, over a message of `message`
    bytes per device. Wire bytes each device sends: ring all-reduce 2(N−1)/N of the message
    (2(N−1) steps), ring all-gather and reduce-scatter (N−1)/N (N−1 steps). All-to-all: each
    device sends the (N−1)/N of its buffer bound for the other N−1 devices (1/N stays home),
    all pairs at once, as N−1 concurrent sends; the same (N−1)/N wire bytes, so `steps`
    counts N−1 and the α–β time is α + (N−1)/N·message / link, on the link the ranks span."""

    kind: CollectiveKind
    axis: Axis
    peers: int
    message: Expr

    @property
    def steps(self) -> int:
        n = self.peers
        return 2 * (n - 1) if self.kind is CollectiveKind.ALL_REDUCE else n - 1

    @property
    def wire_bytes(self) -> Expr:
        return mul(self.message, self.steps / self.peers)


@dataclass(frozen=True, slots=True)
class Op:
    """One kernel-sized step of a pass (per instance; a segment repeats it per layer)."""

    name: str
    group: Group
    kind: Kind
    flops: Expr
    reads: tuple[Access, ...] = ()
    writes: tuple[Access, ...] = ()
    gemm: Gemm | None = None
    collective: Collective | None = None
    kernels: int = 1  # launches per instance (0 when fused into a neighbour)
    dequant: Expr = ZERO  # weight elements a weight-only kernel unpacks per m-tile
    saves: tuple[Access, ...] = ()  # what the backward pass needs kept from the forward
    fn: Fn | None = None  # what an element-wise op computes (its backward derives from it)

    @property
    def bytes_read(self) -> Expr:
        return total(access.nbytes for access in self.reads)

    @property
    def bytes_written(self) -> Expr:
        return total(access.nbytes for access in self.writes)

    @property
    def weights(self) -> tuple[Tensor, ...]:
        """The weight tensors this op reads."""
        return tuple(a.tensor for a in self.reads if a.tensor.role is Role.WEIGHT)

    @property
    def activation_product(self) -> bool:
        """A matrix product of two activations (attention's q·kᵀ and p·v, and their backward
        products): no weight operand and no weight gradient, so W8A8 formats, which quantize
        the linear layers, do not apply. A linear layer's wgrad (activation × gradient → the
        weight's gradient) is a linear-layer product."""
        g = self.gemm
        return g is not None and not {g.a.role, g.b.role, g.c.role} & _LINEAR_ROLES


#: Roles that make a product part of a linear layer: a weight operand or a weight's gradient.
_LINEAR_ROLES = frozenset((Role.WEIGHT, Role.GRADIENT))


def matmul(
    name: str,
    group: Group,
    a: Tensor,
    b: Tensor,
    c: Tensor,
    *,
    m: Expr | int,
    k: Expr | int,
    n: Expr | int,
    batch: Expr | int = ONE,
    b_batch: Expr | int | None = None,
    c_batch: Expr | int | None = None,
    read_a: bool = True,
    write_c: bool = True,
    bias: Tensor | None = None,
    kernels: int = 1,
) -> Op:
    """[m, k] @ [k, n] → [m, n], `batch` times: 2·m·k·n·batch FLOPs (+ m·n·batch for a bias).

    Bytes: A read once (m·k·batch), B read once per distinct B (k·n·b_batch), the bias (n),
    C written once per distinct C (m·n·c_batch: c_batch < batch when products accumulate into
    a shared output, as a backward pass does into a shared weight). `read_a=False` and
    `write_c=False` mark an operand that stays on chip in a fused kernel. A weight B stored
    narrower than A (int4/int8/fp8 weights with 16-bit activations: weight-only quantization)
    is unpacked in the kernel: `dequant` counts its k·n·b_batch elements, once per m-tile
    (perfest.roofline).
    """
    m, k, n, batch = expr(m), expr(k), expr(n), expr(batch)
    b_batch = batch if b_batch is None else expr(b_batch)
    c_batch = batch if c_batch is None else expr(c_batch)
    gemm = Gemm(m, k, n, batch, a, b, c, b_batch)
    flops = gemm.flops + (mul(m, n, batch) if bias is not None else ZERO)
    reads = [Access(a, mul(m, k, batch))] if read_a else []
    reads.append(Access(b, mul(k, n, b_batch)))
    if bias is not None:
        reads.append(Access(bias, n))
    writes = (Access(c, mul(m, n, c_batch)),) if write_c else ()
    weight_only = b.role is Role.WEIGHT and b.itemsize < a.itemsize
    # dB needs A, dA needs B: a weight is kept anyway, an activation must be saved
    saves = tuple(Access(x, mul(*dims)) for x, dims in ((a, (m, k, batch)), (b, (k, n, b_batch)))
                  if x.role is Role.ACTIVATION)  # fmt: skip
    return Op(
        name,
        group,
        Kind.MATMUL,
        flops,
        tuple(reads),
        writes,
        gemm=gemm,
        kernels=kernels,
        dequant=mul(k, n, b_batch) if weight_only else ZERO,
        saves=saves,
    )


def fold(
    op: Op,
    flops: Expr | float = ZERO,
    reads: tuple[Access, ...] = (),
    writes: tuple[Access, ...] | None = None,
) -> Op:
    """`op` with element-wise work fused into its prologue or epilogue (perfest.layers.fusion):
    the extra FLOPs and reads (what the fused work needs besides the op's own operands) and,
    when given, the writes that replace the op's. The fused work's intermediates never reach
    memory, so they appear nowhere."""
    return replace(
        op,
        flops=op.flops + flops,
        reads=op.reads + reads,
        writes=op.writes if writes is None else writes,
    )


def grad(x: Tensor, dtype: tuple[str, float] | None = None) -> Tensor:
    """The gradient of `x`, in its shape: a weight's gradient has role GRADIENT (kept until
    the optimizer step and reduced over data parallelism), an activation's is an ACTIVATION
    (consumed within the backward pass). `dtype` (name, bytes per element) overrides x's."""
    role = Role.GRADIENT if x.role is Role.WEIGHT else Role.ACTIVATION
    name, size = dtype or (x.dtype, x.itemsize)
    return Tensor(f"d{x.name}", role, x.shape, name, size)


def matmul_backward(
    op: Op, *, weight_grad: tuple[str, float] | None = None, accumulate: bool = False
) -> tuple[Op, ...]:
    """The backward products of C = A·B, derived from the forward op:

        dA = dC·Bᵀ   [m, n] @ [n, k]   2·m·k·n·batch FLOPs   (skipped for a graph input)
        dB = Aᵀ·dC   [k, m] @ [m, n]   2·m·k·n·batch FLOPs   (accumulated into b_batch Bs)

    so a linear layer's backward costs 2× its forward (Narayanan et al. 2021, §3.3 of
    "Efficient large-scale language model training on GPU clusters"). A bias adds the
    reduction db = Σ_rows dC.

    Training (perfest.training) stores weight gradients in `weight_grad`'s dtype (fp32 under
    mixed precision, as Megatron-LM's main gradients) and, with `accumulate`, adds each
    micro-batch's dB into them (C += Aᵀ·dC: the gradient is read as well as written).
    """
    g = op.gemm
    if g is None:
        raise TypeError(f"{op.name} is not a matrix product")
    d_c = grad(g.c)
    ops = []
    if g.a.role in (Role.ACTIVATION, Role.GRADIENT):
        ops.append(
            matmul(
                f"{op.name}.dgrad",
                op.group,
                d_c,
                g.b,
                grad(g.a),
                m=g.m,
                k=g.n,
                n=g.k,
                batch=g.batch,
                b_batch=g.b_batch,
            )  # fmt: skip
        )
    # dB accumulates into b_batch distinct gradients (the weight; a kv head's, in GQA)
    dtype = weight_grad if g.b.role is Role.WEIGHT else None
    ops.append(
        _accumulating(
            matmul(
                f"{op.name}.wgrad",
                op.group,
                g.a,
                d_c,
                grad(g.b, dtype),
                m=g.k,
                k=g.m,
                n=g.n,
                batch=g.batch,
                c_batch=g.b_batch,
            ),
            accumulate and g.b.role is Role.WEIGHT,
        )  # fmt: skip
    )
    bias = next((a.tensor for a in op.reads if a.tensor.role is Role.WEIGHT and a.tensor
                 is not g.b), None)  # fmt: skip
    if bias is not None:
        rows = mul(g.m, g.batch)
        ops.append(
            _accumulating(
                elementwise(
                    f"{op.name}.bias_grad",
                    op.group,
                    mul(rows, g.n),
                    1,
                    (Access(d_c, mul(rows, g.n)),),
                    (read(grad(bias, weight_grad)),),
                ),
                accumulate,
            )  # fmt: skip
        )
    return tuple(ops)


def _accumulating(op: Op, accumulate: bool) -> Op:
    """`op`, reading what it writes when it adds into an existing gradient."""
    return replace(op, reads=op.reads + op.writes) if accumulate else op


def elementwise(
    name: str,
    group: Group,
    elements: Expr,
    flops_per_element: float,
    reads: tuple[Access, ...],
    writes: tuple[Access, ...],
    *,
    kernels: int = 1,
    fn: Fn | None = None,
    saves: tuple[Access, ...] = (),
) -> Op:
    """An element-wise or reduction kernel over `elements` values, run on the vector units
    (a pure data movement when it does no arithmetic); `fn` says what it computes and `saves`
    what its backward needs."""
    kind = Kind.VECTOR if flops_per_element else Kind.MEMORY
    flops = mul(elements, flops_per_element)
    return Op(name, group, kind, flops, reads, writes, kernels=kernels, saves=saves, fn=fn)


def collective(name: str, kind: CollectiveKind, axis: Axis, peers: int, buffer: Tensor) -> Op:
    """A ring collective over `buffer` on each of `peers` devices. Each device reads what it
    sends and writes what it receives: the wire bytes both ways. The reduction's adds overlap
    the transfer and are not counted."""
    comm = Collective(kind, axis, peers, buffer.nbytes)
    moved = (Access(buffer, mul(buffer.elements, comm.steps / peers)),)
    return Op(name, Group.COMM, Kind.COMM, ZERO, moved, moved, collective=comm)


def read(tensor: Tensor, elements: Expr | None = None) -> Access:
    """An access to all of `tensor`, or to `elements` of it."""
    return Access(tensor, tensor.elements if elements is None else expr(elements))
