"""The three inputs of an estimate: ModelConfig, HardwareSpec and Workload (frozen pydantic models).

Units are converted once, here: YAML fields carry their unit in the name (`bf16_tflops`,
`memory_bandwidth_gb_s`, `memory_gb`) and the properties return SI values (FLOP/s, byte/s,
byte). GB means 10⁹ bytes, as the vendors print it.

Symbols used across perfest (defined once, here):
    b    batch (sequences)            s    query length (tokens processed in this pass)
    t    context length (keys seen)   L    layers
    h    hidden size                  i    MLP intermediate size
    n_h  query heads                  n_kv key/value heads
    d    head dimension               V    vocabulary size
"""

from __future__ import annotations

from operator import attrgetter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from perfest.errors import SpecError, UnsupportedError
from perfest.variant_checks import attention_problem, moe_problem

#: Bytes per element of each dtype perfest knows (the one list of dtypes; everything else is
#: derived from it). tf32 is stored as fp32; int4 packs two per byte.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "mxfp4": 0.5,
}
DTYPES = tuple(DTYPE_BYTES)
Dtype = Literal[DTYPES]  # type: ignore[valid-type]

#: The HardwareSpec field holding each dtype's dense matmul peak (int4 has none: it is a weight
#: format, computed in the activation dtype).
PEAK_FIELDS = {
    "fp32": "fp32_tflops",
    "tf32": "tf32_tflops",
    "bf16": "bf16_tflops",
    "fp16": "fp16_tflops",
    "fp8": "fp8_tflops",
    "int8": "int8_tops",
}

#: Extra bytes per weight for quantization scales: int4 checkpoints (AWQ, GPTQ) store an fp16
#: scale and zero point per group of 128 weights, 4/128 B; int8 and fp8 use one scale per output
#: channel, which is negligible.
SCALE_BYTES_PER_WEIGHT: dict[str, float] = {"int4": 4 / 128, "mxfp4": 1 / 32}
#: Weight-only formats: stored narrow, computed in the activation dtype (no matmul peak of their
#: own). mxfp4 (OCP Microscaling): 4-bit E2M1 values with a shared 8-bit E8M0 scale per block of
#: 32, 4.25 bits per weight — gpt-oss ships its experts so.
WEIGHT_FORMATS = ("int4", "mxfp4")

_STRICT = ConfigDict(frozen=True, extra="forbid")


class ModelConfig(BaseModel):
    """A decoder-only transformer. Field names follow the Hugging Face config where one exists."""

    model_config = _STRICT

    name: str
    aliases: tuple[str, ...] = ()
    display_name: str = ""
    source: str = ""
    vocab_size: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int | None = Field(default=None, gt=0)
    head_dim: int | None = Field(default=None, gt=0)
    intermediate_size: int = Field(gt=0)
    mlp: Literal["gated", "classic"] = "gated"
    activation: Literal["silu", "gelu", "gelu_tanh", "relu"] = "silu"
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    position: Literal["rope", "learned"] = "rope"
    rotary_dim: int | None = Field(default=None, gt=0)
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    tied_embeddings: bool = False
    parallel_block: bool = False
    max_position_embeddings: int = Field(default=2048, gt=0)

    # --- Mixture of experts (perfest.layers.moe) -------------------------------------------
    # E routed experts of intermediate size i_e per MoE layer, k of them per token (None: a
    # dense model); shared experts run for every token; the first `first_dense_layers` layers
    # have a dense MLP of `intermediate_size`, and after them every `moe_layer_frequency`-th
    # layer is MoE (Qwen's decoder_sparse_step: layer l is MoE iff (l − first + 1) % f == 0).
    num_experts: int | None = Field(default=None, gt=0)
    experts_per_token: int | None = Field(default=None, gt=0)
    expert_intermediate_size: int | None = Field(default=None, gt=0)  # default: intermediate
    shared_experts: int = Field(default=0, ge=0)
    shared_expert_intermediate_size: int | None = Field(default=None, gt=0)  # default: n·i_e
    shared_expert_gate: bool = False  # Qwen2-MoE: sigmoid(x·w_g) scales the shared output
    first_dense_layers: int = Field(default=0, ge=0)
    moe_layer_frequency: int = Field(default=1, gt=0)
    router_scoring: Literal["softmax", "sigmoid"] = "softmax"
    router_bias: bool = False  # a per-expert bias (gpt-oss; DeepSeek-V3's score correction)
    # The routed experts' stored weight format when the checkpoint ships them narrower than the
    # rest (gpt-oss: mxfp4); `--weight-dtype` overrides it for every weight.
    expert_weight_dtype: Dtype | None = None  # type: ignore[valid-type]

    # --- Attention variants: sliding windows, multi-head latent attention ------------------
    # A window of w tokens caps the keys each query attends and the cache a layer keeps; with
    # `global_attention_every: n`, every n-th layer (l with (l + 1) % n == 0) attends globally
    # and the others within the window (gpt-oss: 2; without it every layer is windowed).
    sliding_window: int | None = None
    global_attention_every: int | None = Field(default=None, gt=0)
    attention_sinks: bool = False  # gpt-oss: a learned logit per head in each softmax
    qk_norm: bool = False  # Qwen3: RMSNorm over each head's q and k (γ of size d each)
    # Multi-head latent attention (DeepSeek-V2/V3): queries through a rank-q_lora_rank
    # bottleneck (None: a full projection), keys and values from a cached latent of
    # kv_lora_rank dims plus a shared RoPE key of qk_rope_head_dim (perfest.layers.mla).
    q_lora_rank: int | None = Field(default=None, gt=0)
    kv_lora_rank: int | None = Field(default=None, gt=0)
    qk_nope_head_dim: int | None = Field(default=None, gt=0)
    qk_rope_head_dim: int | None = Field(default=None, gt=0)
    v_head_dim: int | None = Field(default=None, gt=0)

    # --- Encoders and encoder-decoders -------------------------------------------------------

    @model_validator(mode="after")
    def _check_shapes(self) -> ModelConfig:
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ValueError(
                f"num_heads: {self.num_heads} heads do not divide hidden_size {self.hidden_size}"
                " (give head_dim explicitly if the model's heads are not hidden/heads wide)"
            )
        if self.n_h % self.n_kv:
            raise ValueError(f"num_kv_heads: {self.n_kv} kv heads do not divide {self.n_h} heads")
        if self.rotary_dim is not None and self.rotary_dim > self.d:
            raise ValueError(f"rotary_dim: {self.rotary_dim} exceeds head_dim {self.d}")
        problem = moe_problem(self) or attention_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    # Mixture of experts and attention variants (perfest.layers.moe, perfest.layers.mla).
    @property
    def moe(self) -> bool:
        return self.num_experts is not None

    @property
    def i_e(self) -> int:
        """Intermediate size of one routed expert."""
        return self.expert_intermediate_size or self.intermediate_size

    @property
    def i_shared(self) -> int:
        """Intermediate size of the shared experts together (0 without them)."""
        if self.shared_expert_intermediate_size is not None:
            return self.shared_expert_intermediate_size
        return self.shared_experts * self.i_e

    @property
    def mla(self) -> bool:
        return self.kv_lora_rank is not None

    def layer_kinds(self) -> tuple[tuple[bool, bool], ...]:
        """(MoE, windowed) for each layer, in order (the conventions in the field comments)."""
        kinds = []
        for layer in range(self.L):
            moe = (
                self.moe
                and layer >= self.first_dense_layers
                and ((layer - self.first_dense_layers + 1) % self.moe_layer_frequency == 0)
            )
            every = self.global_attention_every
            window = self.sliding_window is not None and not (every and (layer + 1) % every == 0)
            kinds.append((moe, window))
        return tuple(kinds)

    # Derived sizes, with the short math names the formulas use.
    @property
    def h(self) -> int:
        return self.hidden_size

    @property
    def i(self) -> int:
        return self.intermediate_size

    @property
    def L(self) -> int:
        return self.num_layers

    @property
    def V(self) -> int:
        return self.vocab_size

    @property
    def n_h(self) -> int:
        return self.num_heads

    @property
    def n_kv(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def d(self) -> int:
        if self.kv_lora_rank is not None and self.qk_nope_head_dim and self.qk_rope_head_dim:
            return self.qk_nope_head_dim + self.qk_rope_head_dim  # MLA: a query's and key's dims
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def q_dim(self) -> int:
        """Width of the query projection, n_h·d (differs from h in Gemma-7B)."""
        return self.n_h * self.d

    @property
    def kv_dim(self) -> int:
        """Width of the key (and of the value) projection, n_kv·d."""
        return self.n_kv * self.d

    @property
    def rope_dim(self) -> int:
        """Dimensions per head that RoPE rotates (0 without RoPE)."""
        if self.position != "rope":
            return 0
        if self.mla:
            return self.qk_rope_head_dim or 0
        return self.rotary_dim or self.d

    @property
    def attention_kind(self) -> str:
        if self.mla:
            return "MLA (latent)"
        if self.n_kv == self.n_h:
            return "MHA"
        return "MQA" if self.n_kv == 1 else f"GQA ({self.n_h // self.n_kv} q/kv)"

    @property
    def label(self) -> str:
        return self.display_name or self.name


class HardwareSpec(BaseModel):
    """An accelerator: dense peaks, memory, interconnect and the overheads real runs pay."""

    model_config = _STRICT

    name: str
    aliases: tuple[str, ...] = ()
    display_name: str = ""
    vendor: str = ""
    source: str = ""
    fp32_tflops: float = Field(gt=0)
    # Element-wise work (activations, norms, softmax, RoPE); default: the FP32 rate. A CPU runs
    # it far below its GEMM peak (transcendentals, reductions), so calibrate measures it.
    vector_tflops: float | None = Field(default=None, gt=0)
    tf32_tflops: float | None = Field(default=None, gt=0)
    bf16_tflops: float | None = Field(default=None, gt=0)
    fp16_tflops: float | None = Field(default=None, gt=0)
    fp8_tflops: float | None = Field(default=None, gt=0)
    int8_tops: float | None = Field(default=None, gt=0)
    memory_gb: float = Field(gt=0)
    memory_bandwidth_gb_s: float = Field(gt=0)
    # The network, two levels (perfest.sharding): devices in one node share `interconnect`
    # (NVLink, xGMI, ICI, PCIe: per-direction bandwidth per device, and a fixed time per
    # collective); nodes talk over `network` (NICs: per-direction bandwidth per device).
    # devices_per_node None: one node of any size (every collective on the interconnect).
    interconnect_bandwidth_gb_s: float = Field(default=0.0, ge=0)
    interconnect: str = ""
    devices_per_node: int | None = Field(default=None, gt=0)
    network_bandwidth_gb_s: float = Field(default=0.0, ge=0)
    network_latency_us: float = Field(default=0.0, ge=0)
    network: str = ""
    compute_units: int = Field(default=1, gt=0)
    # GEMM output tiles (see perfest.roofline): GPU libraries use 16…128 × 128; a CPU BLAS
    # blocks in registers, so a calibrated CPU spec sets all three to 1 (no padding).
    tile_m_min: int = Field(default=16, gt=0)
    tile_m_max: int = Field(default=128, gt=0)
    tile_n: int = Field(default=128, gt=0)
    compute_efficiency: float = Field(default=0.8, gt=0, le=1)
    memory_efficiency: float = Field(default=0.85, gt=0, le=1)
    # Weight streaming of single matrix products (see perfest.roofline), both measured by
    # calibrate on a CPU: a fixed time per output row of a matrix-vector product, and the
    # efficiency of products with m ≥ 2 rows (a packed GEMM). Defaults: no such terms.
    gemv_row_ns: float = Field(default=0.0, ge=0)
    gemm_memory_efficiency: float | None = Field(default=None, gt=0, le=1)
    kernel_launch_us: float = Field(default=0.0, ge=0)
    interconnect_latency_us: float = Field(default=0.0, ge=0)
    # Written by `perfest calibrate`: when, where and how the figures were measured.
    calibration: dict[str, str | float | int] | None = None

    def peak_flops(self, dtype: str) -> float:
        """Dense peak matmul rate in FLOP/s for `dtype`; UnsupportedError if the device has none."""
        field = PEAK_FIELDS.get(dtype)
        value = getattr(self, field) if field else None
        if value is None:
            have = ", ".join(self.dtypes)
            raise UnsupportedError(
                f"dtype: {self.name} has no {dtype} matmul rate in its spec (it has: {have})"
            )
        return value * 1e12

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(dtype for dtype, field in PEAK_FIELDS.items() if getattr(self, field))

    @property
    def vector_flops(self) -> float:
        """Non-matmul (element-wise) FLOP/s: `vector_tflops`, else the general FP32 rate."""
        return (self.vector_tflops or self.fp32_tflops) * 1e12

    @property
    def gemv_row_s(self) -> float:
        return self.gemv_row_ns * 1e-9

    @property
    def memory_bandwidth(self) -> float:
        """Peak memory bandwidth in byte/s."""
        return self.memory_bandwidth_gb_s * 1e9

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9

    @property
    def interconnect_bandwidth(self) -> float:
        """Per-direction device-to-device bandwidth in byte/s."""
        return self.interconnect_bandwidth_gb_s * 1e9

    @property
    def network_bandwidth(self) -> float:
        """Per-direction bandwidth of one device's share of the network between nodes, byte/s."""
        return self.network_bandwidth_gb_s * 1e9

    @property
    def network_latency_s(self) -> float:
        return self.network_latency_us * 1e-6

    @property
    def kernel_launch_s(self) -> float:
        return self.kernel_launch_us * 1e-6

    @property
    def interconnect_latency_s(self) -> float:
        return self.interconnect_latency_us * 1e-6

    def ridge_point(self, dtype: str) -> float:
        """Intensity (FLOP/byte) above which a kernel is compute-bound: peak / bandwidth."""
        return self.peak_flops(dtype) / self.memory_bandwidth

    @property
    def label(self) -> str:
        return self.display_name or self.name


class Workload(BaseModel):
    """What to run: batch, lengths, dtypes, parallelism and efficiency overrides."""

    model_config = _STRICT

    batch: int = Field(default=1, gt=0)
    input_len: int = Field(default=512, gt=0)
    output_len: int = Field(default=128, gt=0)
    dtype: Dtype = "bf16"
    weight_dtype: Dtype | None = None
    kv_dtype: Dtype | None = None
    tp: int = Field(default=1, gt=0)
    logits: Literal["last", "all"] = "last"
    attention: Literal["flash", "eager"] = "flash"
    compute_efficiency: float | None = Field(default=None, gt=0, le=1)
    memory_efficiency: float | None = Field(default=None, gt=0, le=1)
    # Mixture of experts and latent attention (perfest.layers.moe, perfest.layers.mla).
    ep: int = Field(default=1, gt=0)  # expert-parallel degree
    dp_attention: bool = False  # attention data-parallel over ep/tp groups, a2a to the experts
    experts_touched: float | None = Field(default=None, gt=0)  # per MoE layer per decode step
    mla: Literal["auto", "naive", "absorbed"] = "auto"  # auto: naive prefill, absorbed decode

    @model_validator(mode="after")
    def _check_dtypes(self) -> Workload:
        if self.dtype in WEIGHT_FORMATS:
            raise ValueError(
                f"dtype: {self.dtype} is a weight format; use --weight-dtype {self.dtype}"
            )
        if self.kv_dtype in WEIGHT_FORMATS:
            raise ValueError(
                f"kv_dtype: {self.kv_dtype} KV caches are not modelled; use int8 or fp8"
            )
        return self

    @property
    def w_dtype(self) -> str:
        return self.weight_dtype or self.dtype

    @property
    def cache_dtype(self) -> str:
        return self.kv_dtype or self.dtype

    def static_key(self) -> tuple:
        """The fields that shape a plan (dtypes, layout, kernels, efficiencies), as a tuple."""
        return _static_key(self)

    @property
    def weight_only(self) -> bool:
        """True when weights are stored narrower than the activations they multiply (W4A16,
        W8A16, fp8 weights with bf16 activations): the kernel dequantizes them to compute."""
        return DTYPE_BYTES[self.w_dtype] < DTYPE_BYTES[self.dtype]


#: Workload fields that only move the point a plan is evaluated at; every other field shapes
#: the plan itself.
POINT_FIELDS = ("batch", "input_len", "output_len", "logits")
STATIC_FIELDS = tuple(name for name in Workload.model_fields if name not in POINT_FIELDS)
_static_key = attrgetter(*STATIC_FIELDS)
WORKLOAD_FIELDS = tuple(Workload.model_fields)


def first_error(exc: ValidationError, where: str = "") -> SpecError:
    """Turn pydantic's multi-line report into one line naming the field and the problem."""
    err = exc.errors()[0]
    loc = ".".join(str(part) for part in err["loc"])
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "missing":
        msg = "required field is missing"
    if ":" in msg.split(" ")[0] or not loc:
        text = msg
    else:
        text = f"{loc}: {msg}"
    if where:
        text = f"{where}: {text}"
    return SpecError(text)


def build(cls: type[BaseModel], data: dict, where: str = "") -> BaseModel:
    """Validate `data` as `cls`, raising a one-line SpecError instead of pydantic's report."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc, where) from None
