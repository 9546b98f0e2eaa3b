"""Model families: which Qwen-Omni model the engine drives, and what differs between them.

::

    family                 vLLM architecture (config.json)          prompt         output
    qwen3-omni-captioner   Qwen3OmniMoeForConditionalGeneration     audio only     caption
    qwen3-omni-instruct    Qwen3OmniMoeForConditionalGeneration     system + text  caption
    qwen3-omni-thinking    Qwen3OmniMoeForConditionalGeneration     system + text  <think>…</think>
                                                                                   caption
    qwen2.5-omni           Qwen2_5OmniModel (…ForConditionalGeneration)  system + text  caption

The three Qwen3-Omni models share one architecture (vLLM runs their thinker), so
``config.json`` alone tells Qwen3-Omni from Qwen2.5-Omni, and the model's name (its directory,
hub id or the config's ``_name_or_path``) tells Captioner, Instruct and Thinking apart; a
Qwen3-Omni with a talker (``enable_audio_output``) and no telling name is the Instruct (the only
one with a talker), and one without a talker and no telling name the captioner (what every
earwitness before model families drove; a warning says so). ``engine.family`` overrides the
detection; a family that contradicts the architecture, or a hub id whose name says nothing, is
refused (ConfigError).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from earwitness.errors import ConfigError

logger = logging.getLogger(__name__)


class ModelFamily(StrEnum):
    """The model families the engine can drive (``engine.family``)."""

    QWEN3_OMNI_CAPTIONER = "qwen3-omni-captioner"
    QWEN3_OMNI_INSTRUCT = "qwen3-omni-instruct"
    QWEN3_OMNI_THINKING = "qwen3-omni-thinking"
    QWEN2_5_OMNI = "qwen2.5-omni"


MONITORING_SYSTEM_PROMPT = (
    "You are the listening part of a security and safety monitoring system. You hear short "
    "clips from microphones and cameras and report what can be heard, factually, without "
    "guessing beyond the audio."
)
"""Default system prompt of the families that take one."""
DESCRIBE_SOUNDS_PROMPT = (
    "Describe every sound in this audio clip, in the order they occur: speech (what is said, "
    "the tone, how many voices), shouting or screaming, alarms and sirens, breaking glass, "
    "impacts, gunshots, vehicles, machines, animals, music and the background. Say when a "
    "sound stops or changes. If the clip is quiet, say so."
)
"""Default user prompt (the describe-all-sounds prompt, written for monitoring)."""


@dataclass(frozen=True)
class FamilyTraits:
    """What one family needs that the others do not."""

    takes_prompt: bool
    """Whether the model follows a system prompt and a text prompt (the captioner does not)."""
    reasons: bool
    """Whether it writes ``<think>…</think>`` before its answer."""
    max_tokens: int
    """Default caption cap: real captioner captions are ~400-650 tokens; reasoning adds more."""
    temperature: float
    top_p: float
    top_k: int
    """Sampling when neither the settings nor the model's generation_config.json set it."""


TRAITS: dict[ModelFamily, FamilyTraits] = {
    ModelFamily.QWEN3_OMNI_CAPTIONER: FamilyTraits(False, False, 1024, 0.6, 0.95, 20),
    ModelFamily.QWEN3_OMNI_INSTRUCT: FamilyTraits(True, False, 768, 0.6, 0.95, 20),
    ModelFamily.QWEN3_OMNI_THINKING: FamilyTraits(True, True, 2048, 0.6, 0.95, 20),
    ModelFamily.QWEN2_5_OMNI: FamilyTraits(True, False, 768, 0.7, 0.8, 20),
}

_QWEN3_ARCHITECTURES = {
    "Qwen3OmniMoeForConditionalGeneration",
    "Qwen3OmniMoeThinkerForConditionalGeneration",
}
_QWEN2_5_ARCHITECTURES = {
    "Qwen2_5OmniModel",
    "Qwen2_5OmniForConditionalGeneration",
    "Qwen2_5OmniThinkerForConditionalGeneration",
}
_QWEN3_BY_NAME = (
    ("captioner", ModelFamily.QWEN3_OMNI_CAPTIONER),
    ("thinking", ModelFamily.QWEN3_OMNI_THINKING),
    ("instruct", ModelFamily.QWEN3_OMNI_INSTRUCT),
)


def detect_family(model: str, configured: ModelFamily | None = None) -> ModelFamily:
    """The family of ``model`` (a local directory or hub id); ``configured`` wins if it fits."""
    config = _read_json(Path(model) / "config.json")
    names = f"{model} {config.get('_name_or_path', '')}".lower()
    lineage = _lineage(config.get("architectures") or [], names)
    if configured is not None:
        if lineage is not None and _lineage_of(configured) != lineage:
            raise ConfigError(
                f"engine.family={configured} does not fit {model}: its config.json says "
                f"{config.get('architectures')} ({lineage} family)"
            )
        return configured
    if lineage == "qwen2.5-omni":
        return ModelFamily.QWEN2_5_OMNI
    if lineage == "qwen3-omni":
        for word, family in _QWEN3_BY_NAME:
            if word in names:
                return family
        if config.get("enable_audio_output"):
            return ModelFamily.QWEN3_OMNI_INSTRUCT
        if config:  # thinker only, no telling name: the captioner, as before families existed
            logger.warning(
                "%s: a Qwen3-Omni thinker whose name says neither captioner, instruct nor "
                "thinking; driving it as the captioner (set engine.family to be explicit)",
                model,
            )
            return ModelFamily.QWEN3_OMNI_CAPTIONER
    raise ConfigError(
        f"cannot tell the model family of {model} (architectures "
        f"{config.get('architectures')}); set engine.family to one of "
        f"{', '.join(f.value for f in ModelFamily)}"
    )


def generation_defaults(model: str) -> dict[str, Any]:
    """Sampling fields of the model's ``generation_config.json`` ({} when it has none)."""
    config = _read_json(Path(model) / "generation_config.json")
    wanted = ("temperature", "top_p", "top_k", "eos_token_id")
    return {key: config[key] for key in wanted if config.get(key) is not None}


def _lineage(architectures: list[str], names: str) -> str | None:
    if _QWEN2_5_ARCHITECTURES & set(architectures):
        return "qwen2.5-omni"
    if _QWEN3_ARCHITECTURES & set(architectures):
        return "qwen3-omni"
    if architectures:
        raise ConfigError(f"unsupported model architecture {architectures} (see docs/models.md)")
    if "qwen2.5-omni" in names:
        return "qwen2.5-omni"
    return "qwen3-omni" if "qwen3-omni" in names else None


def _lineage_of(family: ModelFamily) -> str:
    return "qwen2.5-omni" if family is ModelFamily.QWEN2_5_OMNI else "qwen3-omni"


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}
