"""Writing one service instance's audit records (the contract: ``earwitness/audit.py``).

Owner: the service's main function, which calls, in this order::

    ensure_audit_topics()   with the service's other topics, before anything starts
    start_audit()           config_changed (if the instance's last record has other
                            hashes), then start; just before the service serves
    ... serve ...
    stop_audit(code)        stop, with the exit code; the producer closed

No thread of its own: each record is produced to the log and the state topic and waited for
(``audit.timeout_s``). A ``start`` the broker does not take raises
:class:`~earwitness.errors.TransientError` (the service does not start unaudited); a ``stop``
that fails is logged, as the process is on its way out anyway.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from earwitness import __version__
from earwitness.audit import AuditAction, AuditRecord, AuditSettings
from earwitness.compacted import read_to_end
from earwitness.errors import TransientError
from earwitness.events import rfc3339
from earwitness.kafka import KafkaClientSettings
from earwitness.topics import (
    compaction_problem,
    create_missing,
    existing_topics,
    require_compacted,
    warn_config_drift,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """What every record of one instance says about it."""

    service: str
    instance: str
    config_hash: str
    rules_hash: str | None = None
    model: str | None = None
    model_revision: str | None = None


class AuditTrail:
    """An idempotent producer (acks=all) of one instance's audit records."""

    def __init__(
        self, settings: AuditSettings, kafka: KafkaClientSettings, identity: Identity
    ) -> None:
        self.settings, self.identity = settings, identity
        self._client_config = kafka.client_config()
        self._producer = Producer(
            {
                **self._client_config,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
                "message.timeout.ms": int(settings.timeout_s * 1000),
            }
        )

    def started(self) -> AuditRecord:
        """Record the start (after a ``config_changed``, if the configuration is new to this
        instance); raises :class:`TransientError` if the broker does not take it."""
        previous = self.last_record()
        me = self.identity
        if previous is not None and (
            previous.config_hash != me.config_hash or previous.rules_hash != me.rules_hash
        ):
            self._write(
                self._record(
                    AuditAction.CONFIG_CHANGED,
                    previous_config_hash=previous.config_hash,
                    previous_rules_hash=previous.rules_hash,
                )
            )
        return self._write(self._record(AuditAction.START))

    def stopped(self, exit_code: int) -> None:
        """Record the stop; a failure is logged, never raised."""
        try:
            self._write(self._record(AuditAction.STOP, exit_code=exit_code))
        except TransientError as exc:
            logger.error("audit: the stop record of %s was not written: %s", self._key, exc)

    def last_record(self) -> AuditRecord | None:
        """This instance's latest record on the state topic, or None."""
        last: AuditRecord | None = None
        key = self._key.encode()
        for _, k, value in read_to_end(
            self._client_config, self.settings.state_topic, timeout_s=self.settings.timeout_s
        ):
            if k == key:
                last = None if value is None else AuditRecord.from_json(value)
        return last

    def close(self) -> None:
        self._producer.flush(self.settings.timeout_s)

    @property
    def _key(self) -> str:
        return f"{self.identity.service}/{self.identity.instance}"

    def _record(self, action: AuditAction, **fields: object) -> AuditRecord:
        now_ns = time.time_ns()
        return AuditRecord.model_validate(
            {
                "action": action,
                **self.identity.__dict__,
                "host": socket.gethostname(),
                "user": _user(),
                "pid": os.getpid(),
                "time_ns": now_ns,
                "time": rfc3339(now_ns),
                "version": __version__,
                **fields,
            }
        )

    def _write(self, record: AuditRecord) -> AuditRecord:
        """Produce ``record`` to both topics and wait for the broker's acknowledgement."""
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        value = record.to_json()
        for topic in (self.settings.log_topic, self.settings.state_topic):
            self._producer.produce(topic, key=record.key, value=value, on_delivery=delivered)
        if self._producer.flush(self.settings.timeout_s) > 0:
            raise TransientError(f"audit record {record.action} not acknowledged in time")
        if errors:
            raise TransientError(f"audit record {record.action} refused: {errors[0].str()}")
        logger.info("audit: %s %s (config %s)", record.action, record.key, record.config_hash[:12])
        return record


def ensure_audit_topics(
    settings: AuditSettings, kafka: KafkaClientSettings, *, create: bool
) -> None:
    """Create the log and the (compacted) state topic when missing and ``create`` (the
    service's ``kafka.create_topics``); nothing when the audit is off."""
    if not settings.enabled:
        return
    admin = AdminClient(kafka.client_config())
    wanted = [
        NewTopic(settings.log_topic, 1, settings.replication_factor,
                 config=settings.retention.log.topic_config()),
        NewTopic(settings.state_topic, 1, settings.replication_factor,
                 config=settings.retention.state.topic_config()),
    ]  # fmt: skip
    existing = existing_topics(admin, settings.timeout_s)
    require_compacted(admin, settings.state_topic, existing)
    warn_config_drift(admin, wanted, existing)
    create_missing(admin, wanted, existing, allowed=create)


def check_audit_topics(
    settings: AuditSettings, kafka: KafkaClientSettings, *, create: bool
) -> tuple[list[str], list[str]]:
    """What :func:`ensure_audit_topics` would find, creating nothing: one line per topic, and
    the problems that would stop a start (missing while ``create`` is off, state not compacted)."""
    if not settings.enabled:
        return ["audit: off"], []
    admin = AdminClient(kafka.client_config())
    existing = existing_topics(admin, settings.timeout_s)
    action = "would be created" if create else "MISSING (create_topics is off)"
    topics = (("audit log", settings.log_topic), ("audit state", settings.state_topic))
    lines = [f"{role} {t}: {'exists' if t in existing else action}" for role, t in topics]
    missing = [t for _, t in topics if t not in existing]
    problems = []
    if missing and not create:
        names = ", ".join(missing)
        problems.append(f"missing topics: {names} (create them, or allow create_topics)")
    problem = compaction_problem(admin, settings.state_topic, existing)
    return lines, [*problems, *([problem] if problem else [])]


def start_audit(
    settings: AuditSettings, kafka: KafkaClientSettings, identity: Identity
) -> AuditTrail | None:
    """The trail of a starting instance, its start recorded; None when the audit is off."""
    if not settings.enabled:
        return None
    trail = AuditTrail(settings, kafka, identity)
    trail.started()
    return trail


def stop_audit(trail: AuditTrail | None, exit_code: int) -> None:
    """Record the stop and close the trail (nothing when the audit is off)."""
    if trail is not None:
        trail.stopped(exit_code)
        trail.close()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (some containers)
        return str(os.getuid())
