"""Model families: detection, prompts rendered by each model's processor, output parsing.

The detection and parsing tests need no model; the prompt tests load each family's tiny test
model's processor and compare the engine's prompt with that processor's own rendering of the
model card's messages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from earwitness.errors import ConfigError
from stream.engine.families import (
    DESCRIBE_SOUNDS_PROMPT,
    MONITORING_SYSTEM_PROMPT,
    ModelFamily,
    detect_family,
)
from stream.engine.prompts import plan_prompt, prompt_id, sampling, split_reasoning
from stream.engine.settings import EngineSettings

QWEN3 = ["Qwen3OmniMoeForConditionalGeneration"]
QWEN25 = ["Qwen2_5OmniModel"]


def _model(tmp_path: Path, name: str, **config: object) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


@pytest.mark.parametrize(
    ("name", "config", "family"),
    [
        ("Qwen3-Omni-30B-A3B-Captioner", {"architectures": QWEN3}, "qwen3-omni-captioner"),
        ("Qwen3-Omni-30B-A3B-Thinking", {"architectures": QWEN3}, "qwen3-omni-thinking"),
        ("Qwen3-Omni-30B-A3B-Instruct", {"architectures": QWEN3}, "qwen3-omni-instruct"),
        ("omni", {"architectures": QWEN3, "enable_audio_output": True}, "qwen3-omni-instruct"),
        ("m", {"architectures": QWEN3, "_name_or_path": "x/Qwen3-Omni-Thinking"},
         "qwen3-omni-thinking"),
        ("Qwen2.5-Omni-3B", {"architectures": QWEN25}, "qwen2.5-omni"),
        ("edge", {"architectures": ["Qwen2_5OmniForConditionalGeneration"]}, "qwen2.5-omni"),
    ],
)  # fmt: skip
def test_detected_from_config_and_name(
    tmp_path: Path, name: str, config: dict, family: str
) -> None:
    assert detect_family(_model(tmp_path, name, **config)) == family


def test_hub_ids_are_detected_by_name() -> None:
    assert detect_family("Qwen/Qwen2.5-Omni-7B") is ModelFamily.QWEN2_5_OMNI
    assert detect_family("Qwen/Qwen3-Omni-30B-A3B-Captioner") is ModelFamily.QWEN3_OMNI_CAPTIONER
    with pytest.raises(ConfigError, match=r"set engine\.family"):
        detect_family("someone/Qwen3-Omni-finetune")  # no config.json to read, no telling name


def test_setting_overrides_detection_within_an_architecture(tmp_path: Path) -> None:
    model = _model(tmp_path, "Qwen3-Omni-30B-A3B-Instruct", architectures=QWEN3)
    assert detect_family(model, ModelFamily.QWEN3_OMNI_THINKING) is ModelFamily.QWEN3_OMNI_THINKING
    with pytest.raises(ConfigError, match="does not fit"):
        detect_family(model, ModelFamily.QWEN2_5_OMNI)


def test_a_thinker_with_no_telling_name_is_the_captioner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What every analyzer before families drove (e.g. a renamed captioner directory)."""
    model = _model(tmp_path, "my-omni", architectures=QWEN3, enable_audio_output=False)
    assert detect_family(model) is ModelFamily.QWEN3_OMNI_CAPTIONER
    assert "set engine.family to be explicit" in caplog.text


@pytest.mark.parametrize(
    ("name", "architectures", "match"),
    [
        ("llama", ["LlamaForCausalLM"], "unsupported model architecture"),
        ("nothing", [], "set engine.family"),
    ],
)
def test_undecided_or_unsupported_is_refused(
    tmp_path: Path, name: str, architectures: list[str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        detect_family(_model(tmp_path, name, architectures=architectures))


@pytest.mark.parametrize(
    ("text", "truncated", "answer", "reasoning"),
    [
        ("<think>a dog? yes.</think>\n\nA dog barks.", False, "A dog barks.", "a dog? yes."),
        ("a dog? yes.\n</think>\nA dog barks.", False, "A dog barks.", "a dog? yes."),
        ("<think>still thinking about the", True, "", "still thinking about the"),
        ("no tags at all, cut", True, "", "no tags at all, cut"),
        ("A dog barks.", False, "A dog barks.", ""),
    ],
)
def test_reasoning_is_split_from_the_caption(
    text: str, truncated: bool, answer: str, reasoning: str
) -> None:
    assert split_reasoning(text, truncated) == (answer, reasoning)


def test_prompt_id_depends_on_both_prompts() -> None:
    ids = {prompt_id("", ""), prompt_id("s", "p"), prompt_id("s", "q"), prompt_id("sp", "")}
    assert len(ids) == 4 and prompt_id("s", "p") == prompt_id("s", "p")
    assert all(len(i) == 16 for i in ids)


def test_sampling_settings_then_generation_config_then_family(tmp_path: Path) -> None:
    model = _model(tmp_path, "Qwen2.5-Omni-3B", architectures=QWEN25)
    (Path(model) / "generation_config.json").write_text(
        json.dumps({"temperature": 0.3, "top_k": 5, "eos_token_id": [7, 8]})
    )
    chosen = sampling(EngineSettings(model=model, top_k=9), ModelFamily.QWEN2_5_OMNI)
    assert (chosen.temperature, chosen.top_k) == (0.3, 9)  # file, then setting
    assert chosen.top_p == 0.8 and chosen.max_tokens == 768  # the family's
    assert chosen.stop_token_ids == (7, 8)
    fixed = sampling(EngineSettings(model=model, ignore_eos=True), ModelFamily.QWEN2_5_OMNI)
    assert fixed.stop_token_ids == ()  # fixed-length output: vLLM would stop on them anyway


# ------------------------------------------------------------ prompts from the processors


def _card_messages(family: ModelFamily, system: str, prompt: str) -> list[dict]:
    """The messages of each model card, written out here (not built by earwitness)."""
    audio = {"type": "audio", "audio": "clip.wav"}
    if family is ModelFamily.QWEN3_OMNI_CAPTIONER:
        return [{"role": "user", "content": [audio]}]
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {"role": "user", "content": [audio, {"type": "text", "text": prompt}]},
    ]


@pytest.mark.slow
@pytest.mark.parametrize("family", list(ModelFamily))
def test_prompt_is_the_processors_rendering(family_model_dir, family: ModelFamily) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoProcessor

    model = str(family_model_dir(family))
    plan = plan_prompt(EngineSettings(model=model, max_model_len=4096), family)
    processor = AutoProcessor.from_pretrained(model)
    card = _card_messages(family, MONITORING_SYSTEM_PROMPT, DESCRIBE_SOUNDS_PROMPT)
    assert plan.text == processor.apply_chat_template(
        card, add_generation_prompt=True, tokenize=False
    )
    assert plan.text.count(processor.audio_token) == 1  # vLLM expands it per window
    assert plan.prompt_tokens(2.5) < plan.prompt_tokens(30.0)
    if family is ModelFamily.QWEN3_OMNI_CAPTIONER:
        assert plan.prompt_id == prompt_id("", "")
    else:
        assert plan.prompt_id == prompt_id(MONITORING_SYSTEM_PROMPT, DESCRIBE_SOUNDS_PROMPT)


@pytest.mark.slow
def test_own_prompt_and_no_system_prompt(family_model_dir) -> None:  # type: ignore[no-untyped-def]
    model = str(family_model_dir(ModelFamily.QWEN3_OMNI_INSTRUCT))
    settings = EngineSettings(
        model=model, system_prompt="", prompt="List every safety-relevant sound."
    )
    plan = plan_prompt(settings, ModelFamily.QWEN3_OMNI_INSTRUCT)
    assert "<|im_start|>system" not in plan.text
    assert "List every safety-relevant sound.<|im_end|>" in plan.text
    assert plan.prompt_id == prompt_id("", "List every safety-relevant sound.")


@pytest.mark.slow
def test_model_len_too_short_for_the_family_is_refused(family_model_dir) -> None:  # type: ignore[no-untyped-def]
    model = str(family_model_dir(ModelFamily.QWEN2_5_OMNI))
    # Qwen2.5-Omni takes 25 audio tokens a second: 30 s needs 750 + template + prompt.
    with pytest.raises(ConfigError, match="max_model_len=1024"):
        plan_prompt(EngineSettings(model=model, max_model_len=1024), ModelFamily.QWEN2_5_OMNI)


@pytest.mark.slow
def test_captioner_detected_with_a_prompt_is_refused(tiny_model_dir: Path) -> None:
    settings = EngineSettings(model=str(tiny_model_dir), prompt="list the alarms")
    with pytest.raises(ConfigError, match="takes no prompt"):
        plan_prompt(settings, detect_family(settings.model))
