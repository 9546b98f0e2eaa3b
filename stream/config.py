"""The analyzer's settings: one frozen, validated tree, read from a file and ``EARWITNESS_*``.

::

    AnalyzerSettings            (root; the only class that reads the environment)
    ├── kafka: KafkaSettings    broker and client security (earwitness/kafka.py), topics, group
    ├── windowing: WindowSettings   (windowing/config.py)
    ├── engine: EngineSettings      (stream/engine/settings.py)
    ├── batch: BatchSettings        (stream/engine/settings.py) micro-batching and flow control
    └── http: HttpSettings      /metrics, /healthz, /readyz
"""

from __future__ import annotations

import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from earwitness.config import Settings, load_settings
from earwitness.kafka import KafkaClientSettings, captions_topic_field, frames_topic_field
from stream.engine.settings import BatchSettings, EngineSettings
from windowing.config import WindowSettings


class KafkaSettings(KafkaClientSettings):
    """Where frames come from and captions go (the cluster itself: :class:`KafkaClientSettings`)."""

    frames_topic: str = frames_topic_field()
    captions_topic: str = captions_topic_field()
    dead_letter_topic: str | None = Field(
        default=None, description="Topic for bad frames; default '<frames_topic>.dlq'."
    )
    changelog_topic: str | None = Field(
        default=None,
        description="Compacted topic of stream cursors; default '<group_id>-cursors-changelog'.",
    )
    group_id: str = Field(default="earwitness-analyzer", description="Consumer group id.")
    group_instance_id: str | None = Field(
        default=None, description="Static membership id (one per pod) to avoid restart rebalances."
    )
    transactional_id: str | None = Field(
        default=None,
        description=(
            "Transactional id of this instance; default '<group_id>-<group_instance_id>', or a "
            "random suffix without static membership. A stable id aborts a crashed instance's "
            "open transaction at once on restart."
        ),
    )
    transaction_timeout_ms: int = Field(
        default=60_000, ge=1_000, description="Broker-side timeout of an open transaction."
    )
    create_topics: bool = Field(
        default=True, description="Create missing output, dead-letter and changelog topics."
    )
    new_topic_partitions: int = Field(
        default=1, ge=1, description="Partitions of the frames topic if the analyzer creates it."
    )
    replication_factor: int = Field(
        default=-1, description="Replication of created topics; -1 = the broker's default."
    )
    session_timeout_ms: int = Field(default=45_000, ge=6_000, description="Group session timeout.")
    max_poll_interval_ms: int = Field(
        default=300_000, ge=10_000, description="Longest gap between polls before eviction."
    )
    commit_interval_ms: int = Field(
        default=1_000, ge=10, description="How often finished work is committed."
    )

    @property
    def dlq_topic(self) -> str:
        return self.dead_letter_topic or f"{self.frames_topic}.dlq"

    @property
    def changelog(self) -> str:
        return self.changelog_topic or f"{self.group_id}-cursors-changelog"

    def txn_id(self) -> str:
        if self.transactional_id:
            return self.transactional_id
        suffix = self.group_instance_id or uuid.uuid4().hex[:12]
        return f"{self.group_id}-{suffix}"


class HttpSettings(BaseModel):
    """The operational HTTP endpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="0.0.0.0", description="Address for /metrics, /healthz, /readyz.")
    port: int = Field(default=9400, ge=0, le=65535, description="Port; 0 picks a free one.")


class AnalyzerSettings(Settings):
    """Everything ``earwitness analyze`` needs; ``docs/analyzer.md`` lists the settings."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    windowing: WindowSettings = Field(default_factory=WindowSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    failpoints: dict[str, int] = Field(
        default_factory=dict,
        description="Testing only: SIGKILL at the n-th hit of a named point (see failpoints.py).",
    )


def load_analyzer_settings(path: Path | None = None) -> AnalyzerSettings:
    return load_settings(AnalyzerSettings, path)
