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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from perfest.encoder_checks import encoder_problem
from perfest.errors import SpecError, UnsupportedError
from perfest.spec_messages import MESSAGES, bound_note, closest_field, is_type_tag, shown
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

#: What each dtype may be (the legal combinations, defined once; the Workload enforces them):
#: the compute dtype of activations and matmuls (int4 is a weight format only), the storage of
#: weights and of the KV cache (tf32 is a compute mode: fp32 storage with TF32 tensor-core math;
#: int4 KV caches are not modelled).
COMPUTE_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
WEIGHT_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "mxfp4")
KV_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8")
#: The storage dtype that holds values of a compute dtype.
STORAGE = {"tf32": "fp32"}
#: fp8 and int8 compute are W8A8 linear layers; attention's activation products (and so what the
#: KV cache feeds) stay 16-bit (perfest.roofline.attention_dtype).
ATTENTION_WIDTH = {"fp8": 2.0, "int8": 2.0}


def dtype_problem(dtype: str, weight: str | None = None, kv: str | None = None) -> str | None:
    """Why (dtype, weight dtype, KV dtype) is not a meaningful combination, or None.

    - weights are stored in a weight format, never wider than the compute dtype (a wider weight
      would be rounded down on every read); a weight as wide as the compute dtype is that
      dtype (bf16 weights for fp16 math would be converted, not multiplied), so int8 compute
      takes int8 (W8A8) or int4 (W4A8) weights and fp8 compute fp8 or int4 weights;
    - the KV cache is never wider than what attention computes in (the compute dtype; 16-bit
      for fp8 and int8), and as wide only in the same format: fp8/int8 caches under bf16 are
      the usual KV quantization.
    """
    if dtype not in COMPUTE_DTYPES:
        if dtype in ("int4", "mxfp4"):
            return f"dtype: {dtype} is a weight format; use --weight-dtype {dtype}"
        return f"dtype: {dtype} is not a compute dtype ({', '.join(COMPUTE_DTYPES)})"
    own = STORAGE.get(dtype, dtype)
    width = DTYPE_BYTES[dtype]
    if weight is not None:
        if weight not in WEIGHT_DTYPES:
            hint = "; use fp32" if weight == "tf32" else ""
            return f"weight_dtype: {weight} is a compute mode, not a storage dtype{hint}"
        if DTYPE_BYTES[weight] > width:
            return (
                f"weight_dtype: {weight} weights are wider than the {dtype} compute dtype; "
                f"store them in {own} or narrower"
            )
        if DTYPE_BYTES[weight] == width and weight != own:
            return f"weight_dtype: {weight} weights with {dtype} compute: use {own} weights"
    if kv is not None:
        if kv in ("int4", "mxfp4"):
            return f"kv_dtype: {kv} KV caches are not modelled; use int8 or fp8"
        if kv not in KV_DTYPES:
            return f"kv_dtype: {kv} is a compute mode, not a storage dtype; use fp32"
        if dtype in ATTENTION_WIDTH:  # W8A8: the cache is fed by 16-bit attention
            if DTYPE_BYTES[kv] > ATTENTION_WIDTH[dtype]:
                return f"kv_dtype: a {kv} cache is wider than the 16-bit attention it feeds"
        elif DTYPE_BYTES[kv] > width:
            return f"kv_dtype: a {kv} cache is wider than the {dtype} compute; use {own} or less"
        elif DTYPE_BYTES[kv] == width and kv != own:
            return f"kv_dtype: a {kv} cache with {dtype} compute: use {own} (or fp8, int8)"
    return None


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

# Upper bounds of every size: far beyond any real model, device or request (the largest models
# have h = 16,384, i = 53,248, L = 126, V = 256,000; a device holds a few thousand sequences), so
# that a typo (a 400-digit batch, `hidden_size: 1e29`) is refused in one line instead of
# overflowing or printing a 30-digit parameter count. Integers are strict (a bool or a float is
# not a size); floats must be finite.
MAX_WIDTH = 2**20  # hidden, intermediate and head sizes
MAX_VOCAB = 2**24
MAX_LAYERS = 2**14
MAX_HEADS = 2**16
MAX_POSITIONS = 2**31  # trained context
MAX_BATCH = 10**9  # sequences in one batch
MAX_TOKENS = 10**9  # tokens of one prompt or one generation
MAX_TP = 2**16  # devices in one tensor-parallel group
MAX_TFLOPS = 1e5  # per device (a B200 has 4.5 dense fp8 PFLOP/s)
MAX_GB = 1e5  # memory per device, and its bandwidth and links in GB/s
MAX_UNITS = 2**20  # compute units, devices per node
MAX_TILE = 2**12
MAX_US = 1e6  # latencies and per-op overheads, µs (a second)


def _size(limit: int, default: Any = ..., **kw: Any) -> Any:
    """A strict positive integer up to `limit`."""
    return Field(default, strict=True, gt=0, le=limit, **kw)


def _rate(limit: float, default: Any = ..., gt: float | None = 0, **kw: Any) -> Any:
    """A finite non-negative (or positive) number up to `limit` (ints accepted, bools not)."""
    bound = {"gt": gt} if gt is not None else {"ge": 0}
    return Field(default, strict=True, allow_inf_nan=False, le=limit, **bound, **kw)


def _fraction(default: Any = ...) -> Any:
    """An efficiency: a finite number in (0, 1]."""
    return Field(default, strict=True, allow_inf_nan=False, gt=0, le=1)


class ModelConfig(BaseModel):
    """A decoder-only transformer. Field names follow the Hugging Face config where one exists."""

    model_config = _STRICT

    name: str
    aliases: tuple[str, ...] = ()
    display_name: str = ""
    source: str = ""
    vocab_size: int = _size(MAX_VOCAB)
    hidden_size: int = _size(MAX_WIDTH)
    num_layers: int = _size(MAX_LAYERS)
    num_heads: int = _size(MAX_HEADS)
    num_kv_heads: int | None = _size(MAX_HEADS, None)
    head_dim: int | None = _size(MAX_WIDTH, None)
    intermediate_size: int = _size(MAX_WIDTH)
    mlp: Literal["gated", "classic"] = "gated"
    activation: Literal["silu", "gelu", "gelu_tanh", "relu"] = "silu"
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    position: Literal["rope", "learned", "relative"] = "rope"
    rotary_dim: int | None = _size(MAX_WIDTH, None)
    qkv_bias: bool = Field(False, strict=True)
    out_bias: bool = Field(False, strict=True)
    mlp_bias: bool = Field(False, strict=True)
    lm_head_bias: bool = Field(False, strict=True)
    tied_embeddings: bool = Field(False, strict=True)
    parallel_block: bool = Field(False, strict=True)
    max_position_embeddings: int = _size(MAX_POSITIONS, 2048)
    # The dtype the checkpoint stores its weights in (a Hugging Face `quantization_config`:
    # int4 for AWQ/GPTQ 4-bit, int8, fp8): the workload's weight dtype when none is given.
    weight_dtype: Literal[WEIGHT_DTYPES] | None = None  # type: ignore[valid-type]

    # --- Mixture of experts (perfest.layers.moe) -------------------------------------------
    # E routed experts of intermediate size i_e per MoE layer, k of them per token (None: a
    # dense model); shared experts run for every token; the first `first_dense_layers` layers
    # have a dense MLP of `intermediate_size`, and after them every `moe_layer_frequency`-th
    # layer is MoE (Qwen's decoder_sparse_step: layer l is MoE iff (l − first + 1) % f == 0).
    num_experts: int | None = _size(MAX_UNITS, None)
    experts_per_token: int | None = _size(MAX_UNITS, None)
    expert_intermediate_size: int | None = _size(MAX_WIDTH, None)  # default: intermediate
    shared_experts: int = Field(default=0, strict=True, ge=0, le=MAX_UNITS)
    shared_expert_intermediate_size: int | None = _size(MAX_WIDTH, None)  # default: n·i_e
    shared_expert_gate: bool = Field(False, strict=True)  # Qwen2-MoE: sigmoid gate on shared
    first_dense_layers: int = Field(default=0, strict=True, ge=0, le=MAX_LAYERS)
    moe_layer_frequency: int = _size(MAX_LAYERS, 1)
    router_scoring: Literal["softmax", "sigmoid"] = "softmax"
    router_bias: bool = Field(False, strict=True)  # per-expert bias (gpt-oss; DeepSeek-V3)
    # The routed experts' stored weight format when the checkpoint ships them narrower than the
    # rest (gpt-oss: mxfp4); `--weight-dtype` overrides it for every weight.
    expert_weight_dtype: Dtype | None = None  # type: ignore[valid-type]

    # --- Attention variants: sliding windows, multi-head latent attention ------------------
    # A window of w tokens caps the keys each query attends and the cache a layer keeps; with
    # `global_attention_every: n`, every n-th layer (l with (l + 1) % n == 0) attends globally
    # and the others within the window (gpt-oss: 2; without it every layer is windowed).
    sliding_window: int | None = Field(default=None, strict=True, le=MAX_POSITIONS)
    global_attention_every: int | None = _size(MAX_LAYERS, None)
    attention_sinks: bool = Field(False, strict=True)  # gpt-oss: a logit per head per softmax
    qk_norm: bool = Field(False, strict=True)  # Qwen3: RMSNorm over each head's q and k
    # Multi-head latent attention (DeepSeek-V2/V3): queries through a rank-q_lora_rank
    # bottleneck (None: a full projection), keys and values from a cached latent of
    # kv_lora_rank dims plus a shared RoPE key of qk_rope_head_dim (perfest.layers.mla).
    q_lora_rank: int | None = _size(MAX_WIDTH, None)
    kv_lora_rank: int | None = _size(MAX_WIDTH, None)
    qk_nope_head_dim: int | None = _size(MAX_WIDTH, None)
    qk_rope_head_dim: int | None = _size(MAX_WIDTH, None)
    v_head_dim: int | None = _size(MAX_WIDTH, None)

    # --- Encoders and encoder-decoders (perfest.layers.encoder, perfest.encoders) ------------
    # decoder: causal, KV cache, prefill and decode; encoder: bidirectional, one `encode` pass
    # (BERT); encoder-decoder: the encoder once over the input, then a decoder with causal
    # self-attention and cross-attention over the encoder's output (T5).
    architecture: Literal["decoder", "encoder", "encoder-decoder"] = "decoder"
    # pre: x + f(norm(x)), a final norm after the stack; post: norm(x + f(x)) (BERT).
    norm_position: Literal["pre", "post"] = "pre"
    embedding_norm: bool = Field(False, strict=True)  # a norm over the summed embeddings (BERT)
    type_vocab_size: int = Field(0, strict=True, ge=0, le=MAX_VOCAB)  # token types (BERT: 2)
    # The head an encoder runs unless `--head` says otherwise, and whose weights its published
    # count includes: pooler (first token: dense h×h + tanh), mlm (BERT's transform: dense h×h
    # + activation + norm, then the decoder [h, V], tied to the token embedding when
    # tied_embeddings, plus a bias when lm_head_bias), none (hidden states only).
    head: Literal["pooler", "mlm", "none"] = "none"
    # Encoder-decoders: the decoder's layers (default num_layers, the encoder's); T5's relative
    # position buckets (`position: relative`: a [buckets, n_h] table per stack, its bias added
    # to every layer's scores); the decoder output scaled by h^-1/2 before a tied LM head (T5).
    num_decoder_layers: int | None = _size(MAX_LAYERS, None)
    relative_attention_num_buckets: int = _size(MAX_POSITIONS, 32)
    head_scale: bool = Field(False, strict=True)

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
        problem = moe_problem(self) or attention_problem(self) or encoder_problem(self)
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

    # Encoders and encoder-decoders: the layers of each stack.
    @property
    def L_enc(self) -> int:
        """Encoder layers (0 for a decoder-only model)."""
        return 0 if self.architecture == "decoder" else self.num_layers

    @property
    def L_dec(self) -> int:
        """Decoder layers (0 for an encoder)."""
        if self.architecture == "encoder":
            return 0
        if self.architecture == "decoder":
            return self.num_layers
        return self.num_decoder_layers or self.num_layers

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
    fp32_tflops: float = _rate(MAX_TFLOPS)
    # Element-wise work (activations, norms, softmax, RoPE); default: the FP32 rate. A CPU runs
    # it far below its GEMM peak (transcendentals, reductions), so calibrate measures it.
    vector_tflops: float | None = _rate(MAX_TFLOPS, None)
    tf32_tflops: float | None = _rate(MAX_TFLOPS, None)
    bf16_tflops: float | None = _rate(MAX_TFLOPS, None)
    fp16_tflops: float | None = _rate(MAX_TFLOPS, None)
    fp8_tflops: float | None = _rate(MAX_TFLOPS, None)
    int8_tops: float | None = _rate(MAX_TFLOPS, None)
    memory_gb: float = _rate(MAX_GB)
    memory_bandwidth_gb_s: float = _rate(MAX_GB)
    # The network, two levels (perfest.sharding): devices in one node share `interconnect`
    # (NVLink, xGMI, ICI, PCIe: per-direction bandwidth per device, and a fixed time per
    # collective); nodes talk over `network` (NICs: per-direction bandwidth per device).
    # devices_per_node None: one node of any size (every collective on the interconnect).
    interconnect_bandwidth_gb_s: float = _rate(MAX_GB, 0.0, gt=None)
    interconnect: str = ""
    devices_per_node: int | None = _size(MAX_UNITS, None)
    network_bandwidth_gb_s: float = _rate(MAX_GB, 0.0, gt=None)
    network_latency_us: float = _rate(MAX_US, 0.0, gt=None)
    network: str = ""
    compute_units: int = _size(MAX_UNITS, 1)
    # GEMM output tiles (see perfest.roofline): per product, the library runs the cheapest of
    # its tile shapes, rows tile_m_min·2^j ≤ tile_m_max by columns tile_n_min·2^j ≤ tile_n
    # (CUTLASS and cuBLAS kernels for Ampere and Hopper: 16…128 × 64…256; tile_n_min None:
    # 64, or tile_n if narrower). A CPU BLAS blocks in registers: a calibrated CPU spec sets
    # them all to 1 (no padding).
    tile_m_min: int = _size(MAX_TILE, 16)
    tile_m_max: int = _size(MAX_TILE, 128)
    tile_n: int = _size(MAX_TILE, 256)
    tile_n_min: int | None = _size(MAX_TILE, None)
    compute_efficiency: float = _fraction(0.8)
    memory_efficiency: float = _fraction(0.85)
    # Weight streaming of single matrix products (see perfest.roofline), both measured by
    # calibrate on a CPU: a fixed time per output row of a matrix-vector product, and the
    # efficiency of products with m ≥ 2 rows (a packed GEMM). Defaults: no such terms.
    gemv_row_ns: float = _rate(MAX_US * 1e3, 0.0, gt=None)
    gemm_memory_efficiency: float | None = _fraction(None)
    kernel_launch_us: float = _rate(MAX_US, 0.0, gt=None)
    interconnect_latency_us: float = _rate(MAX_US, 0.0, gt=None)
    # Written by `perfest calibrate`: when, where and how the figures were measured.
    calibration: dict[str, str | float | int] | None = None

    @model_validator(mode="after")
    def _check_tiles(self) -> HardwareSpec:
        if self.tile_m_min > self.tile_m_max:
            raise ValueError(f"tile_m_min: {self.tile_m_min} exceeds tile_m_max {self.tile_m_max}")
        if self.tile_n_min is not None and self.tile_n_min > self.tile_n:
            raise ValueError(f"tile_n_min: {self.tile_n_min} exceeds tile_n {self.tile_n}")
        return self

    @property
    def tile_ms(self) -> tuple[int, ...]:
        """The row tiles a GEMM library chooses from, smallest first."""
        return _doublings(self.tile_m_min, self.tile_m_max)

    @property
    def tile_ns(self) -> tuple[int, ...]:
        """The column tiles a GEMM library chooses from, smallest first."""
        low = self.tile_n_min if self.tile_n_min is not None else min(64, self.tile_n)
        return _doublings(low, self.tile_n)

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


def _doublings(low: int, high: int) -> tuple[int, ...]:
    """low, 2·low, 4·low, … up to high."""
    out = [low]
    while out[-1] * 2 <= high:
        out.append(out[-1] * 2)
    return tuple(out)


class Workload(BaseModel):
    """What to run: batch, lengths, dtypes, parallelism and efficiency overrides."""

    model_config = _STRICT

    batch: int = _size(MAX_BATCH, 1)
    input_len: int = _size(MAX_TOKENS, 512)
    output_len: int = _size(MAX_TOKENS, 128)
    dtype: Dtype = "bf16"
    weight_dtype: Dtype | None = None
    kv_dtype: Dtype | None = None
    tp: int = _size(MAX_TP, 1)
    logits: Literal["last", "all"] = "last"
    attention: Literal["flash", "eager"] = "flash"
    fusion: Literal["none", "default", "full"] = "default"
    compute_efficiency: float | None = _fraction(None)
    memory_efficiency: float | None = _fraction(None)
    # Mixture of experts and latent attention (perfest.layers.moe, perfest.layers.mla).
    ep: int = _size(MAX_TP, 1)  # expert-parallel degree
    dp_attention: bool = Field(False, strict=True)  # attention data-parallel, a2a to experts
    experts_touched: float | None = _rate(MAX_UNITS, None)  # per MoE layer per decode step
    mla: Literal["auto", "naive", "absorbed"] = "auto"  # auto: naive prefill, absorbed decode
    # Encoders (perfest.encoders): the head an encoder runs (None: the model's own).
    head: Literal["pooler", "mlm", "none"] | None = None

    @model_validator(mode="after")
    def _check_dtypes(self) -> Workload:
        problem = dtype_problem(self.dtype, self.weight_dtype, self.kv_dtype)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def w_dtype(self) -> str:
        """The weights' storage dtype (tf32 compute stores fp32)."""
        return self.weight_dtype or STORAGE.get(self.dtype, self.dtype)

    @property
    def cache_dtype(self) -> str:
        """The KV cache's storage dtype (tf32 compute stores fp32)."""
        return self.kv_dtype or STORAGE.get(self.dtype, self.dtype)

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
    loc = ".".join(str(part) for part in err["loc"] if not is_type_tag(part))
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    kind = err["type"]
    if kind == "extra_forbidden":
        msg = "unknown field" + closest_field(exc.title, str(err["loc"][-1]))
    elif kind in MESSAGES:
        ctx = dict(err.get("ctx") or {})
        for key, value in ctx.items():
            if isinstance(value, float) and value.is_integer():
                ctx[key] = int(value)  # 100,000 rather than 100,000.0
            elif not isinstance(value, (int, float)):
                ctx[key] = str(value)
        try:
            msg = MESSAGES[kind].format(got=shown(err.get("input")), **ctx)
            if note := bound_note(kind, ctx):
                msg = msg[:-1] + note + ")"
        except (KeyError, ValueError, IndexError, TypeError):
            pass
    elif kind == "literal_error":
        msg = f"must be one of {err['ctx']['expected']} (got {shown(err.get('input'))})"
    if ":" in msg.split(" ")[0] or not loc:
        text = msg
    else:
        text = f"{loc}: {msg}"
    if where:
        text = f"{where}: {text}"
    return SpecError(" ".join(text.split()))


def build(cls: type[BaseModel], data: dict, where: str = "") -> BaseModel:
    """Validate `data` as `cls`, raising a one-line SpecError instead of pydantic's report."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc, where) from None
