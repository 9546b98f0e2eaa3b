"""``earwitness make-test-model DIR``: a Qwen3-Omni thinker model directory built locally.

CI and the CPU demo cannot download the 60 GB captioner, so they run a model of the same
architecture (``Qwen3OmniMoeForConditionalGeneration``, thinker only) with tiny dimensions and
random weights. Nothing is downloaded: every file is written here.

What the directory holds::

    config.json                  every field set (transformers' class defaults are not the
                                 captioner's values), vision fields vLLM reads included
    generation_config.json       eos = <|im_end|>, <|endoftext|>
    tokenizer.json               byte-level BPE: 256 byte tokens, a few merges (user, system,
    tokenizer_config.json        assistant), fillers, then Qwen's special tokens in Qwen's
    chat_template.jinja          order (<|im_start|> = base + 1, ..., <|audio_pad|> = base + 32)
    processor_config.json        Qwen3OmniMoeProcessor: Whisper features (128 mel bins, hop 160,
                                 n_fft 400, 16 kHz) and the image/video processors it insists on
    earwitness-test-model.json   how and by which earwitness it was made

There are no weights: load it with ``load_format="dummy"`` (vLLM then fills the parameters
with random values). The tokenizer covers every id below ``vocab_size``, so any sampled id
decodes to text; the text is noise, and random weights seldom sample ``<|im_end|>``, so set
``max_tokens`` (and ``ignore_eos`` when timing).

``--real-dims`` writes the full-size captioner's dimensions instead (config only, still
``load_format="dummy"``) for GPU benchmarks: the same small tokenizer, padded with filler
tokens so that the special tokens sit at the real ids (``<|audio_pad|>`` = 151675).

The output is a pure function of the options and the installed transformers version (no
clock, no randomness, nothing seeded because nothing is random): two runs write
byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from stream.engine.settings import CAPTIONER_PROMPT
from stream.engine.testconfig import MEL_BINS, REAL, TINY, Dims, generation_config, model_config

__all__ = ["CAPTIONER_PROMPT", "REAL", "TINY", "Dims", "build_tokenizer", "write_test_model"]

logger = logging.getLogger(__name__)

AUDIO_SAMPLE_RATE_HZ = 16_000
HOP_LENGTH_SAMPLES = 160
N_FFT_SAMPLES = 400
FEATURE_CHUNK_S = 300
"""Whisper feature extractor ``chunk_length`` of Qwen3-Omni: pads/truncates at 300 s."""

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
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
"""Renders one user turn holding one audio as the captioner's prompt (no system message)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, metavar="DIR", help="where to write the model")
    parser.add_argument(
        "--real-dims",
        action="store_true",
        help="full-size captioner dimensions (config only; GPU benchmarks with load_format=dummy)",
    )


def run(args: argparse.Namespace) -> int:
    write_test_model(args.directory, real_dims=args.real_dims)
    print(f"wrote {'full-size' if args.real_dims else 'tiny'} test model to {args.directory}")
    print('load it with load_format="dummy": it has no weights, and its captions are noise')
    return 0


def write_test_model(directory: Path, *, real_dims: bool = False) -> Path:
    """Write the model directory (created if needed; existing files are overwritten)."""
    dims = REAL if real_dims else TINY
    directory.mkdir(parents=True, exist_ok=True)
    vocab = token_layout(dims)
    _write_json(directory / "config.json", model_config(dims, vocab))
    _write_json(directory / "generation_config.json", generation_config(vocab))
    _write_processor(directory, build_tokenizer(dims))
    _write_json(
        directory / "earwitness-test-model.json",
        {"dims": "real" if real_dims else "tiny", "load_format": "dummy", "weights": None},
    )
    logger.info("wrote test model (%s dims) to %s", "real" if real_dims else "tiny", directory)
    return directory


def token_layout(dims: Dims) -> dict[str, int]:
    """Every token of the vocabulary and its id, ``0 .. vocab_size - 1`` without gaps.

    Ids: 256 byte tokens, merge tokens (some pinned), fillers up to ``special_base_id``, the
    special tokens, then fillers up to ``vocab_size`` so that every id decodes.
    """
    pinned = dict(dims.pinned_words)
    free = [tok for tok in _byte_tokens() + _merge_tokens() if tok not in pinned]
    layout: dict[str, int] = {}
    next_free = iter(free)
    taken = set(pinned.values())
    for token_id in range(dims.special_base_id):
        if token_id in taken:
            continue
        token = next(next_free, None)
        layout[token if token is not None else f"<|fill_{token_id}|>"] = token_id
    if next(next_free, None) is not None:
        raise ValueError("special_base_id leaves no room for the byte and merge tokens")
    layout.update(pinned)
    for offset, token in enumerate(SPECIAL_TOKENS):
        layout[token] = dims.special_base_id + offset
    for token_id in range(dims.special_base_id + len(SPECIAL_TOKENS), dims.vocab_size):
        layout[f"<|reserved_{token_id}|>"] = token_id
    return layout


def build_tokenizer(dims: Dims) -> Any:
    """A ``PreTrainedTokenizerFast`` over a byte-level BPE, built offline from ``token_layout``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    layout = token_layout(dims)
    added = set(SPECIAL_TOKENS) | {t for t in layout if t.startswith("<|reserved_")}
    bpe_vocab = {tok: i for tok, i in layout.items() if tok not in added}
    merges = [pair for word in _MERGE_WORDS for pair in _merge_chain(word)]
    tokenizer = Tokenizer(models.BPE(vocab=bpe_vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
    )
    reserved = sorted((i, t) for t, i in layout.items() if t.startswith("<|reserved_"))
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for _, t in reserved])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        extra_special_tokens=dict(NAMED_TOKENS),
        model_max_length=dims.max_position_embeddings,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def _write_processor(directory: Path, tokenizer: Any) -> None:
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3OmniMoeProcessor,
        WhisperFeatureExtractor,
    )

    feature_extractor = WhisperFeatureExtractor(
        feature_size=MEL_BINS,
        sampling_rate=AUDIO_SAMPLE_RATE_HZ,
        hop_length=HOP_LENGTH_SAMPLES,
        n_fft=N_FFT_SAMPLES,
        chunk_length=FEATURE_CHUNK_S,
        padding_value=0.0,
        return_attention_mask=True,
        dither=0.0,
    )
    vision = {"patch_size": 16, "temporal_patch_size": 2, "merge_size": 2}
    processor = Qwen3OmniMoeProcessor(
        image_processor=Qwen2VLImageProcessor(**vision),
        video_processor=Qwen2VLVideoProcessor(**vision),
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(str(directory))


_MERGE_WORDS = ("user", "system", "assistant")


def _merge_chain(word: str) -> list[tuple[str, str]]:
    return [(word[:i], word[i]) for i in range(1, len(word))]


def _merge_tokens() -> list[str]:
    tokens: list[str] = []
    for word in _MERGE_WORDS:
        tokens += [word[: i + 1] for i in range(1, len(word)) if word[: i + 1] not in tokens]
    return tokens


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode alphabet, in byte order (the ByteLevel pre-tokenizer's)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
