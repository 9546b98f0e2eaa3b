"""The tiny test model's ``config.json`` and ``generation_config.json`` (``testmodel.py``
writes them, with the tokenizer and the processor).

:class:`Dims` holds what differs between the tiny model (:data:`TINY`, CI and the CPU demo)
and the real captioner (:data:`REAL`, GPU benchmarks with ``load_format="dummy"``); every other
field is written out as the captioner has it, since transformers' class defaults are not the
captioner's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MEL_BINS = 128
"""Mel bins of the Whisper features the audio tower reads (the processor's too)."""


@dataclass(frozen=True)
class Dims:
    """The dimensions that differ between the tiny model and the real captioner."""

    vocab_size: int
    special_base_id: int
    """Id of ``<|endoftext|>``; the other special tokens follow (see ``SPECIAL_TOKENS``)."""
    pinned_words: dict[str, int]
    """Words placed at fixed ids (the real tokenizer's ``user``/``system``/``assistant``)."""
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_head_dim: int
    text_experts: int
    text_experts_per_token: int
    text_moe_intermediate: int
    mrope_section: tuple[int, int, int]
    audio_d_model: int
    audio_layers: int
    audio_heads: int
    audio_ffn: int
    audio_downsample_hidden: int
    vision_depth: int
    vision_hidden: int
    vision_heads: int
    vision_intermediate: int
    vision_deepstack_indexes: tuple[int, ...]
    max_position_embeddings: int


TINY = Dims(
    # CPU attention needs head_dim >= 32 (so mrope_section sums to 16); CPU MoE wants hidden
    # and expert sizes in multiples of 32.
    vocab_size=384,
    special_base_id=320,
    pinned_words={},
    text_hidden=64,
    text_layers=2,
    text_heads=2,
    text_kv_heads=1,
    text_head_dim=32,
    text_experts=4,
    text_experts_per_token=2,
    text_moe_intermediate=32,
    mrope_section=(8, 4, 4),
    audio_d_model=64,
    audio_layers=2,
    audio_heads=2,
    audio_ffn=128,
    audio_downsample_hidden=32,
    vision_depth=2,
    vision_hidden=64,
    vision_heads=2,
    vision_intermediate=128,
    vision_deepstack_indexes=(1,),
    max_position_embeddings=4096,
)

REAL = Dims(
    # Qwen3-Omni-30B-A3B (the Instruct thinker the captioner fine-tunes).
    vocab_size=152_064,
    special_base_id=151_643,
    pinned_words={"user": 872, "system": 8948, "assistant": 77091},
    text_hidden=2048,
    text_layers=48,
    text_heads=32,
    text_kv_heads=4,
    text_head_dim=128,
    text_experts=128,
    text_experts_per_token=8,
    text_moe_intermediate=768,
    mrope_section=(24, 20, 20),
    audio_d_model=1280,
    audio_layers=32,
    audio_heads=20,
    audio_ffn=5120,
    audio_downsample_hidden=480,
    vision_depth=27,
    vision_hidden=1152,
    vision_heads=16,
    vision_intermediate=4304,
    vision_deepstack_indexes=(8, 16, 24),
    max_position_embeddings=65_536,
)


def model_config(dims: Dims, vocab: dict[str, int]) -> dict[str, Any]:
    """config.json: a thinker-only ``qwen3_omni_moe`` config with every field written out."""
    thinker = {
        "model_type": "qwen3_omni_moe_thinker",
        "audio_config": _audio_config(dims),
        "vision_config": _vision_config(dims),
        "text_config": _text_config(dims),
        "audio_token_id": vocab["<|audio_pad|>"],
        "audio_start_token_id": vocab["<|audio_start|>"],
        "audio_end_token_id": vocab["<|audio_end|>"],
        "image_token_id": vocab["<|image_pad|>"],
        "video_token_id": vocab["<|video_pad|>"],
        "vision_start_token_id": vocab["<|vision_start|>"],
        "vision_end_token_id": vocab["<|vision_end|>"],
        "user_token_id": vocab["user"],
        "position_id_per_seconds": 13,
        "seconds_per_chunk": 2,
        "initializer_range": 0.02,
        "tie_word_embeddings": False,
        "dtype": "bfloat16",
    }
    import transformers

    return {
        "transformers_version": transformers.__version__,
        "architectures": ["Qwen3OmniMoeForConditionalGeneration"],
        "model_type": "qwen3_omni_moe",
        "enable_audio_output": False,
        "thinker_config": thinker,
        "im_start_token_id": vocab["<|im_start|>"],
        "im_end_token_id": vocab["<|im_end|>"],
        "tts_pad_token_id": vocab["<tts_pad>"],
        "tts_bos_token_id": vocab["<tts_text_bos>"],
        "tts_eos_token_id": vocab["<tts_text_eod>"],
        "system_token_id": vocab["system"],
        "user_token_id": vocab["user"],
        "assistant_token_id": vocab["assistant"],
        "initializer_range": 0.02,
        "tie_word_embeddings": False,
        "dtype": "bfloat16",
    }


def generation_config(vocab: dict[str, int]) -> dict[str, Any]:
    return {
        "bos_token_id": vocab["<|endoftext|>"],
        "eos_token_id": [vocab["<|im_end|>"], vocab["<|endoftext|>"]],
        "pad_token_id": vocab["<|endoftext|>"],
        "do_sample": True,
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 20,
    }


def _audio_config(dims: Dims) -> dict[str, Any]:
    return {
        "model_type": "qwen3_omni_moe_audio_encoder",
        "num_mel_bins": MEL_BINS,
        "encoder_layers": dims.audio_layers,
        "encoder_attention_heads": dims.audio_heads,
        "encoder_ffn_dim": dims.audio_ffn,
        "d_model": dims.audio_d_model,
        "output_dim": dims.text_hidden,
        "downsample_hidden_size": dims.audio_downsample_hidden,
        "n_window": 50,
        "n_window_infer": 800,
        "conv_chunksize": 500,
        "max_source_positions": 1500,
        "activation_function": "gelu",
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "scale_embedding": False,
        "initializer_range": 0.02,
    }


def _vision_config(dims: Dims) -> dict[str, Any]:
    return {
        "model_type": "qwen3_omni_moe_vision_encoder",
        "depth": dims.vision_depth,
        "hidden_size": dims.vision_hidden,
        "num_heads": dims.vision_heads,
        "intermediate_size": dims.vision_intermediate,
        "out_hidden_size": dims.text_hidden,
        "deepstack_visual_indexes": list(dims.vision_deepstack_indexes),
        "hidden_act": "gelu_pytorch_tanh",
        "in_channels": 3,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "num_position_embeddings": 2304,
        "image_size": 768,  # vLLM reads it; transformers' class lacks it
        "apply_vit_abs_pos_embed": True,  # likewise
        "initializer_range": 0.02,
    }


def _text_config(dims: Dims) -> dict[str, Any]:
    return {
        "model_type": "qwen3_omni_moe_text",
        "vocab_size": dims.vocab_size,
        "hidden_size": dims.text_hidden,
        "num_hidden_layers": dims.text_layers,
        "num_attention_heads": dims.text_heads,
        "num_key_value_heads": dims.text_kv_heads,
        "head_dim": dims.text_head_dim,
        "intermediate_size": dims.text_moe_intermediate,
        "moe_intermediate_size": dims.text_moe_intermediate,
        "num_experts": dims.text_experts,
        "num_experts_per_tok": dims.text_experts_per_token,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "norm_topk_prob": True,
        "hidden_act": "silu",
        "max_position_embeddings": dims.max_position_embeddings,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": list(dims.mrope_section),
            "interleaved": True,
            "mrope_interleaved": True,
        },
        "attention_bias": False,
        "attention_dropout": 0.0,
        "sliding_window": None,
        "use_sliding_window": False,
        "use_cache": True,
        "output_router_logits": False,
        "router_aux_loss_coef": 0.001,
        "initializer_range": 0.02,
        "tie_word_embeddings": False,
    }
