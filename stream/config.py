"""The analyzer's settings: one frozen, validated tree, read from a file and the environment
(``EARWITNESS_ANALYZER_*``).

::

    AnalyzerSettings            (root; the only class that reads the environment)
    ├── kafka: KafkaSettings    broker and client security (earwitness/kafka.py), topics, group
    ├── windowing: WindowSettings   (windowing/config.py)
    ├── engine: EngineSettings      (stream/engine/settings.py)
    ├── batch: BatchSettings        (stream/engine/settings.py) micro-batching and flow control
    ├── dead_letter: DeadLetterSettings   what a bad frame's dead letter keeps
    ├── http: HttpSettings      /metrics, /healthz, /readyz
    └── audit: AuditSettings    start/stop/config_changed records (earwitness/audit.py)
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from earwitness.audit import AuditSettings
from earwitness.config import MetricsToken, Settings, load_settings
from earwitness.kafka import KafkaClientSettings, captions_topic_field, frames_topic_field
from earwitness.retention import CompactedRetention, Retention
from stream.engine.settings import BatchSettings, EngineSettings
from windowing.config import WindowSettings


class AnalyzerRetention(BaseModel):
    """Retention of the topics the analyzer creates (earwitness/retention.py, docs/privacy.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    frames: Retention = Field(
        default_factory=Retention, description="The frames topic (raw audio), if created here."
    )
    captions: Retention = Field(default_factory=Retention, description="The captions topic.")
    dead_letters: Retention = Field(
        default_factory=Retention, description="Bad frames' dead letters (audio, if kept)."
    )
    changelog: CompactedRetention = Field(
        default_factory=CompactedRetention, description="The compacted cursors changelog."
    )


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
    retention: AnalyzerRetention = Field(
        default_factory=AnalyzerRetention,
        description="Retention of created topics (applied at creation only).",
    )
    session_timeout_ms: int = Field(default=45_000, ge=6_000, description="Group session timeout.")
    max_poll_interval_ms: int = Field(
        default=300_000, ge=10_000, description="Longest gap between polls before eviction."
    )
    commit_interval_ms: int = Field(
        default=1_000, ge=10, description="How often finished work is committed."
    )
    cursor_retention_s: float = Field(
        default=3600.0,
        gt=0.0,
        description="A stream idle this long, whose frames are all committed, is forgotten: its "
        "state leaves memory and its changelog cursor is tombstoned (memory stays bounded by "
        "the streams alive). If it comes back, its next frame starts a new segment.",
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


class DeadLetterSettings(BaseModel):
    """What a bad frame's dead-letter record keeps (stream/deadletter.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    include_payload: bool = Field(
        default=True,
        description="Copy the bad frame's value (its audio) into its dead letter. Off: the "
        "record keeps the reason and the ew-src-* reference to the frame, but no audio "
        "(privacy; the frame itself lives as long as the frames topic keeps it).",
    )
    max_record_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        description="Largest dead letter produced: a bad record's key, value and headers are "
        "left out (and said so in ew-dropped) past it. Keep it under the broker's "
        "message.max.bytes (1 MB by default): one oversize record must never stop the analyzer.",
    )


class HttpSettings(MetricsToken):
    """The operational HTTP endpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(
        default="127.0.0.1",
        description="Address for /metrics, /healthz, /readyz: loopback unless told (the chart"
        " sets 0.0.0.0).",
    )
    port: int = Field(default=9400, ge=0, le=65535, description="Port; 0 picks a free one.")


class AnalyzerSettings(Settings):
    """Everything ``earwitness analyze`` needs; ``docs/analyzer.md`` lists the settings.

    Environment: ``EARWITNESS_ANALYZER_<SECTION>__<FIELD>`` (``earwitness/environment.py``).
    """

    ENV_PREFIXES: ClassVar[tuple[str, ...]] = ("EARWITNESS_ANALYZER_",)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    windowing: WindowSettings = Field(default_factory=WindowSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    dead_letter: DeadLetterSettings = Field(default_factory=DeadLetterSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    audit: AuditSettings = Field(
        default_factory=AuditSettings, description="The audit trail (earwitness/audit.py)."
    )
    failpoints: dict[str, int] = Field(
        default_factory=dict,
        description="Testing only: SIGKILL at the n-th hit of a named point (see failpoints.py).",
    )


def load_analyzer_settings(path: Path | None = None) -> AnalyzerSettings:
    return load_settings(AnalyzerSettings, path)
