"""``earwitness make-test-model``: config, tokenizer and processor of the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from earwitness.cli import main
from stream.engine.families import ModelFamily, detect_family
from stream.engine.testmodel import write_test_model
from stream.engine.testmodel_qwen3 import NAMED_TOKENS, SPECIAL_TOKENS, TINY

QWEN3_PROMPT = (
    "<|im_start|>user\n<|audio_start|><|audio_pad|><|audio_end|><|im_end|>\n<|im_start|>assistant\n"
)
"""The captioner's prompt on its model card (one audio, no text, no system message)."""

pytestmark = pytest.mark.slow  # builds model directories with transformers (~40 s)


def _config(directory: Path) -> dict:
    return json.loads((directory / "config.json").read_text())


def test_config_sets_what_vllm_reads(tiny_model_dir: Path) -> None:
    config = _config(tiny_model_dir)
    assert config["architectures"] == ["Qwen3OmniMoeForConditionalGeneration"]
    assert config["enable_audio_output"] is False
    thinker = config["thinker_config"]
    vision, audio, text = thinker["vision_config"], thinker["audio_config"], thinker["text_config"]
    assert vision["image_size"] == 768 and vision["apply_vit_abs_pos_embed"] is True
    assert audio["num_mel_bins"] == 128 and audio["output_dim"] == text["hidden_size"]
    assert text["head_dim"] >= 32  # CPU attention
    assert sum(text["rope_parameters"]["mrope_section"]) == text["head_dim"] // 2
    assert text["hidden_size"] % 32 == 0 and text["moe_intermediate_size"] % 32 == 0
    assert thinker["position_id_per_seconds"] == 13


def test_token_ids_agree_between_config_and_tokenizer(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    thinker = _config(tiny_model_dir)["thinker_config"]
    for key, token in [
        ("audio_token_id", "<|audio_pad|>"),
        ("audio_start_token_id", "<|audio_start|>"),
        ("audio_end_token_id", "<|audio_end|>"),
        ("image_token_id", "<|image_pad|>"),
        ("video_token_id", "<|video_pad|>"),
        ("user_token_id", "user"),
    ]:
        assert thinker[key] == tokenizer.convert_tokens_to_ids(token), key
    assert len(tokenizer) == thinker["text_config"]["vocab_size"] == TINY.vocab_size
    assert tokenizer.audio_token == NAMED_TOKENS["audio_token"]


def test_prompt_encodes_special_tokens_as_single_ids(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(QWEN3_PROMPT)["input_ids"])
    assert tokens == [
        "<|im_start|>", "user", "Ċ", "<|audio_start|>", "<|audio_pad|>", "<|audio_end|>",
        "<|im_end|>", "Ċ", "<|im_start|>", "assistant", "Ċ",
    ]  # fmt: skip
    assert tokenizer.decode(tokenizer("a bird sings")["input_ids"]) == "a bird sings"


def test_every_id_decodes(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tokenizer.decode(list(range(TINY.vocab_size)), skip_special_tokens=True)
    assert len(text) > 256
    kept = {"<think>", "</think>"}  # plain added tokens in Qwen3's tokenizer: decoding keeps them
    assert not any(token in text for token in set(SPECIAL_TOKENS) - kept)
    assert all(token in text for token in kept)


def test_processor_renders_and_expands_a_30s_window(tiny_model_dir: Path) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    messages = [{"role": "user", "content": [{"type": "audio", "audio": "window.wav"}]}]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == QWEN3_PROMPT
    fe = processor.feature_extractor
    assert (fe.feature_size, fe.hop_length, fe.n_fft, fe.sampling_rate) == (128, 160, 400, 16000)
    out = processor(text=QWEN3_PROMPT, audio=[np.zeros(480_000, np.float32)])
    tokens = out["input_ids"][0]
    # Qwen3-Omni's encoder: 13 tokens per full second of audio (30 s -> 390) + the 10 template
    # tokens; the processor expands the single pad itself.
    assert (
        sum(1 for t in tokens if t == processor.tokenizer.convert_tokens_to_ids("<|audio_pad|>"))
        == 390
    )
    assert len(tokens) == 400


def test_output_is_deterministic(tiny_model_dir: Path, tmp_path: Path) -> None:
    again = write_test_model(tmp_path / "again")
    for path in sorted(tiny_model_dir.iterdir()):
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("family", list(ModelFamily))
def test_each_family_is_detected_from_its_directory(family_model_dir, family: ModelFamily) -> None:  # type: ignore[no-untyped-def]
    assert detect_family(str(family_model_dir(family))) is family


def test_qwen25_model_has_qwen25_layout(family_model_dir) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoProcessor

    directory = family_model_dir(ModelFamily.QWEN2_5_OMNI)
    config = _config(directory)
    assert config["architectures"] == ["Qwen2_5OmniModel"]
    thinker = config["thinker_config"]
    processor = AutoProcessor.from_pretrained(directory)
    assert type(processor).__name__ == "Qwen2_5OmniProcessor"
    ids = processor.tokenizer.convert_tokens_to_ids
    assert thinker["audio_token_index"] == ids("<|AUDIO|>")
    assert thinker["audio_start_token_id"] == ids("<|audio_bos|>")
    assert thinker["audio_end_token_id"] == ids("<|audio_eos|>")
    text = thinker["text_config"]
    assert text["hidden_size"] // text["num_attention_heads"] >= 32  # CPU attention
    assert sum(text["rope_parameters"]["mrope_section"]) * 2 == (
        text["hidden_size"] // text["num_attention_heads"]
    )
    out = processor(
        text="<|audio_bos|><|AUDIO|><|audio_eos|>", audio=[np.zeros(480_000, np.float32)]
    )
    # Qwen2.5-Omni's encoder: 25 tokens per second (30 s -> 750), expanded by the processor.
    assert sum(1 for t in out["input_ids"][0] if t == ids("<|AUDIO|>")) == 750


def test_cli_family_writes_that_family(tmp_path: Path) -> None:
    assert main(["make-test-model", str(tmp_path / "t"), "--family", "qwen3-omni-thinking"]) == 0
    meta = json.loads((tmp_path / "t" / "earwitness-test-model.json").read_text())
    assert meta["family"] == "qwen3-omni-thinking"
    assert detect_family(str(tmp_path / "t")) is ModelFamily.QWEN3_OMNI_THINKING


@pytest.mark.slow
def test_cli_real_dims_writes_config_only(tmp_path: Path) -> None:
    assert main(["make-test-model", str(tmp_path / "real"), "--real-dims"]) == 0
    config = _config(tmp_path / "real")
    thinker = config["thinker_config"]
    assert thinker["audio_token_id"] == 151675 and thinker["audio_start_token_id"] == 151669
    assert config["im_start_token_id"] == 151644 and config["assistant_token_id"] == 77091
    assert thinker["text_config"]["vocab_size"] == 152064
    assert thinker["text_config"]["num_experts"] == 128
    assert thinker["vision_config"]["deepstack_visual_indexes"] == [8, 16, 24]
    assert not list((tmp_path / "real").glob("*.safetensors"))
