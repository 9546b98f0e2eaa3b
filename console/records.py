"""Kafka records → database rows: caption events, alerts and acks. Pure functions.

The console reads other services' records, so it is tolerant: unknown fields are ignored
(a newer analyzer or alert runner adds some; the alert runner's ``evidence`` is read when it is
there), and a record that cannot be read raises :class:`BadRecord`, whose message never holds
the record's text (captions must not reach logs): only what was wrong, and where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from earwitness.errors import BadInputError
from earwitness.events import CaptionEvent

FIRST_SENTENCE_MAX_CHARS = 160
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
M = TypeVar("M", bound=BaseModel)


class BadRecord(BadInputError):
    """A record the console cannot read; ``detail`` names fields, never their values."""


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One caption event, as the ``windows`` table holds it."""

    event_id: str
    stream_id: str
    kind: str
    segment_id: int
    window_index: int
    start_ns: int
    end_ns: int
    text: str | None
    """The caption; for shed/error windows, why there is none."""
    rms_dbfs: float
    peak_dbfs: float
    gap_fraction: float
    produced_ns: int
    frames: tuple[str, int, int, int] | None
    """(topic, partition, first_offset, last_offset) of the window's frames."""

    @property
    def first_sentence(self) -> str:
        return first_sentence(self.text) if self.kind == "caption" else ""


_TOLERANT = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)


class Evidence(BaseModel):
    """Why a rule matched (the alert runner's ``evidence`` items); every field optional."""

    model_config = _TOLERANT

    phrase: str = ""
    sentence: str = ""
    confidence: float | None = None
    why: str = ""


class AlertRow(BaseModel):
    """An alert from the alerts topic (sinks/alerts.py ``Alert``), read tolerantly."""

    model_config = _TOLERANT

    alert_id: str = Field(min_length=1, max_length=256)
    state: str = Field(pattern="^(firing|resolved)$")
    rule_id: str
    description: str = ""
    severity: str = "info"
    stream_id: str = Field(min_length=1, max_length=256)
    started_ns: int
    last_match_ns: int
    ended_ns: int | None = None
    windows: int = 0
    matched: tuple[str, ...] = ()
    caption: str = ""
    evidence: tuple[Evidence, ...] = ()
    last_event_id: str = ""
    resolution: str | None = None
    resolution_note: str | None = None

    def phrases(self) -> list[str]:
        """Words to highlight in the caption: the matched phrases and the evidence's."""
        found = [*self.matched, *(item.phrase for item in self.evidence)]
        return list(dict.fromkeys(p for p in found if p.strip()))


class AckRow(BaseModel):
    """An acknowledgement (the acks topic; key = alert id). ``note`` is optional."""

    model_config = _TOLERANT

    alert_id: str = Field(min_length=1, max_length=256)
    by: str = Field(default="", max_length=256)
    note: str = Field(default="", max_length=2_000)
    acked_ns: int

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


def window_row(value: bytes | None) -> WindowRow:
    """A caption event's value → :class:`WindowRow`; :class:`BadRecord` if it is not one."""
    try:
        event = CaptionEvent.model_validate(orjson.loads(value or b""))
    except orjson.JSONDecodeError:
        raise BadRecord("bad_json", "the caption record is not JSON") from None
    except ValidationError as exc:
        raise BadRecord("bad_event", _fields(exc)) from None
    frames = event.frames
    return WindowRow(
        event_id=event.event_id,
        stream_id=event.stream_id,
        kind=event.kind.value,
        segment_id=event.segment_id,
        window_index=event.window_index,
        start_ns=event.window_start_ns,
        end_ns=event.window_end_ns,
        text=event.caption if event.kind == "caption" else (event.error or event.skipped),
        rms_dbfs=event.audio.rms_dbfs,
        peak_dbfs=event.audio.peak_dbfs,
        gap_fraction=event.audio.gap_fraction,
        produced_ns=event.timings.caption_produced_ns,
        frames=None
        if frames is None
        else (frames.topic, frames.partition, frames.first_offset, frames.last_offset),
    )


def alert_row(value: bytes | None) -> AlertRow:
    """An alert's value → :class:`AlertRow`; :class:`BadRecord` if it is not one."""
    return _parse(AlertRow, value, "alert")


def ack_row(value: bytes | None) -> AckRow:
    """An ack's value → :class:`AckRow`; :class:`BadRecord` if it is not one."""
    return _parse(AckRow, value, "ack")


def _parse(model: type[M], value: bytes | None, what: str) -> M:
    try:
        return model.model_validate(orjson.loads(value or b""))
    except orjson.JSONDecodeError:
        raise BadRecord("bad_json", f"the {what} record is not JSON") from None
    except ValidationError as exc:
        raise BadRecord(f"bad_{what}", _fields(exc)) from None


def _fields(exc: ValidationError) -> str:
    """Which fields were wrong and how, without their values."""
    return "; ".join(
        f"{'.'.join(map(str, error['loc'])) or 'value'}: {error['type']}"
        for error in exc.errors(include_input=False, include_url=False)[:5]
    )


def first_sentence(text: str | None) -> str:
    """The first sentence of ``text`` on one line, cut to :data:`FIRST_SENTENCE_MAX_CHARS`."""
    flat = " ".join((text or "").split())
    sentence = _SENTENCE_END.split(flat, maxsplit=1)[0]
    if len(sentence) <= FIRST_SENTENCE_MAX_CHARS:
        return sentence
    return sentence[: FIRST_SENTENCE_MAX_CHARS - 1].rstrip() + "…"
