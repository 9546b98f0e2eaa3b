"""Evidence: why a rule matched a caption, as carried on incidents and every alert."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

SENTENCE_MAX_CHARS = 400
EVIDENCE_MAX_ITEMS = 3


class Why(StrEnum):
    """How the matched phrase stood in its sentence."""

    AFFIRMED = "affirmed"
    """Stated as happening."""
    HEDGED = "hedged"
    """Stated as likely, not certain ("likely a gunshot"); ``confidence`` says how much."""
    PERFORMED = "performed"
    """A performed or playful sound (only where the rule's ``min_confidence`` lets it count)."""
    SPEECH = "speech"
    """Inside quoted speech, or someone telling about it (rules with ``speech``/``reported``)."""
    MEDIA = "media"
    """Playing from a screen or speaker (rules with ``source: media`` or ``any``)."""
    SILENCE = "silence"
    """A ``silence`` window (rules with ``events: [silence]``): no text was matched."""


class Evidence(BaseModel):
    """One matched phrase: where it stood and how sure the caption was about it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phrase: str = Field(description="The words that matched, as in the caption.")
    sentence: str = Field(description="The sentence they stood in (at most 400 characters).")
    confidence: float = Field(ge=0.0, le=1.0, description="1.0 affirmed; hedges lower it.")
    why: Why
    cues: tuple[str, ...] = Field(
        default=(), description="The cues that applied, e.g. \"hedged: 'likely'\"."
    )


def clip(sentence: str) -> str:
    """The sentence on one line, cut to :data:`SENTENCE_MAX_CHARS`."""
    flat = " ".join(sentence.split())
    if len(flat) <= SENTENCE_MAX_CHARS:
        return flat
    return flat[: SENTENCE_MAX_CHARS - 1] + "…"
