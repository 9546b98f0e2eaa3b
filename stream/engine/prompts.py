"""The prompt of each model family, rendered by the model's own processor, and its output parsed.

::

    settings (family, system_prompt, prompt) ─► messages ─► processor.apply_chat_template
        ─► prompt text with one audio placeholder (vLLM expands it per window)
    processor(text, audio of n s) ─► prompt tokens of an n-second window (no constants)
    completion ─► split_reasoning ─► caption (+ reasoning, Thinking only)

The messages are those of the Qwen-Omni model cards: the captioner gets one user turn holding
only the audio; the other families get a system turn (``engine.system_prompt``) and a user turn
holding the audio and ``engine.prompt``. qwen-omni-utils' ``process_mm_info`` is not used on
the streaming path: a window already is 16 kHz mono float32 (what it would resample to), and
vLLM takes it as is (docs/models.md says more).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from earwitness.errors import ConfigError
from stream.engine.families import TRAITS, ModelFamily, generation_defaults
from stream.engine.settings import SAMPLE_RATE_HZ, EngineSettings

logger = logging.getLogger(__name__)

THINK_START = "<think>"
THINK_END = "</think>"
AUDIO_PART = {"type": "audio", "audio": "window"}
"""The window's place in the messages; the template renders it as one audio placeholder."""


@dataclass(frozen=True)
class Sampling:
    """What the engine samples with: settings, else generation_config.json, else the family's."""

    temperature: float
    top_p: float
    top_k: int
    max_tokens: int
    stop_token_ids: tuple[int, ...]


@dataclass(frozen=True)
class PromptPlan:
    """The family's prompt, its id and sampling, fixed for the engine's lifetime."""

    family: ModelFamily
    text: str
    """The rendered prompt with one audio placeholder."""
    prompt_id: str
    """sha256 (16 hex digits) of the system prompt and the prompt (empty for the captioner)."""
    sampling: Sampling
    keep_reasoning: bool
    processor: Any

    def prompt_tokens(self, audio_s: float) -> int:
        """Prompt length in tokens for a window of ``audio_s`` seconds, counted by the processor."""
        samples = np.zeros(max(1, math.ceil(audio_s * SAMPLE_RATE_HZ)), np.float32)
        encoded = self.processor(text=[self.text], audio=[samples], return_tensors="np")
        return int(encoded["input_ids"].shape[1])

    def parse(self, text: str, truncated: bool) -> tuple[str, str | None]:
        """``(caption, reasoning)`` of a completion; reasoning None unless kept."""
        if not TRAITS[self.family].reasons:
            return text, None
        caption, reasoning = split_reasoning(text, truncated)
        return caption, (reasoning if self.keep_reasoning else None)


def plan_prompt(settings: EngineSettings, family: ModelFamily) -> PromptPlan:
    """Load the model's processor and render the family's prompt (``ConfigError`` if it cannot)."""
    processor = _load_processor(settings)
    system, prompt = prompt_texts(settings, family)
    text = processor.apply_chat_template(
        messages(family, system, prompt), tokenize=False, add_generation_prompt=True
    )
    plan = PromptPlan(
        family=family,
        text=text,
        prompt_id=prompt_id(system, prompt),
        sampling=sampling(settings, family),
        keep_reasoning=settings.keep_reasoning,
        processor=processor,
    )
    _check_fits(settings, plan)
    logger.info(
        "model family %s, prompt %s (%d tokens for a %g s window)",
        family, plan.prompt_id, plan.prompt_tokens(settings.max_audio_s), settings.max_audio_s,
    )  # fmt: skip
    return plan


def prompt_texts(settings: EngineSettings, family: ModelFamily) -> tuple[str, str]:
    """``(system prompt, prompt)`` the family is given; both empty for the captioner."""
    from stream.engine.families import DESCRIBE_SOUNDS_PROMPT, MONITORING_SYSTEM_PROMPT

    if not TRAITS[family].takes_prompt:
        if settings.prompt or settings.system_prompt:
            raise ConfigError(
                f"{settings.model} is a {family}: it takes no prompt or system_prompt"
            )
        return "", ""
    system = MONITORING_SYSTEM_PROMPT if settings.system_prompt is None else settings.system_prompt
    prompt = DESCRIBE_SOUNDS_PROMPT if settings.prompt is None else settings.prompt
    return system, prompt


def messages(family: ModelFamily, system: str, prompt: str) -> list[dict[str, Any]]:
    """The chat messages of one window (the audio part stands for the window)."""
    if not TRAITS[family].takes_prompt:
        return [{"role": "user", "content": [dict(AUDIO_PART)]}]
    user: list[dict[str, Any]] = [dict(AUDIO_PART)]
    if prompt:
        user.append({"type": "text", "text": prompt})
    turns: list[dict[str, Any]] = []
    if system:
        turns.append({"role": "system", "content": [{"type": "text", "text": system}]})
    return [*turns, {"role": "user", "content": user}]


def prompt_id(system: str, prompt: str) -> str:
    """The id caption events carry: the same prompts give the same id on every analyzer."""
    return hashlib.sha256(f"{system}\x00{prompt}".encode()).hexdigest()[:16]


def sampling(settings: EngineSettings, family: ModelFamily) -> Sampling:
    traits = TRAITS[family]
    model = generation_defaults(settings.model)

    def pick(name: str, fallback: Any) -> Any:
        value = getattr(settings, name)
        return value if value is not None else model.get(name, fallback)

    # ignore_eos means fixed-length output (benchmarks): no stop token may end it either
    eos = [] if settings.ignore_eos else model.get("eos_token_id", [])
    return Sampling(
        temperature=float(pick("temperature", traits.temperature)),
        top_p=float(pick("top_p", traits.top_p)),
        top_k=int(pick("top_k", traits.top_k)),
        max_tokens=settings.max_tokens or traits.max_tokens,
        stop_token_ids=tuple(eos if isinstance(eos, list) else [eos]),
    )


def split_reasoning(text: str, truncated: bool) -> tuple[str, str]:
    """``(answer, reasoning)`` of a Thinking completion ``[<think>] reasoning </think> answer``.

    Without ``</think>``: a completion cut by ``max_tokens`` or one that opened ``<think>`` is
    all reasoning (no caption); any other is all answer (the model did not think).
    """
    head, sep, tail = text.partition(THINK_END)
    if sep:
        return tail.strip(), head.replace(THINK_START, "", 1).strip()
    if truncated or text.lstrip().startswith(THINK_START):
        return "", text.replace(THINK_START, "", 1).strip()
    return text.strip(), ""


def _check_fits(settings: EngineSettings, plan: PromptPlan) -> None:
    needed = plan.prompt_tokens(settings.max_audio_s) + plan.sampling.max_tokens
    if needed > settings.max_model_len:
        raise ConfigError(
            f"engine.max_model_len={settings.max_model_len} < {needed} tokens needed for a "
            f"{settings.max_audio_s:g} s window of {plan.family} "
            f"({needed - plan.sampling.max_tokens} prompt tokens) plus "
            f"max_tokens={plan.sampling.max_tokens}"
        )


def _load_processor(settings: EngineSettings) -> Any:
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(settings.model, revision=settings.revision)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the processor of {settings.model}: {exc}") from exc
