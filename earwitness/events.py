"""The caption event: the contract between the analyzer, which publishes one per window, and
every reader (the alert runner, ``earwitness tail``, downstream consumers).

It lives here, not in ``stream/``, so that readers import it without importing the analyzer.
A caption event is serialised with orjson as the Kafka value (key = stream id) and carries
CloudEvents binary-mode headers (``ce_*``, see :func:`cloudevent_headers`). Its JSON Schema is
committed as ``docs/caption-event.schema.json``; ``tests/test_events.py`` fails when it drifts.

The default topic names live here too, so every service, the CLI, the examples and the chart
agree on them: frames (:data:`FRAMES_TOPIC`) → captions (:data:`CAPTIONS_TOPIC`) → alerts
(:data:`ALERTS_TOPIC`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

import orjson
from pydantic import BaseModel, ConfigDict, Field

FRAMES_TOPIC = "earwitness.frames"
"""Default topic of audio frames (the analyzer's input, what ``ingest``/``publish`` write)."""
CAPTIONS_TOPIC = "earwitness.captions"
"""Default topic of caption events (the analyzer's output, the alert runner's input)."""
ALERTS_TOPIC = "earwitness.alerts"
"""Default topic of alerts (the Kafka receiver of the alert runner, ``tail --alerts``)."""

SCHEMA_VERSION = 2
"""Additive version of the event: a new version only adds optional fields, and readers ignore
fields they do not know, so any reader reads any version. A breaking change would get a new
CloudEvents type (``io.earwitness.caption.v2``) instead. Version 2 added ``frames``,
``analyzer`` and the generation fields (``model_family`` … ``reasoning``): docs/events.md."""
CLOUDEVENT_TYPE = "io.earwitness.caption.v1"
CLOUDEVENT_SOURCE = "earwitness/analyzer"
_EVENT_NAMESPACE = uuid.UUID("8d1f6a52-5a4f-4d0e-9b1e-6f0c2a7d9e31")


class EventKind(StrEnum):
    """What happened to the window."""

    CAPTION = "caption"
    """The engine captioned the window; ``caption`` holds the text."""
    SILENCE = "silence"
    """The window was below the silence gate; no caption was asked for."""
    SHED = "shed"
    """The window was dropped by load shedding; ``skipped`` says why."""
    ERROR = "error"
    """The engine failed on the window twice; ``error`` says why."""


_READER = ConfigDict(frozen=True, extra="ignore")
"""Unknown fields (from a newer analyzer) are ignored, never an error (see SCHEMA_VERSION)."""


class AudioStats(BaseModel):
    """Loudness and completeness of the window's audio."""

    model_config = _READER

    rms_dbfs: float = Field(description="RMS level in dBFS (-inf clamped to -120).")
    peak_dbfs: float = Field(description="Peak sample level in dBFS (-inf clamped to -120).")
    gap_fraction: float = Field(ge=0.0, le=1.0, description="Share of the window that is gap fill.")


class Timings(BaseModel):
    """Wall-clock timings of the window's path through the analyzer."""

    model_config = _READER

    window_closed_ns: int = Field(description="When the window was complete (Unix ns, wall clock).")
    caption_produced_ns: int = Field(description="When this event was built (Unix ns, wall clock).")
    engine_latency_ms: float | None = Field(
        default=None, description="Time the window spent in the engine; null if it skipped it."
    )


class FrameRange(BaseModel):
    """Where the window's frames are: its audio can be read back from the frames topic."""

    model_config = _READER

    topic: str = Field(description="The frames topic.")
    partition: int = Field(ge=0, description="Partition of the stream's frames.")
    first_offset: int = Field(ge=0, description="Offset of the window's first frame.")
    last_offset: int = Field(
        ge=0, description="Offset of its last frame (inclusive); other streams' frames between."
    )


class AnalyzerInfo(BaseModel):
    """Which analyzer made the event, with which settings (traceable in the audit trail)."""

    model_config = _READER

    instance: str = Field(description="The analyzer instance (its transactional id).")
    config_hash: str = Field(description="sha256 of its settings, secrets removed.")
    version: str = Field(description="earwitness version.")


class CaptionEvent(BaseModel):
    """One window's outcome. ``event_id`` is the same whenever the same window is replayed."""

    model_config = _READER

    schema_version: int = Field(default=SCHEMA_VERSION, description="Version of this schema.")
    event_id: str = Field(description="Deterministic UUIDv5 of stream, segment, window, revision.")
    kind: EventKind
    stream_id: str = Field(min_length=1, max_length=256)
    segment_id: int = Field(description="Capture time (ns) of the segment's first frame.")
    window_index: int = Field(ge=0, description="Index k of the window on its segment's grid.")
    window_start_ns: int = Field(description="Stream time of the window's first sample (Unix ns).")
    window_end_ns: int = Field(description="Stream time just past the window's last sample.")
    window_start: str = Field(description="window_start_ns as RFC 3339 (UTC).")
    window_end: str = Field(description="window_end_ns as RFC 3339 (UTC).")
    caption: str | None = Field(default=None, description="The captioner's text, if any.")
    model: str = Field(description="Model name or path the engine serves.")
    model_revision: str = Field(description="Model revision ('main' when not pinned).")
    audio: AudioStats
    skipped: str | None = Field(default=None, description="Why no caption was asked for.")
    error: str | None = Field(default=None, description="Why the engine produced no caption.")
    timings: Timings
    frames: FrameRange | None = Field(
        default=None, description="Where the window's frames are (null: no Kafka position)."
    )
    analyzer: AnalyzerInfo | None = Field(default=None, description="Who made this event.")
    model_family: str | None = Field(
        default=None, description="Model family (qwen3-omni-captioner, qwen2.5-omni, ...)."
    )
    prompt_id: str | None = Field(
        default=None, description="Hash of the system prompt and prompt the model was given."
    )
    finish_reason: str | None = Field(
        default=None, description="Why generation stopped: stop (end of caption) or length."
    )
    prompt_tokens: int | None = Field(default=None, ge=0, description="Prompt length in tokens.")
    output_tokens: int | None = Field(default=None, ge=0, description="Caption length in tokens.")
    truncated: bool | None = Field(
        default=None, description="True when max_tokens cut the caption short."
    )
    reasoning: str | None = Field(
        default=None, description="A thinking model's reasoning, when asked to keep it."
    )

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, data: bytes) -> CaptionEvent:
        return cls.model_validate(orjson.loads(data))


def event_id(stream_id: str, segment_id: int, window_index: int, model_revision: str) -> str:
    """The deterministic id of a window's event: a replayed window gets the same id."""
    name = f"{stream_id}\x00{segment_id}\x00{window_index}\x00{model_revision}"
    return str(uuid.uuid5(_EVENT_NAMESPACE, name))


def rfc3339(timestamp_ns: int) -> str:
    """Unix ns → RFC 3339 UTC with microseconds, e.g. ``2026-11-21T14:10:43.123456Z``."""
    seconds, ns = divmod(timestamp_ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=ns // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cloudevent_headers(event: CaptionEvent) -> list[tuple[str, bytes]]:
    """CloudEvents Kafka binding, binary mode: attributes as ``ce_*`` headers."""
    time = rfc3339(event.timings.caption_produced_ns)
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event.event_id.encode()),
        ("ce_source", CLOUDEVENT_SOURCE.encode()),
        ("ce_type", CLOUDEVENT_TYPE.encode()),
        ("ce_time", time.encode()),
        ("ce_subject", event.stream_id.encode()),
        ("content-type", b"application/json"),
    ]


def json_schema() -> dict[str, object]:
    """The JSON Schema committed as ``docs/caption-event.schema.json``."""
    return CaptionEvent.model_json_schema()
