"""What a training run is: the model's layout on the cluster, the batch, precision and optimizer.

`TrainConfig` is the validated input (a frozen pydantic model, like `Workload`): one field per
option of `perfest train` and keyword of `perfest.estimate_training`. `resolve` checks it
against a model and a device and returns the `StepLayout`: the parallel degrees, the number of
micro-batches and the schedule; every error is one line naming the option.

    N = tp · pp · cp · dp                       devices (dp defaults to N / (tp·pp·cp))
    m = B / (b · dp)                            micro-batches per step (gradient accumulation)
    tokens per step = B · S                     (B global batch, S sequence length)

Mixtures of experts (Megatron-Core's MoE parallel folding, megatron/core/parallel_state.py,
`initialize_model_parallel`): the expert layers fold the tp·cp·dp ranks of a pipeline stage
into etp × ep × edp — etp the experts' own tensor-parallel degree (default tp), ep the expert
parallelism (E/ep experts per device), edp = tp·cp·dp/(etp·ep) the expert data parallelism
over which the experts' gradients are reduced. etp·ep must divide tp·cp·dp ("world_size is not
divisible by expert_tensor_model_pipeline_parallel size"), and ep must divide E. A mixture of
experts under tp > 1 needs sequence parallelism (Megatron-LM's arguments.py).

Precision (mixed precision as Megatron-LM and Transformer Engine run it): `bf16` and `fp16`
keep weights and activations in 16 bits with fp32 master weights and optimizer states; `fp8`
runs the decoder layers' linear GEMMs (forward and backward) at the FP8 rate with weights and
activations stored in bf16 (the attention products and the LM head stay bf16, as Transformer
Engine and Megatron-LM run them);
`fp32` trains in fp32 throughout (no master copy). Weight gradients are kept in fp32 under
mixed precision (Megatron's main gradients, `--accumulate-allreduce-grads-in-fp32`) unless
`grad_dtype` says otherwise (the ZeRO paper's accounting keeps them in 16 bits).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from perfest.errors import SpecError, UnsupportedError
from perfest.specs import HardwareSpec, ModelConfig, first_error

TRAIN_DTYPES = ("bf16", "fp16", "fp8", "fp32")
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw", "lion")
RECOMPUTE = ("none", "selective", "full")


class TrainConfig(BaseModel):
    """A training step on a cluster (sizes in sequences and tokens)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpus: int = Field(gt=0)
    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    cp: int = Field(default=1, gt=0)
    dp: int | None = Field(default=None, gt=0)
    ep: int = Field(default=1, gt=0)
    etp: int | None = Field(default=None, gt=0)
    global_batch: int = Field(gt=0)
    micro_batch: int = Field(default=1, gt=0)
    seq_len: int = Field(gt=0)
    dtype: Literal[TRAIN_DTYPES] = "bf16"  # type: ignore[valid-type]
    optimizer: Literal[OPTIMIZERS] = "adamw"  # type: ignore[valid-type]
    recompute: Literal[RECOMPUTE] = "none"  # type: ignore[valid-type]
    zero: int = Field(default=0, ge=0, le=3)
    interleave: int = Field(default=1, gt=0)
    sequence_parallel: bool = False
    attention: Literal["flash", "eager"] = "flash"
    grad_dtype: Literal["fp32", "bf16", "fp16"] | None = None
    dropout: bool = False
    # An encoder's masked-LM head: the positions per sequence it scores — None: all of them
    # (Hugging Face's BertForMaskedLM); or the masked ones, gathered first (NVIDIA's and
    # Megatron-LM's BERT: max_predictions_per_seq, 20 at length 128 and 80 at 512).
    mlm_positions: int | None = Field(default=None, gt=0)
    compute_efficiency: float | None = Field(default=None, gt=0, le=1)
    memory_efficiency: float | None = Field(default=None, gt=0, le=1)

    @property
    def mixed(self) -> bool:
        """Mixed precision: 16-bit (or fp8) compute with fp32 master weights."""
        return self.dtype != "fp32"

    @property
    def storage(self) -> str:
        """The dtype weights and activations are stored in (fp8 GEMMs read bf16 tensors)."""
        return "bf16" if self.dtype == "fp8" else self.dtype

    @property
    def grad(self) -> str:
        """The dtype weight gradients are kept and reduced in."""
        return self.grad_dtype or ("fp32" if self.mixed else self.dtype)


CONFIG_FIELDS = tuple(TrainConfig.model_fields)


def make_config(config: TrainConfig | None = None, **fields) -> TrainConfig:
    """A TrainConfig from keyword fields (None values dropped), one-line errors."""
    if config is not None and not fields:
        return config
    base = config.model_dump(exclude_unset=True) if config is not None else {}
    base.update({key: value for key, value in fields.items() if value is not None})
    try:
        return TrainConfig(**base)
    except ValidationError as exc:
        raise first_error(exc) from None


class StepLayout(NamedTuple):
    """The resolved layout of a step (a named tuple: the search builds many)."""

    tp: int
    pp: int
    cp: int
    dp: int
    micro_batch: int
    micro_batches: int  # m, per step
    interleave: int
    sequence_parallel: bool
    zero: int
    recompute: str
    ep: int = 1  # expert parallelism
    etp: int = 1  # expert tensor parallelism

    @property
    def devices(self) -> int:
        return self.tp * self.pp * self.cp * self.dp

    @property
    def edp(self) -> int:
        """Expert data parallelism: the ranks of a stage holding the same experts."""
        return self.tp * self.cp * self.dp // (self.etp * self.ep)


def resolve(model: ModelConfig, hw: HardwareSpec, c: TrainConfig) -> StepLayout:
    """The layout of `c` on `model` and `hw`; SpecError (one line, naming the option) when it
    cannot run."""
    hw.peak_flops(c.dtype)  # a device without the dtype: UnsupportedError
    if c.dtype == "fp8":
        hw.peak_flops("bf16")
    check_trainable(model, c)
    check_model_split(model, c.tp, c.pp, c.cp, c.interleave, c.seq_len)
    model_parallel = c.tp * c.pp * c.cp
    if c.dp is None:
        if c.gpus % model_parallel:
            raise SpecError(
                f"gpus: tp·pp·cp = {c.tp}·{c.pp}·{c.cp} = {model_parallel} does not divide "
                f"the {c.gpus} GPUs"
            )
        dp = c.gpus // model_parallel
    else:
        dp = c.dp
        if model_parallel * dp != c.gpus:
            raise SpecError(
                f"gpus: tp·pp·cp·dp = {c.tp}·{c.pp}·{c.cp}·{dp} = {model_parallel * dp} is "
                f"not the {c.gpus} GPUs"
            )
    check_network(hw, c.gpus)
    if c.cp > 1 and c.attention == "eager":
        raise SpecError("cp: context parallelism runs flash attention (use --attention flash)")
    per_step = c.micro_batch * dp
    if c.global_batch % per_step:
        raise SpecError(
            f"global_batch: {c.global_batch} is not divisible by micro_batch × dp = "
            f"{c.micro_batch} × {dp} = {per_step}"
        )
    m = c.global_batch // per_step
    if c.interleave > 1 and m % c.pp:
        raise SpecError(
            f"interleave: the interleaved schedule needs the {m} micro-batches per step to be "
            f"a multiple of pp = {c.pp}"
        )
    sp = c.sequence_parallel and c.tp > 1
    etp = check_experts(model, c, dp)
    return StepLayout(c.tp, c.pp, c.cp, dp, c.micro_batch, m, c.interleave, sp, c.zero, c.recompute,
                      c.ep, etp)  # fmt: skip


def check_trainable(model: ModelConfig, c: TrainConfig) -> None:
    """Decoders (causal LM) and encoders (masked-LM pre-training) train; an encoder-decoder's
    step (T5's span corruption) is not modelled yet. Masked positions are an encoder's."""
    check_architecture(model)
    if c.mlm_positions is None:
        return
    if model.architecture != "encoder":
        raise SpecError(
            f"mlm_positions: {model.name} is a decoder; its LM head scores every position"
        )
    if c.mlm_positions > c.seq_len:
        raise SpecError(
            f"mlm_positions: {c.mlm_positions} masked positions exceed the sequence length "
            f"{c.seq_len}"
        )


def check_architecture(model: ModelConfig) -> None:
    """UnsupportedError for a model whose training step is not modelled (an encoder-decoder)."""
    if model.architecture == "encoder-decoder":
        raise UnsupportedError(
            f"model: training an encoder-decoder ({model.name}) is not modelled yet (its "
            "inference is: perfest estimate)"
        )


def check_experts(model: ModelConfig, c: TrainConfig, dp: int) -> int:
    """The experts' layout (module docstring); returns etp (1 for a dense model)."""
    if not model.moe:
        for name, value in (("ep", c.ep), ("etp", c.etp)):
            if value not in (None, 1):
                raise SpecError(f"{name}: {model.name} has no experts to divide")
        return 1
    etp = c.tp if c.etp is None else c.etp
    if model.num_experts % c.ep:
        raise SpecError(
            f"ep: {c.ep} does not divide the {model.num_experts} experts of {model.name}"
        )
    stage = c.tp * c.cp * dp
    if stage % (etp * c.ep):
        raise SpecError(
            f"ep: etp·ep = {etp}·{c.ep} does not divide the tp·cp·dp = {c.tp}·{c.cp}·{dp} = "
            f"{stage} ranks of a pipeline stage (Megatron-Core folds the experts' groups into them)"
        )
    if c.tp > 1 and not c.sequence_parallel:
        raise SpecError(
            "sequence_parallel: a mixture of experts under tp > 1 runs with sequence parallelism "
            "(Megatron-LM requires it; add --sequence-parallel)"
        )
    return etp


def check_model_split(model: ModelConfig, tp: int, pp: int, cp: int, v: int, seq: int) -> None:
    """tp must divide the heads, pp·v the layers (v > 1), cp the sequence."""
    if model.n_h % tp:
        raise SpecError(f"tp: {tp} does not divide the {model.n_h} attention heads of {model.name}")
    if pp > model.L:
        raise SpecError(f"pp: {pp} pipeline stages exceed the {model.L} layers of {model.name}")
    if v > 1:
        if pp == 1:
            raise SpecError("interleave: virtual stages need pipeline parallelism (pp > 1)")
        if model.L % (pp * v):
            raise SpecError(
                f"interleave: pp·v = {pp}·{v} does not divide the {model.L} layers of {model.name}"
            )
    if seq % cp:
        raise SpecError(f"cp: {cp} does not divide the sequence length {seq}")


def check_network(hw: HardwareSpec, gpus: int) -> None:
    """More than one device needs a link between them; more than a node, a network."""
    if gpus > 1 and hw.interconnect_bandwidth <= 0:
        raise UnsupportedError(f"gpus: {hw.name} has no interconnect bandwidth in its spec")
    per_node = hw.devices_per_node
    if per_node is not None and gpus > per_node and hw.network_bandwidth <= 0:
        raise UnsupportedError(
            f"gpus: {gpus} devices span more than one {per_node}-device node of {hw.name}, "
            "whose spec has no network between nodes"
        )
