"""Settings of ``earwitness alerts``: rules path, Kafka topics, receivers, delivery policy.

Loaded with ``earwitness.config.load_settings(AlertsSettings, path)``; ``EARWITNESS_ALERTS_*``
variables override the file, e.g. ``EARWITNESS_ALERTS_RECEIVERS__OPS__SECRET=whsec_...`` sets
the secret of the receiver named ``ops``. Secrets are ``SecretStr`` (``**********`` in reprs and
logs) and may also come from a file (``secret_file``, ``url_file``, ``token_file``), read once
at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from earwitness.audit import AuditSettings
from earwitness.config import MetricsToken, Settings
from earwitness.kafka import KafkaClientSettings, captions_topic_field
from earwitness.retention import CompactedRetention, Retention
from sinks.receivers import Receiver


class AlertsRetention(BaseModel):
    """Retention of the topics the runner creates (earwitness/retention.py, docs/privacy.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: CompactedRetention = Field(
        default_factory=CompactedRetention, description="The compacted incident state topic."
    )
    dead_letters: Retention = Field(
        default_factory=Retention, description="Undeliverable alerts and bad captions."
    )


class KafkaSettings(KafkaClientSettings):
    """Topics and group of the runner (the cluster itself: :class:`KafkaClientSettings`)."""

    captions_topic: str = captions_topic_field()
    group_id: str = Field(default="earwitness-alerts", description="Consumer group id.")
    state_topic: str = Field(
        default="earwitness-alerts-state", description="Compacted topic of incident state."
    )
    dead_letter_topic: str = Field(
        default="earwitness-alerts-dlq", description="Undeliverable alerts and bad captions."
    )
    start_at: Literal["end", "beginning"] = Field(
        default="end",
        description=(
            "Where the group starts on a partition it has never committed: 'end' = captions"
            " from now on (a new group does not fire every old alert); 'beginning' = replay"
            " the whole captions topic."
        ),
    )
    transactional_id: str = Field(
        default="earwitness-alerts-0", description="Unique per runner instance (pod ordinal)."
    )
    max_poll_interval_ms: int = Field(
        default=300_000, ge=10_000, description="Longest gap between polls before eviction."
    )
    session_timeout_ms: int = Field(default=45_000, ge=6_000, description="Group session timeout.")
    batch_max_events: int = Field(default=500, ge=1, description="Captions per checkpoint.")
    batch_wait_ms: int = Field(default=500, ge=1, description="Wait for a batch to fill (ms).")
    create_topics: bool = Field(
        default=True, description="Create the state and dead-letter topics if they are missing."
    )
    retention: AlertsRetention = Field(
        default_factory=AlertsRetention,
        description="Retention of created topics (applied at creation only).",
    )


class AlertsSettings(Settings, MetricsToken):
    """Root settings of ``earwitness alerts``.

    Environment: ``EARWITNESS_ALERTS_<SECTION>__<FIELD>`` (``earwitness/environment.py``).
    """

    ENV_PREFIXES: ClassVar[tuple[str, ...]] = ("EARWITNESS_ALERTS_",)

    # Validation errors must not echo secrets back (they end up in logs).
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    rules_path: Path = Field(description="The rules file (YAML).")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    receivers: dict[str, Receiver] = Field(
        default_factory=dict, description="Receivers by name; rules refer to these names."
    )
    audit: AuditSettings = Field(
        default_factory=AuditSettings, description="The audit trail (earwitness/audit.py)."
    )
    metrics_port: int | None = Field(
        default=9464, description="Port of /metrics, /healthz and /readyz; null = off."
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address of the metrics port: loopback unless told (the chart sets 0.0.0.0).",
    )
    drain_timeout_s: float = Field(
        default=30.0, gt=0, description="On SIGTERM: time to finish in-flight deliveries."
    )
    tick_interval_s: float = Field(
        default=1.0, gt=0, description="How often re-sends and stale incidents are considered (s)."
    )
    stale_grace_s: float | None = Field(
        default=300.0,
        ge=0,
        description=(
            "Resolve an incident (resolution 'stale') whose stream sent no event at all for its"
            " rule's resolve_after_s plus this many seconds of wall clock (a stopped stream);"
            " null = never."
        ),
    )
    park_after_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "A delivery still not done this long after hand-off is parked: committed to the"
            " state topic and retried by its receiver alone, so one receiver's outage never"
            " holds up the batch, the commit or the other receivers (seconds)."
        ),
    )
    health_stall_s: float = Field(
        default=180.0,
        ge=10,
        description=(
            "/healthz turns 503 once the poll loop has not turned for this long (seconds); it"
            " must cover a state reload (up to 60 s) plus a checkpoint (up to 30 s)."
        ),
    )

    @model_validator(mode="after")
    def _park_before_stall(self) -> AlertsSettings:
        if self.park_after_s >= self.health_stall_s:
            raise ValueError("park_after_s must be below health_stall_s")
        return self

    @field_validator("receivers")
    @classmethod
    def _names(cls, receivers: dict[str, Any]) -> dict[str, Any]:
        for name in receivers:
            if not name.replace("-", "_").isidentifier():
                raise ValueError(f"receiver name {name!r}: letters, digits, '-' and '_' only")
        return receivers
