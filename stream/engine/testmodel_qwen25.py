"""The Qwen2.5-Omni test model: the thinker of ``Qwen2_5OmniModel`` (dense Qwen2 text model).

Tiny dimensions, the Qwen2.5-Omni token layout (``<|AUDIO|>`` = base + 3, ``<|audio_bos|>``
= base + 4, ``<|audio_eos|>`` = base + 5, ``<|IMAGE|>`` = base + 12, ``<|VIDEO|>`` = base + 13)
and Qwen2.5-Omni's chat template, which renders a default system turn when the messages have
none. ``Qwen2_5OmniConfig`` fills the fields the thinker does not set (talker and token2wav
configs included; vLLM builds the thinker only). ``--real-dims`` writes the 7B's dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.engine.testmodel_qwen3 import MEL_BINS, whisper_features, write_json
from stream.engine.testtokenizer import Vocabulary, build_tokenizer, token_layout

NAME = "Qwen2.5-Omni-7B"

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",  # base + 0
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",  # base + 3
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_bos|>",  # base + 9
    "<|vision_eos|>",
    "<|vision_pad|>",
    "<|IMAGE|>",  # base + 12
    "<|VIDEO|>",  # base + 13
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
"""Qwen2.5-Omni's added tokens in id order; the real tokenizer puts the first at 151643."""

NAMED_TOKENS: dict[str, str] = {
    "audio_token": "<|AUDIO|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
}
"""Attributes ``Qwen2_5OmniProcessor`` reads from its tokenizer."""

CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'audio' or 'audio' in part -%}"
    "{{- '<|audio_bos|><|AUDIO|><|audio_eos|>' -}}"
    "{%- elif part['type'] == 'image' or 'image' in part -%}"
    "{{- '<|vision_bos|><|IMAGE|><|vision_eos|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
"""Qwen2.5-Omni's template: a default system turn, audio as ``<|audio_bos|><|AUDIO|>…``."""


@dataclass(frozen=True)
class Dims:
    vocab_size: int
    special_base_id: int
    pinned_words: dict[str, int]
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    mrope_section: tuple[int, int, int]
    audio_d_model: int
    audio_layers: int
    audio_heads: int
    audio_ffn: int
    vision_depth: int
    vision_hidden: int
    vision_heads: int
    vision_intermediate: int
    max_position_embeddings: int


TINY = Dims(
    # head_dim = hidden / heads = 32 (CPU attention), mrope_section sums to 16.
    vocab_size=384,
    special_base_id=320,
    pinned_words={},
    text_hidden=64,
    text_layers=2,
    text_heads=2,
    text_kv_heads=1,
    text_intermediate=128,
    mrope_section=(4, 6, 6),
    audio_d_model=64,
    audio_layers=2,
    audio_heads=2,
    audio_ffn=128,
    vision_depth=2,
    vision_hidden=64,
    vision_heads=2,
    vision_intermediate=128,
    max_position_embeddings=4096,
)

REAL = Dims(
    # Qwen2.5-Omni-7B's thinker.
    vocab_size=152_064,
    special_base_id=151_643,
    pinned_words={"user": 872, "system": 8948, "assistant": 77091},
    text_hidden=3584,
    text_layers=28,
    text_heads=28,
    text_kv_heads=4,
    text_intermediate=18_944,
    mrope_section=(16, 24, 24),
    audio_d_model=1280,
    audio_layers=32,
    audio_heads=20,
    audio_ffn=5120,
    vision_depth=32,
    vision_hidden=1280,
    vision_heads=16,
    vision_intermediate=3420,
    max_position_embeddings=32_768,
)


def write(directory: Path, *, real_dims: bool) -> None:
    """Write config, generation config, tokenizer and processor of the Qwen2.5-Omni model."""
    dims = REAL if real_dims else TINY
    vocab = token_layout(vocabulary(dims))
    write_json(directory / "config.json", model_config(dims, vocab))
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
    )


def model_config(dims: Dims, vocab: dict[str, int]) -> dict[str, Any]:
    """config.json of ``Qwen2_5OmniModel`` without audio output, thinker fields written out."""
    from transformers import Qwen2_5OmniConfig

    thinker = {
        "audio_config": _audio_config(dims),
        "vision_config": _vision_config(dims),
        "text_config": _text_config(dims),
        "audio_token_index": vocab["<|AUDIO|>"],
        "image_token_index": vocab["<|IMAGE|>"],
        "video_token_index": vocab["<|VIDEO|>"],
        "audio_start_token_id": vocab["<|audio_bos|>"],
        "audio_end_token_id": vocab["<|audio_eos|>"],
        "vision_start_token_id": vocab["<|vision_bos|>"],
        "vision_end_token_id": vocab["<|vision_eos|>"],
        "vision_token_id": vocab["<|vision_pad|>"],
        "user_token_id": vocab["user"],
        "bos_token_id": vocab["<|im_start|>"],
        "eos_token_id": vocab["<|im_end|>"],
        "pad_token_id": vocab["<|endoftext|>"],
        "position_id_per_seconds": 25,
        "seconds_per_chunk": 2,
        "dtype": "bfloat16",
    }
    config = Qwen2_5OmniConfig(thinker_config=thinker, enable_audio_output=False).to_dict()
    config["architectures"] = ["Qwen2_5OmniModel"]
    config["_name_or_path"] = f"earwitness/tiny-{NAME}"
    config["dtype"] = "bfloat16"
    return config


def generation_config(vocab: dict[str, int]) -> dict[str, Any]:
    return {
        "bos_token_id": vocab["<|im_start|>"],
        "eos_token_id": [vocab["<|im_end|>"], vocab["<|endoftext|>"]],
        "pad_token_id": vocab["<|endoftext|>"],
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
    }


def _audio_config(dims: Dims) -> dict[str, Any]:
    return {
        "num_mel_bins": MEL_BINS,
        "encoder_layers": dims.audio_layers,
        "encoder_attention_heads": dims.audio_heads,
        "encoder_ffn_dim": dims.audio_ffn,
        "d_model": dims.audio_d_model,
        "output_dim": dims.text_hidden,
        "n_window": 100,
        "max_source_positions": 1500,
        "activation_function": "gelu",
        "scale_embedding": False,
    }


def _vision_config(dims: Dims) -> dict[str, Any]:
    return {
        "depth": dims.vision_depth,
        "hidden_size": dims.vision_hidden,
        "intermediate_size": dims.vision_intermediate,
        "num_heads": dims.vision_heads,
        "out_hidden_size": dims.text_hidden,
        "fullatt_block_indexes": [dims.vision_depth - 1],
        "hidden_act": "silu",
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "tokens_per_second": 25,
    }


def _text_config(dims: Dims) -> dict[str, Any]:
    return {
        "vocab_size": dims.vocab_size,
        "hidden_size": dims.text_hidden,
        "intermediate_size": dims.text_intermediate,
        "num_hidden_layers": dims.text_layers,
        "num_attention_heads": dims.text_heads,
        "num_key_value_heads": dims.text_kv_heads,
        "max_position_embeddings": dims.max_position_embeddings,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": list(dims.mrope_section),
        },
        "use_sliding_window": False,
        "tie_word_embeddings": False,
    }


def _write_processor(directory: Path, tokenizer: Any) -> None:
    from transformers import Qwen2_5OmniProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    vision = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2}
    processor = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(**vision),
        video_processor=Qwen2VLVideoProcessor(**vision),
        feature_extractor=whisper_features(),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(str(directory))
