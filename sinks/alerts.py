"""The alert: what every receiver gets, in its own format (see :mod:`sinks.formats`).

One incident produces one ``firing`` alert and one ``resolved`` alert (plus optional re-sends
of ``firing`` for receivers that want them). ``idempotency_key`` = ``<alert_id>:<state>`` is
the same on every retry, re-send and replay, so receivers can dedupe.
"""

from __future__ import annotations

from enum import StrEnum

import orjson
from pydantic import BaseModel, ConfigDict, Field

from sinks.prose.evidence import Evidence
from sinks.rules import Severity


class AlertState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Resolution(StrEnum):
    """Why an incident resolved (set on ``resolved`` alerts only)."""

    QUIET = "quiet"
    """``resolve_after_s`` of non-matching audio (stream time)."""
    STALE = "stale"
    """No event from the stream for ``resolve_after_s + stale_grace_s`` of wall clock."""
    RULE_REMOVED = "rule_removed"
    """The rule is no longer in the rules file (at start-up)."""


class Alert(BaseModel):
    """One state change of one incident."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alert_id: str = Field(description="The incident id: UUIDv5 of rule, stream, first window.")
    state: AlertState
    rule_id: str
    description: str
    severity: Severity
    stream_id: str
    labels: dict[str, str] = Field(default_factory=dict)
    started_ns: int = Field(description="Stream time: start of the first matching window.")
    last_match_ns: int = Field(description="Stream time: end of the last matching window.")
    ended_ns: int | None = Field(default=None, description="Stream time it resolved at.")
    windows: int = Field(description="Matching windows seen so far.")
    matched: tuple[str, ...] = Field(description="Affirmed phrases in the last matching caption.")
    caption: str = Field(description="The last matching caption.")
    evidence: tuple[Evidence, ...] = Field(
        default=(), description="Why the last matching caption matched: sentence, confidence, why."
    )
    caption_truncated: bool = Field(
        default=False,
        description="The last matching caption was cut short by the analyzer's max_tokens: it "
        "counts as evidence like any other, but what followed the cut is unknown.",
    )
    first_segment_id: int
    first_window_index: int
    last_event_id: str = Field(description="event_id of the last matching caption event.")
    resolution: Resolution | None = Field(default=None, description="Why it resolved.")
    resolution_note: str | None = Field(
        default=None, description="Human words on the resolution, e.g. how long it was silent."
    )
    partition: int | None = Field(
        default=None,
        exclude=True,
        description="Captions partition of the incident: whose alert it is among replicas "
        "(bookkeeping; never sent to a receiver).",
    )

    @property
    def idempotency_key(self) -> str:
        return f"{self.alert_id}:{self.state}"

    @property
    def summary(self) -> str:
        title = self.description or self.rule_id
        return f"[{self.state.upper()}] {title} on {self.stream_id}"

    def to_dict(self) -> dict[str, object]:
        return {"idempotency_key": self.idempotency_key, **self.model_dump(mode="json")}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())
