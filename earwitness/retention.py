"""How long the topics earwitness creates keep what they hold: the privacy boundary
(docs/privacy.md). Applied when a service creates a topic; an existing topic keeps its own
configuration (``earwitness.topics.create_missing`` warns when it differs).

Two kinds of topic, two kinds of setting::

    time-retained  (frames, captions, dead letters)   cleanup.policy=delete
        retention_ms / retention_bytes: a record is deleted once older or past the size
    compacted      (changelog, incident state, acks, audit state)   cleanup.policy=compact
        the latest record per key is kept for good; a tombstone (null value) deletes a key,
        and delete_retention_ms / max_compaction_lag_ms bound how long the old value lingers

Unset fields leave the broker's defaults (``log.retention.hours`` = 168 h, unlimited bytes,
``log.cleaner.delete.retention.ms`` = 24 h, unlimited compaction lag).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Retention(BaseModel):
    """A time-retained topic (``cleanup.policy=delete``)."""

    model_config = _FROZEN

    retention_ms: int | None = Field(
        default=None,
        ge=-1,
        description="Records older than this (ms) are deleted (Kafka retention.ms); -1 = never; "
        "null = the broker's default (log.retention.hours, 168 h).",
    )
    retention_bytes: int | None = Field(
        default=None,
        ge=-1,
        description="Oldest records are deleted past this size per partition (retention.bytes); "
        "-1 = no limit; null = the broker's default (no limit).",
    )

    def topic_config(self) -> dict[str, str]:
        """The topic configuration a created topic gets."""
        config = {"cleanup.policy": "delete"}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        if self.retention_bytes is not None:
            config["retention.bytes"] = str(self.retention_bytes)
        return config


class CompactedRetention(BaseModel):
    """A compacted topic (``cleanup.policy=compact``, always: its readers need every key's
    latest record; a deleting policy would forget cursors, incidents or acks)."""

    model_config = _FROZEN

    delete_retention_ms: int | None = Field(
        default=None,
        ge=0,
        description="How long a tombstone (a deleted key) is kept after compaction, ms "
        "(delete.retention.ms); null = the broker's default (24 h).",
    )
    max_compaction_lag_ms: int | None = Field(
        default=None,
        ge=1,
        description="Longest time an overwritten or deleted record may stay before compaction "
        "removes it, ms (max.compaction.lag.ms); null = the broker's default (no bound).",
    )

    def topic_config(self) -> dict[str, str]:
        """The topic configuration a created topic gets."""
        config = {"cleanup.policy": "compact"}
        if self.delete_retention_ms is not None:
            config["delete.retention.ms"] = str(self.delete_retention_ms)
        if self.max_compaction_lag_ms is not None:
            config["max.compaction.lag.ms"] = str(self.max_compaction_lag_ms)
        return config
