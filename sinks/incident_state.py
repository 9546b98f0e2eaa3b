"""An incident's state: what the alert runner keeps per (rule, stream) in its compacted state
topic, its key there, and the incident id (``sinks/incidents.py`` makes and changes them).

The incident id is the UUIDv5 of rule id, stream id and the first matching window's
(segment id, window index), so replaying the same captions yields the same ids.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from sinks.prose.evidence import Evidence

_INCIDENT_NAMESPACE = uuid.UUID("3c0f8e1b-6a7d-5c2e-9f41-0b8d2a6e7c15")


class Status(StrEnum):
    PENDING = "pending"
    FIRING = "firing"


class IncidentState(BaseModel):
    """Everything needed to continue an incident after a restart.

    Fields a newer runner adds are ignored (``extra="ignore"``), so an older one reads its
    state during a rolling upgrade or a rollback instead of calling the record bad.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    rule_id: str
    stream_id: str
    incident_id: str
    status: Status
    started_ns: int
    last_match_ns: int
    windows: int
    matched: tuple[str, ...]
    caption: str
    evidence: tuple[Evidence, ...] = Field(
        default=(), description="Why the last matching window matched (newer runners only)."
    )
    caption_truncated: bool = Field(
        default=False,
        description="The last matching caption was cut by the analyzer's max_tokens "
        "(newer runners only).",
    )
    first_segment_id: int
    first_window_index: int
    last_event_id: str
    partition: int | None = Field(
        default=None, description="Captions partition of the stream's last event."
    )
    last_seen_ns: int | None = Field(
        default=None,
        description="Wall clock (Unix ns) the runner received the stream's last event at.",
    )

    @property
    def key(self) -> str:
        return state_key(self.rule_id, self.stream_id)


def state_key(rule_id: str, stream_id: str) -> str:
    """The state topic key; rule ids cannot hold ``|``, so the split is unambiguous."""
    return f"{rule_id}|{stream_id}"


def incident_id(rule_id: str, stream_id: str, segment_id: int, window_index: int) -> str:
    name = f"{rule_id}\x00{stream_id}\x00{segment_id}\x00{window_index}"
    return str(uuid.uuid5(_INCIDENT_NAMESPACE, name))
