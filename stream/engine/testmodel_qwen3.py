"""The Qwen3-Omni test models: the thinker of ``Qwen3OmniMoeForConditionalGeneration``.

Captioner, Instruct and Thinking share this architecture (vLLM runs the thinker of each);
their test models differ in their name (``_name_or_path``, which :mod:`stream.engine.families`
reads), their generation_config.json and nothing else: the chat template is the same Qwen
template (an optional system turn, then turns whose content is text or a list of audio/text
parts; the Thinking model writes its ``<think>`` itself). ``<think>``/``</think>`` are plain
added tokens, as in Qwen3's tokenizer, so decoding keeps them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.engine.families import ModelFamily
from stream.engine.testtokenizer import Vocabulary, build_tokenizer, token_layout

AUDIO_SAMPLE_RATE_HZ = 16_000
MEL_BINS = 128
HOP_LENGTH_SAMPLES = 160
N_FFT_SAMPLES = 400
FEATURE_CHUNK_S = 300
"""Whisper feature extractor ``chunk_length`` of Qwen-Omni: pads/truncates at 300 s."""

NAMES = {
    ModelFamily.QWEN3_OMNI_CAPTIONER: "Qwen3-Omni-30B-A3B-Captioner",
    ModelFamily.QWEN3_OMNI_INSTRUCT: "Qwen3-Omni-30B-A3B-Instruct",
    ModelFamily.QWEN3_OMNI_THINKING: "Qwen3-Omni-30B-A3B-Thinking",
}
"""The real model each test model stands in for (written as ``earwitness/tiny-<name>``)."""

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",  # base + 0
    "<|im_start|>",  # base + 1
    "<|im_end|>",  # base + 2
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",  # base + 9
    "<|vision_end|>",  # base + 10
    "<|vision_pad|>",
    "<|image_pad|>",  # base + 12
    "<|video_pad|>",  # base + 13
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
    "<|audio_start|>",  # base + 26
    "<|audio_end|>",  # base + 27
    "<tts_pad>",
    "<tts_text_bos>",
    "<tts_text_eod>",
    "<tts_text_bos_single>",
    "<|audio_pad|>",  # base + 32
)
"""Qwen3-Omni's added tokens in id order; the real tokenizer puts the first at 151643."""

NAMED_TOKENS: dict[str, str] = {
    "audio_token": "<|audio_pad|>",
    "audio_bos_token": "<|audio_start|>",
    "audio_eos_token": "<|audio_end|>",
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_bos_token": "<|vision_start|>",
    "vision_eos_token": "<|vision_end|>",
}
"""Attributes ``Qwen3OmniMoeProcessor`` reads from its tokenizer (``extra_special_tokens``)."""

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'audio' or 'audio' in part -%}"
    "{{- '<|audio_start|><|audio_pad|><|audio_end|>' -}}"
    "{%- elif part['type'] == 'image' or 'image' in part -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
"""Qwen's chat template for Omni inputs: system/user turns, audio parts as one placeholder."""


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


def write(directory: Path, family: ModelFamily, *, real_dims: bool) -> None:
    """Write config, generation config, tokenizer and processor of ``family``'s test model."""
    dims = REAL if real_dims else TINY
    vocab = token_layout(vocabulary(dims))
    write_json(directory / "config.json", model_config(dims, vocab, NAMES[family]))
    write_json(directory / "generation_config.json", generation_config(vocab))
    tokenizer = build_tokenizer(vocabulary(dims), max_length=dims.max_position_embeddings)
    _write_processor(directory, tokenizer)


def vocabulary(dims: Dims) -> Vocabulary:
    return Vocabulary(
        vocab_size=dims.vocab_size,
        special_base_id=dims.special_base_id,
        special_tokens=SPECIAL_TOKENS,
        named_tokens=NAMED_TOKENS,
        pinned_words=dict(dims.pinned_words),
        plain_tokens=frozenset({"<think>", "</think>"}),
    )


def model_config(dims: Dims, vocab: dict[str, int], name: str) -> dict[str, Any]:
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
        "_name_or_path": f"earwitness/tiny-{name}",
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


def _write_processor(directory: Path, tokenizer: Any) -> None:
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3OmniMoeProcessor,
    )

    vision = {"patch_size": 16, "temporal_patch_size": 2, "merge_size": 2}
    processor = Qwen3OmniMoeProcessor(
        image_processor=Qwen2VLImageProcessor(**vision),
        video_processor=Qwen2VLVideoProcessor(**vision),
        feature_extractor=whisper_features(),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(str(directory))


def whisper_features() -> Any:
    """The Whisper feature extractor both Qwen-Omni generations use (128 mel bins, 16 kHz)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=MEL_BINS,
        sampling_rate=AUDIO_SAMPLE_RATE_HZ,
        hop_length=HOP_LENGTH_SAMPLES,
        n_fft=N_FFT_SAMPLES,
        chunk_length=FEATURE_CHUNK_S,
        padding_value=0.0,
        return_attention_mask=True,
        dither=0.0,
    )


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
