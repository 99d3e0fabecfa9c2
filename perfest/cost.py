"""Costs as values, and the primitives every layer is written in.

A FLOP is one multiply or one add, so a multiply-accumulate is 2 FLOPs and the product of an
[m, k] and a [k, n] matrix costs 2·m·k·n FLOPs. Bytes are what the kernel must move to and from
device memory (DRAM/HBM), each tensor at its own dtype size; caches are assumed to hold nothing
between kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

OpKind = Literal["matmul", "vector", "memory", "comm"]


@dataclass(frozen=True, slots=True)
class Cost:
    """FLOPs and bytes of one piece of work. Adds and scales like a vector."""

    flops: float = 0.0
    bytes_read: float = 0.0
    bytes_written: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.flops + other.flops,
            self.bytes_read + other.bytes_read,
            self.bytes_written + other.bytes_written,
        )

    def __mul__(self, k: float) -> Cost:
        return Cost(self.flops * k, self.bytes_read * k, self.bytes_written * k)

    __rmul__ = __mul__

    @property
    def bytes(self) -> float:
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOP/byte (inf for pure compute, 0 for pure data movement)."""
        if self.bytes == 0:
            return float("inf") if self.flops else 0.0
        return self.flops / self.bytes


@dataclass(frozen=True, slots=True)
class Gemm:
    """The shape of a (batched) matrix product [m, k] @ [k, n], repeated `batch` times."""

    m: int
    k: int
    n: int
    batch: int = 1

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.k * self.n * self.batch


@dataclass(frozen=True, slots=True)
class Collective:
    """A ring collective among `peers` devices over a message of `message_bytes` per device.

    all-reduce: 2(N−1) steps moving 2(N−1)/N of the message; all-gather: N−1 steps, (N−1)/N.
    """

    kind: Literal["all-reduce", "all-gather"]
    peers: int
    message_bytes: float

    @property
    def steps(self) -> int:
        n = self.peers
        return 2 * (n - 1) if self.kind == "all-reduce" else n - 1

    @property
    def wire_bytes(self) -> float:
        """Bytes each device sends over its link."""
        return self.steps * self.message_bytes / self.peers


@dataclass(frozen=True, slots=True)
class Op:
    """One kernel-sized step of a forward pass, `count` times (e.g. once per layer)."""

    name: str
    group: str  # embedding | norm | attention | mlp | residual | lm_head | comm
    kind: OpKind
    cost: Cost
    count: int = 1
    gemm: Gemm | None = None
    kernels: int = 1  # kernel launches per instance (0 when fused into a neighbour)
    dequant_elements: float = 0.0  # weight-only quantized elements unpacked per m-tile
    comm: Collective | None = field(default=None)
    activation_product: bool = False  # both operands are activations (attention's q·kᵀ, p·v)

    @property
    def matmul_flops(self) -> float:
        """FLOPs of the matrix products alone (what torch's FlopCounterMode counts)."""
        return self.gemm.flops * self.count if self.gemm else 0.0


def matmul(
    name: str,
    group: str,
    m: int,
    k: int,
    n: int,
    *,
    a_size: float,
    b_size: float,
    c_size: float,
    batch: int = 1,
    b_batch: int | None = None,
    read_a: bool = True,
    write_c: bool = True,
    bias: bool = False,
    weight_only: bool = False,
    activation_product: bool = False,
    kernels: int = 1,
) -> Op:
    """[m, k] @ [k, n] → [m, n], `batch` times: 2·m·k·n·batch FLOPs (plus m·n·batch for a bias).

    Bytes: A read once (m·k·batch), B read once per distinct B (k·n·b_batch; b_batch < batch when
    several products share B, as in grouped-query attention or a weight), C written once.
    `read_a=False` / `write_c=False` mark an operand that stays on chip in a fused kernel.
    `weight_only`: B is an int4/int8 weight dequantized to the activation dtype in the kernel.
    `activation_product`: neither operand is a weight (attention), so W8A8 formats do not apply.
    """
    b_batch = batch if b_batch is None else b_batch
    gemm = Gemm(m, k, n, batch)
    flops = gemm.flops + (m * n * batch if bias else 0)
    read = (m * k * batch * a_size if read_a else 0.0) + k * n * b_batch * b_size
    if bias:
        read += n * c_size
    written = m * n * batch * c_size if write_c else 0.0
    return Op(
        name,
        group,
        "matmul",
        Cost(flops, read, written),
        gemm=gemm,
        kernels=kernels,
        dequant_elements=k * n * b_batch if weight_only else 0.0,
        activation_product=activation_product,
    )


def vector(
    name: str,
    group: str,
    elements: float,
    flops_per_element: float,
    *,
    read: float,
    written: float,
    kernels: int = 1,
) -> Op:
    """An element-wise or reduction kernel over `elements` values, run on the vector units."""
    cost = Cost(elements * flops_per_element, read, written)
    return Op(name, group, "vector" if flops_per_element else "memory", cost, kernels=kernels)


def collective(name: str, kind: str, peers: int, message_bytes: float) -> Op:
    """A ring collective. The reduction's adds overlap the transfer and are not counted."""
    comm = Collective(kind, peers, message_bytes)  # type: ignore[arg-type]
    return Op(name, "comm", "comm", Cost(0.0, comm.wire_bytes, comm.wire_bytes), comm=comm)
