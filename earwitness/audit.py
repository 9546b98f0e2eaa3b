"""The audit trail's contract: what a service instance records when it starts, stops or runs
with a new configuration, and its settings (the producer is ``earwitness/audit_trail.py``).

Two topics, the same records, key ``<service>/<instance>``::

    audit.log_topic    (earwitness.audit)        every record, time-retained: the history
    audit.state_topic  (earwitness.audit-state)  compacted: each instance's latest record

A record says who (service, instance, host, user, pid), what (``start``, ``stop`` with its exit
code, ``config_changed``), when, and with what: the settings hash (secrets masked,
``earwitness.config.settings_hash``, the same hash caption events carry as
``analyzer.config_hash``), the rules file's hash (alert runner), the model and revision
(analyzer) and the software version. Both services read their configuration only at start, so
a configuration change is found there: the instance's last record on the state topic has
another hash. Serialised with orjson; readers ignore fields they do not know.
"""

from __future__ import annotations

from enum import StrEnum

import orjson
from pydantic import BaseModel, ConfigDict, Field

from earwitness.retention import CompactedRetention, Retention

AUDIT_LOG_TOPIC = "earwitness.audit"
AUDIT_STATE_TOPIC = "earwitness.audit-state"
AUDIT_SCHEMA_VERSION = 1


class AuditAction(StrEnum):
    START = "start"
    """The instance is about to serve (the analyzer's engine is warm; the runner's topics are
    ready)."""
    STOP = "stop"
    """The instance stopped serving; ``exit_code`` says how."""
    CONFIG_CHANGED = "config_changed"
    """Written before ``start`` when the instance last ran with another configuration;
    ``previous_config_hash`` / ``previous_rules_hash`` say which."""


class AuditRecord(BaseModel):
    """One audit record (the Kafka value; the key is :attr:`key`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = Field(default=AUDIT_SCHEMA_VERSION, description="Version of this schema.")
    action: AuditAction
    service: str = Field(description="analyzer or alerts.")
    instance: str = Field(description="The instance: its transactional id.")
    host: str = Field(description="Host name (the pod name in Kubernetes).")
    user: str = Field(description="The operating-system user the process runs as.")
    pid: int = Field(description="Process id.")
    time_ns: int = Field(description="When (Unix ns, wall clock).")
    time: str = Field(description="time_ns as RFC 3339 (UTC).")
    config_hash: str = Field(description="sha256 of the settings, secrets masked.")
    rules_hash: str | None = Field(default=None, description="sha256 of the rules file.")
    model: str | None = Field(default=None, description="The model the analyzer serves.")
    model_revision: str | None = Field(default=None, description="Its revision.")
    version: str = Field(description="earwitness version.")
    exit_code: int | None = Field(default=None, description="stop: the process's exit code.")
    previous_config_hash: str | None = Field(
        default=None, description="config_changed: the hash the instance last ran with."
    )
    previous_rules_hash: str | None = Field(
        default=None, description="config_changed: the rules hash it last ran with."
    )

    @property
    def key(self) -> str:
        return f"{self.service}/{self.instance}"

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, data: bytes) -> AuditRecord:
        return cls.model_validate(orjson.loads(data))


class AuditRetention(BaseModel):
    """Retention of the audit topics (earwitness/retention.py, docs/privacy.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    log: Retention = Field(default_factory=Retention, description="The append log.")
    state: CompactedRetention = Field(
        default_factory=CompactedRetention, description="The compacted per-instance topic."
    )


class AuditSettings(BaseModel):
    """The ``audit`` section of the analyzer's and the alert runner's settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(
        default=True,
        description="Write start, stop and config_changed records. On, a start whose record "
        "the broker does not take fails (exit 2): nothing serves unaudited.",
    )
    log_topic: str = Field(default=AUDIT_LOG_TOPIC, description="The append log (every record).")
    state_topic: str = Field(
        default=AUDIT_STATE_TOPIC,
        description="Compacted: each instance's latest record (key '<service>/<instance>').",
    )
    replication_factor: int = Field(
        default=-1, description="Replication of the audit topics if created; -1 = broker default."
    )
    retention: AuditRetention = Field(
        default_factory=AuditRetention,
        description="Retention of the audit topics if created (applied at creation only).",
    )
    timeout_s: float = Field(
        default=30.0, gt=0, description="How long a record may take to be acknowledged."
    )
