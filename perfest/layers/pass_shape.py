"""The shape of one forward pass on one device, shared by every layer function."""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from perfest.specs import ModelConfig


@dataclass(frozen=True, slots=True)
class Pass:
    """b sequences, each adding s new tokens to a context of t tokens (t ≥ s).

    Prefill: s = t = input length. Decode: s = 1, t = tokens in the KV cache after this step.
    `s_logits` is how many positions per sequence reach the LM head (1 when only the last
    token's logits are needed, as in serving engines; s for training-style full logits).
    Sizes are bytes per element: `act` for activations, `w` for the block's matmul weights,
    `emb` for embeddings, norms and LM head (kept in the activation dtype under weight-only
    quantization), `kv` for the KV cache.
    """

    b: int
    s: int
    t: int
    s_logits: int
    act: float
    w: float
    emb: float
    kv: float
    tp: int = 1
    flash: bool = True
    weight_only: bool = False

    # Per-device widths under tensor parallelism (Megatron-style: heads and the MLP's inner
    # dimension are split; kv heads are replicated when there are fewer of them than devices).
    def n_h(self, model: ModelConfig) -> int:
        return model.n_h // self.tp

    def n_kv(self, model: ModelConfig) -> int:
        return ceil(model.n_kv / self.tp)

    def i(self, model: ModelConfig) -> int:
        return ceil(model.i / self.tp)

    def V(self, model: ModelConfig) -> int:
        return ceil(model.V / self.tp)
