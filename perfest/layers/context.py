"""What every layer builder needs: the model, its per-device widths as symbols, and dtypes.

A layer builder is a pure function of a `Ctx`; it returns ops written in the free symbols of a
pass (b, s, t, s_logits: perfest.symbols) and the model's sizes as valued symbols, so one
definition serves every batch and length.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfest.enums import StrEnum
from perfest.ops import Role, Tensor
from perfest.sharding import Layout, Shard, shard
from perfest.specs import DTYPE_BYTES, SCALE_BYTES_PER_WEIGHT, ModelConfig, Workload
from perfest.symbols import Expr, Sym, b, expr, mul, s

#: Bytes per element of a token id (int64, as PyTorch embeds them).
TOKEN_ID_BYTES = 8.0


class Fusion(StrEnum):
    """Which element-wise work shares a kernel with its neighbours (`--fusion`; inference).

    none     eager PyTorch: every element-wise op is its own kernel, reading and writing
             memory (the gated MLP's activation and its multiply, RoPE's rotate/multiply/add
             steps and its tables, K and V copied into the cache apart, eager attention's
             scaling and its grouped-query K/V repeat, each add of a parallel block's residual)
    default  the kernels of serving engines: bias in the matmul epilogue, act(gate)·up in one
             kernel, RoPE one kernel, the KV write one kernel, norm and residual one kernel
             each, flash attention one kernel (what perfest predicts unless told)
    full     what a compiler (torch.compile, XLA) can reach: every element-wise chain folded
             into the neighbouring matrix product (perfest.layers.fusion)
    """

    NONE = "none"
    DEFAULT = "default"
    FULL = "full"


class Phase(StrEnum):
    """The pass a graph is built for, where a layer's form depends on it: latent attention is
    naive in prefill and absorbed in decode by default (perfest.layers.mla), and
    `--experts-touched` overrides the experts a decode step touches (perfest.layers.moe)."""

    PREFILL = "prefill"
    DECODE = "decode"
    ENCODE = "encode"  # an encoder-decoder's encoder pass (perfest.encoder_graph)


def phase_dependent(model: ModelConfig, w: Workload) -> bool:
    """Whether prefill and decode need different graphs for `model` under `w`."""
    return (
        (model.mla and w.mla == "auto")
        or (model.moe and w.experts_touched is not None)
        or model.architecture == "encoder-decoder"  # cross K/V projected in prefill only
    )


def _size(dtype: str, narrower_than: str) -> float:
    """Bytes per element of a weight stored as `dtype`, with its quantization scales when it
    is narrower than the activations it multiplies (weight-only)."""
    size = DTYPE_BYTES[dtype]
    if size < DTYPE_BYTES[narrower_than]:
        size += SCALE_BYTES_PER_WEIGHT.get(dtype, 0.0)
    return size


@dataclass(frozen=True, slots=True)
class Dtypes:
    """Storage dtypes and bytes per element: `act` activations, `weight` the blocks' matmul
    weights (quantization scales included), `emb` embeddings, norms and LM head (kept in the
    activation dtype under weight-only quantization, as AWQ/GPTQ checkpoints do), `kv` the
    KV cache."""

    act: str
    weight: str
    emb: str
    kv: str
    act_size: float
    weight_size: float
    emb_size: float
    kv_size: float
    expert: str = ""  # the routed experts' weights: `--weight-dtype`, else the model's format
    expert_size: float = 0.0

    @classmethod
    def of(cls, w: Workload, model: ModelConfig | None = None) -> Dtypes:
        act = DTYPE_BYTES[w.dtype]
        weight = DTYPE_BYTES[w.w_dtype]
        if w.weight_only:
            weight += SCALE_BYTES_PER_WEIGHT.get(w.w_dtype, 0.0)
        emb_dtype = w.dtype if w.weight_only else w.w_dtype
        expert = w.w_dtype
        if w.weight_dtype is None and model is not None and model.expert_weight_dtype:
            expert = model.expert_weight_dtype
        return cls(
            act=w.dtype,
            weight=w.w_dtype,
            emb=emb_dtype,
            kv=w.cache_dtype,
            act_size=act,
            weight_size=weight,
            emb_size=DTYPE_BYTES[emb_dtype],
            kv_size=DTYPE_BYTES[w.cache_dtype],
            expert=expert,
            expert_size=_size(expert, w.dtype),
        )


@dataclass(frozen=True, slots=True)
class Ctx:
    """A model on one device: sizes as symbols (per-device widths from the shard), tensor
    factories at the right dtype, and the attention kernel (flash or eager)."""

    model: ModelConfig
    shard: Shard
    dt: Dtypes
    flash: bool = True
    phase: Phase = Phase.PREFILL
    workload: Workload | None = None  # the MoE and latent-attention options (None: defaults)
    # Prefixes the names of the tensors built, so that two segments' layers hold distinct
    # tensors (a tensor named alike in two segments is one shared tensor: perfest.graph).
    scope: str = ""
    # --- Training (perfest.training) -----------------------------------------------------
    # training: no KV cache (keys and values are activations of the pass), the LM head feeds
    # the loss over all positions (no logits all-gather), and tensor-parallel regions are
    # entered explicitly (Megatron's copy / all-gather), so their backward can be derived.
    training: bool = False
    sequence_parallel: bool = False  # norms, residuals, dropout on b·s/tp rows (Korthikanti)
    cp: int = 1  # context parallelism: this device's queries attend to keys gathered over cp
    dropout: bool = False  # dropout after attention probabilities and each sub-block

    @classmethod
    def of(cls, model: ModelConfig, w: Workload, phase: Phase = Phase.PREFILL) -> Ctx:
        layout = Layout(tp=w.tp, ep=w.ep, dp_attention=w.dp_attention)
        return cls(
            model, shard(model, layout), Dtypes.of(w, model), w.attention == "flash", phase, w
        )

    @property
    def fusion(self) -> Fusion:
        """The fusion level: the workload's (`--fusion`), default without one (training)."""
        return Fusion(self.workload.fusion) if self.workload is not None else Fusion.DEFAULT

    @property
    def mla_form(self) -> str:
        """Latent attention's form, "naive" or "absorbed" (perfest.layers.mla): `--mla`, or
        by phase when "auto"."""
        choice = self.workload.mla if self.workload is not None else "auto"
        if choice != "auto":
            return choice
        return "absorbed" if self.phase is Phase.DECODE else "naive"

    # Sizes (symbols with their per-device values).
    @property
    def h(self) -> Sym:
        return Sym("h", self.model.h)

    @property
    def d(self) -> Sym:
        return Sym("d", self.model.d)

    @property
    def n_h(self) -> Sym:
        return Sym("n_h", self.shard.n_h)

    @property
    def n_kv(self) -> Sym:
        return Sym("n_kv", self.shard.n_kv)

    @property
    def i(self) -> Sym:
        return Sym("i", self.shard.i)

    @property
    def V(self) -> Sym:
        return Sym("V", self.shard.V)

    @property
    def d_rope(self) -> Sym:
        return Sym("d_rope", self.model.rope_dim)

    @property
    def rows(self) -> Expr:
        """Rows of the residual stream on this device: b·s, or b·s/tp with sequence
        parallelism (each device holds its share of the sequence between the TP regions)."""
        if self.sequence_parallel and self.shard.split:
            return mul(b, s, Sym("1/tp", 1 / self.shard.tp))
        return mul(b, s)

    # Tensors.
    def act(self, name: str, *shape: Expr | int) -> Tensor:
        """An activation in the compute dtype."""
        dt = self.dt
        return Tensor(self.scope + name, Role.ACTIVATION, _shape(shape), dt.act, dt.act_size)

    def weight(self, name: str, *shape: Expr | int) -> Tensor:
        """A block matmul weight, in the weight dtype (quantized under weight-only)."""
        dt = self.dt
        return Tensor(self.scope + name, Role.WEIGHT, _shape(shape), dt.weight, dt.weight_size)

    def param(self, name: str, *shape: Expr | int) -> Tensor:
        """Embeddings, norms and the LM head: never quantized below the activation dtype."""
        return Tensor(self.scope + name, Role.WEIGHT, _shape(shape), self.dt.emb, self.dt.emb_size)

    def bias(self, name: str, *shape: Expr | int) -> Tensor:
        """A bias, added in the matmul's epilogue in the activation dtype."""
        return Tensor(self.scope + name, Role.WEIGHT, _shape(shape), self.dt.act, self.dt.act_size)

    def expert_weight(self, name: str, *shape: Expr | int) -> Tensor:
        """A bank of routed experts' weights (first dimension: the experts held), in the
        experts' weight format; a token uses k of the model's E (`routed`)."""
        dt = self.dt
        return Tensor(
            self.scope + name, Role.WEIGHT, _shape(shape), dt.expert, dt.expert_size, routed=True
        )

    def expert_bias(self, name: str, *shape: Expr | int) -> Tensor:
        """A bank of routed experts' biases, in the activation dtype (`routed`, as the weights)."""
        dt = self.dt
        return Tensor(self.scope + name, Role.WEIGHT, _shape(shape), dt.act, dt.act_size, True)

    def stat(self, name: str, *shape: Expr | int) -> Tensor:
        """Per-row statistics a kernel keeps for its backward (mean, 1/σ, log-sum-exp): fp32."""
        return Tensor(self.scope + name, Role.ACTIVATION, _shape(shape), "fp32", 4.0)

    def mask(self, name: str, *shape: Expr | int) -> Tensor:
        """A dropout mask, one byte per element (PyTorch keeps it as bool/uint8)."""
        return Tensor(self.scope + name, Role.ACTIVATION, _shape(shape), "uint8", 1.0)

    def kv_cache(self, name: str, *shape: Expr | int) -> Tensor:
        return Tensor(self.scope + name, Role.KV_CACHE, _shape(shape), self.dt.kv, self.dt.kv_size)

    def table(self, name: str, *shape: Expr | int, itemsize: float | None = None) -> Tensor:
        """An input that is neither weight nor activation: token ids, RoPE's cos/sin table."""
        size = self.dt.act_size if itemsize is None else itemsize
        dtype = self.dt.act if itemsize is None else "int64"
        return Tensor(name, Role.INPUT, _shape(shape), dtype, size)


def _shape(shape: tuple) -> tuple[Expr, ...]:
    return tuple(expr(dim) for dim in shape)
