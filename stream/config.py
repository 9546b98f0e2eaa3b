"""The analyzer's settings: one frozen, validated tree, read from a file and ``EARWITNESS_*``.

::

    AnalyzerSettings            (root; the only class that reads the environment)
    ├── kafka: KafkaSettings    broker, topics, group, extra librdkafka properties
    ├── windowing: WindowSettings   (windowing/config.py)
    ├── engine: EngineSettings      (stream/engine.py)
    ├── batch: BatchSettings    micro-batching and flow control
    └── http: HttpSettings      /metrics, /healthz, /readyz
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from earwitness.config import Settings, load_settings
from stream.engine import EngineSettings
from windowing.config import WindowSettings


class KafkaSettings(BaseModel):
    """Where frames come from and captions go."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated."
    )
    input_topic: str = Field(default="earwitness.frames", description="Topic of audio frames.")
    output_topic: str = Field(default="earwitness.captions", description="Topic of captions.")
    dead_letter_topic: str | None = Field(
        default=None, description="Topic for bad frames; default '<input_topic>.dlq'."
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
        default=1, ge=1, description="Partitions of the input topic if the analyzer creates it."
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
    client: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka properties for every client (security.protocol, sasl...).",
    )
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password; set from a secret, never from the file."
    )

    @property
    def dlq_topic(self) -> str:
        return self.dead_letter_topic or f"{self.input_topic}.dlq"

    @property
    def changelog(self) -> str:
        return self.changelog_topic or f"{self.group_id}-cursors-changelog"

    def txn_id(self) -> str:
        if self.transactional_id:
            return self.transactional_id
        suffix = self.group_instance_id or uuid.uuid4().hex[:12]
        return f"{self.group_id}-{suffix}"

    def client_config(self) -> dict[str, str | int | float | bool]:
        """Properties common to every client the analyzer makes."""
        config: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            **self.client,
        }
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        return config


class SilencePolicy(StrEnum):
    """What happens to windows below the silence gate."""

    SKIP = "skip"
    """Publish nothing for the window."""
    EVENT = "event"
    """Publish a ``silence`` event without asking the engine."""


class ShedPolicy(StrEnum):
    """What load shedding does with windows that waited longer than ``max_lag_s``."""

    SKIP = "skip"
    """Shed every stale window (oldest first); each becomes a ``shed`` event."""
    WIDEN = "widen"
    """Shed stale windows of odd index only: the stream's hop doubles while overloaded."""


class BatchSettings(BaseModel):
    """Micro-batching in front of the engine, and flow control in front of the batcher."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch: int = Field(default=16, ge=1, description="Most windows sent to the engine at once.")
    max_wait_ms: float = Field(
        default=50.0, ge=0.0, description="Longest wait to fill a batch after its first window."
    )
    max_inflight: int = Field(
        default=64, ge=1, description="Most windows inside the engine at any moment."
    )
    silence: SilencePolicy = Field(
        default=SilencePolicy.EVENT, description="Windows below the silence gate: skip or event."
    )
    max_lag_s: float = Field(
        default=120.0,
        gt=0.0,
        description="A window queued longer than this is shed under the shed policy.",
    )
    shed: ShedPolicy = Field(
        default=ShedPolicy.SKIP,
        description="skip: shed the stale window; widen: shed stale "
        "windows of odd index (doubling the hop while overloaded).",
    )
    request_retries: int = Field(
        default=1,
        ge=0,
        le=5,
        description="Retries of a failed engine request before an error event.",
    )
    drain_timeout_s: float = Field(
        default=30.0, ge=0.0, description="On SIGTERM, how long in-flight windows may finish."
    )
    pause_queued_windows: int = Field(
        default=256, ge=1, description="Pause input partitions when this many windows wait."
    )
    resume_queued_windows: int = Field(
        default=64, ge=0, description="Resume them when the queue is back at this many."
    )


class HttpSettings(BaseModel):
    """The operational HTTP endpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="0.0.0.0", description="Address for /metrics, /healthz, /readyz.")
    port: int = Field(default=9400, ge=0, le=65535, description="Port; 0 picks a free one.")


class AnalyzerSettings(Settings):
    """Everything ``earwitness analyze`` needs; see ``docs/configuration.md``."""

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
