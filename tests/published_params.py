"""Officially published parameter totals, used to check perfest's parameter count.

These numbers do NOT come from perfest's formula: each was read from a published source
(model card, Hugging Face Hub API ``safetensors.total``, KerasHub preset metadata, paper) and
is recorded here verbatim so the tests compare perfest against an independent number.

Notes on what "published" means for a few models:

* Hugging Face's ``safetensors.total`` counts every tensor in the checkpoint, including some
  non-parameter buffers and duplicated tied weights. Where that happens the total below is the
  true parameter count as published elsewhere, and the comment says how it relates to the HF number:
  - gpt2 family: the HF safetensors hold the causal-mask buffers ``h.N.attn.bias`` (1024*1024 per
    layer), e.g. gpt2 shows 137,022,720 = 124,439,808 + 12 * 1,048,576.
  - Llama 2: the HF safetensors hold ``rotary_emb.inv_freq`` buffers (64 per layer), e.g.
    Llama-2-7b-hf shows 6,738,417,664 = 6,738,415,616 + 32 * 64.
  - Falcon-7B: the HF checkpoint stores ``lm_head.weight`` as a separate copy of the tied word
    embedding, so its total is 7,217,189,760 = 6,921,720,704 + 65024 * 4544.
* GPT-J 6B's model-card total (6,053,381,344) was computed on the 8-way tensor-parallel
  mesh-transformer-jax checkpoint, where LayerNorms, the MLP output bias and the embedding bias are
  stored once per shard. The Hugging Face GPTJForCausalLM has 6,050,882,784 parameters (2,498,560
  fewer = 28 layers * 7 * (2*4096 + 4096) + 8 * 4096 + 7 * 2*4096), so it is listed under
  APPROXIMATE rather than as an exact total.
"""

KERAS_HUB = "https://github.com/keras-team/keras-hub/blob/master/keras_hub/src/models"

# model id -> (exact published total, where it is published)
PUBLISHED_PARAMETERS: dict[str, tuple[int, str]] = {
    "gpt2": (
        124_439_808,
        f"{KERAS_HUB}/gpt2/gpt2_presets.py (gpt2_base_en params); "
        "HF safetensors.total 137,022,720 includes 12 causal-mask buffers of 1024*1024",
    ),
    "gpt2-medium": (
        354_823_168,
        f"{KERAS_HUB}/gpt2/gpt2_presets.py (gpt2_medium_en params)",
    ),
    "gpt2-large": (
        774_030_080,
        f"{KERAS_HUB}/gpt2/gpt2_presets.py (gpt2_large_en params)",
    ),
    "gpt2-xl": (
        1_557_611_200,
        f"{KERAS_HUB}/gpt2/gpt2_presets.py (gpt2_extra_large_en params)",
    ),
    "llama-2-7b": (
        6_738_415_616,
        f"{KERAS_HUB}/llama/llama_presets.py (llama2_7b_en params); "
        "HF API safetensors.total for meta-llama/Llama-2-7b-hf is 6,738,417,664 incl. 32*64 inv_freq buffers",
    ),
    "llama-2-13b": (
        13_015_864_320,
        "HF API safetensors.total for meta-llama/Llama-2-13b-hf, 13,015,866,880, "
        "less its 40*64 rotary inv_freq buffers (not parameters)",
    ),
    "llama-2-70b": (
        68_976_648_192,
        "HF API safetensors.total for meta-llama/Llama-2-70b-hf, 68,976,653,312, "
        "less its 80*64 rotary inv_freq buffers (not parameters)",
    ),
    "llama-3-8b": (
        8_030_261_248,
        "https://huggingface.co/api/models/meta-llama/Meta-Llama-3-8B (safetensors.total)",
    ),
    "llama-3-70b": (
        70_553_706_496,
        "https://huggingface.co/api/models/meta-llama/Meta-Llama-3-70B (safetensors.total)",
    ),
    "llama-3.1-8b": (
        8_030_261_248,
        "https://huggingface.co/api/models/meta-llama/Llama-3.1-8B (safetensors.total)",
    ),
    "llama-3.1-70b": (
        70_553_706_496,
        "https://huggingface.co/api/models/meta-llama/Llama-3.1-70B (safetensors.total)",
    ),
    "llama-3.1-405b": (
        405_853_388_800,
        "https://huggingface.co/api/models/meta-llama/Llama-3.1-405B (safetensors.total)",
    ),
    "mistral-7b": (
        7_241_732_096,
        f"{KERAS_HUB}/mistral/mistral_presets.py (mistral_7b_en params); "
        "also https://huggingface.co/api/models/mistralai/Mistral-7B-v0.1 (safetensors.total)",
    ),
    "qwen2-7b": (
        7_615_616_512,
        "https://huggingface.co/api/models/Qwen/Qwen2-7B (safetensors.total)",
    ),
    "gemma-7b": (
        8_537_680_896,
        f"{KERAS_HUB}/gemma/gemma_presets.py (gemma_7b_en params); "
        "also https://huggingface.co/api/models/google/gemma-7b (safetensors.total)",
    ),
    "phi-3-mini": (
        3_821_079_552,
        f"{KERAS_HUB}/phi3/phi3_presets.py (phi3_mini_4k_instruct_en params); "
        "also https://huggingface.co/api/models/microsoft/Phi-3-mini-4k-instruct (safetensors.total)",
    ),
    "falcon-7b": (
        6_921_720_704,
        "HF API safetensors.total for tiiuae/falcon-7b, 7,217,189,760, less the duplicated "
        "lm_head.weight (tied to transformer.word_embeddings, 65024*4544 = 295,469,056)",
    ),
    # Mixtures of experts (issue 9). Hugging Face's safetensors.total counts the checkpoint's
    # tensors; for these bf16 checkpoints every tensor is a parameter.
    "mixtral-8x7b": (
        46_702_792_704,
        f"{KERAS_HUB}/mixtral/mixtral_presets.py (mixtral_8_7b_en params); "
        "also https://huggingface.co/api/models/mistralai/Mixtral-8x7B-v0.1 (safetensors.total)",
    ),
    "mixtral-8x22b": (
        140_620_634_112,
        "https://huggingface.co/api/models/mistralai/Mixtral-8x22B-v0.1 (safetensors.total; "
        "the Instruct-v0.1 checkpoint's 32768-token vocabulary makes it 140,630,071,296)",
    ),
    "deepseek-v2-lite": (
        15_706_484_224,
        "https://huggingface.co/api/models/deepseek-ai/DeepSeek-V2-Lite (safetensors.total)",
    ),
    "deepseek-v3": (
        671_026_419_200,
        "DeepSeek-V3 README_WEIGHTS.md: 671B main-model weights (plus 14B in the MTP module); "
        "exact: the main-model tensors of the deepseek-ai/DeepSeek-V3 safetensors index "
        "(model.layers.0-60, embed_tokens, norm, lm_head; the MTP layer 61 and the fp8 "
        "weight_scale_inv tensors excluded), as the checkpoint headers list them",
    ),
    "qwen3-30b-a3b": (
        30_532_122_624,
        "https://huggingface.co/api/models/Qwen/Qwen3-30B-A3B (safetensors.total)",
    ),
    "qwen3-235b-a22b": (
        235_093_634_560,
        f"{KERAS_HUB}/qwen3_moe/qwen3_moe_presets.py (qwen3_moe_235b_a22b_en params); "
        "also https://huggingface.co/api/models/Qwen/Qwen3-235B-A22B (safetensors.total)",
    ),
    "gpt-oss-20b": (
        20_914_757_184,
        "GGUF general.parameter_count of openai/gpt-oss-20b (ollama show gpt-oss:20b); the "
        "model card (arXiv:2508.10925, Table 1) rounds it to 20.91B. HF's safetensors.total "
        "counts the MXFP4 experts as packed uint8 blocks and scales, not parameters",
    ),
    "gpt-oss-120b": (
        116_829_156_672,
        "GGUF general.parameter_count of openai/gpt-oss-120b (ollama show gpt-oss:120b); the "
        "model card (arXiv:2508.10925, Table 1) rounds it to 116.83B",
    ),
    # Encoders and encoder-decoders (issue 10). An encoder's total includes the head its
    # published count includes: BERT's and RoBERTa's are those of Hugging Face's BertModel and
    # RobertaModel (with the pooler; `head: pooler` in their YAML). The checkpoints' own totals
    # add the pre-training heads, which tests/test_encoders.py reconciles exactly.
    "bert-base-uncased": (
        109_482_240,
        f"{KERAS_HUB}/bert/bert_presets.py (bert_base_en_uncased params); equals Hugging Face "
        "BertModel.from_pretrained('bert-base-uncased'); HF safetensors.total 110,106,428 adds "
        "the MLM head (transform and bias) and the next-sentence head",
    ),
    "bert-large-uncased": (
        335_141_888,
        f"{KERAS_HUB}/bert/bert_presets.py (bert_large_en_uncased params); HF BertModel",
    ),
    "roberta-large": (
        355_359_744,
        "Hugging Face RobertaModel.from_pretrained('roberta-large') (with the pooler); HF "
        "safetensors.total 355,412,057 is RobertaForMaskedLM's: the MLM head, no pooler",
    ),
    "t5-base": (
        222_903_552,
        f"{KERAS_HUB}/t5/t5_presets.py (t5_base params)",
    ),
    "flan-t5-xl": (
        2_849_757_184,
        "HF safetensors total of google/flan-t5-xl; "
        f"{KERAS_HUB}/t5/t5_presets.py (t5_1.1_xl params: the same architecture)",
    ),
}

# Models whose only published total is rounded or counted under another convention:
# model id -> (published total, relative tolerance, source)
APPROXIMATE: dict[str, tuple[int, float, str]] = {
    "gpt3-175b": (175_000_000_000, 0.005, "Brown et al. 2020 Table 2.1"),
    "gpt-j-6b": (
        6_053_381_344,
        0.001,
        "https://huggingface.co/EleutherAI/gpt-j-6b model card (n_parameters); counted on the "
        "8-shard mesh-transformer-jax checkpoint, 2,498,560 above the HF GPTJForCausalLM count",
    ),
}
