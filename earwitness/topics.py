"""Creating the topics a service needs, shared by the analyzer and the alert runner."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from earwitness.errors import ConfigError, TransientError

logger = logging.getLogger(__name__)


def existing_topics(admin: AdminClient, timeout_s: float = 30.0) -> dict[str, int]:
    """Topic name → partition count, as the cluster reports them."""
    try:
        topics = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise TransientError(f"cannot reach Kafka: {exc}") from exc
    return {name: len(meta.partitions) for name, meta in topics.items()}


def topic_config(admin: AdminClient, topic: str, timeout_s: float = 30.0) -> dict[str, str]:
    """The configuration of an existing ``topic`` (every key, defaults included)."""
    (future,) = admin.describe_configs([ConfigResource("topic", topic)]).values()
    try:
        entries = future.result(timeout_s)
    except KafkaException as exc:
        raise TransientError(f"cannot read the configuration of topic {topic}: {exc}") from exc
    return {name: str(entry.value) for name, entry in entries.items()}


def cleanup_policy(admin: AdminClient, topic: str, timeout_s: float = 30.0) -> str:
    """The ``cleanup.policy`` of an existing ``topic`` (``delete``, ``compact`` or both)."""
    return topic_config(admin, topic, timeout_s)["cleanup.policy"]


def warn_config_drift(
    admin: AdminClient, wanted: list[NewTopic], existing: Mapping[str, int]
) -> None:
    """Log a warning for each existing ``wanted`` topic whose retention differs from the
    settings: they apply only when earwitness creates a topic (docs/privacy.md)."""
    for new in wanted:
        keys = {k: v for k, v in (new.config or {}).items() if k != "cleanup.policy"}
        if new.topic not in existing or not keys:
            continue
        found = topic_config(admin, new.topic)
        for key, value in keys.items():
            if found.get(key) != value:
                logger.warning(
                    "topic %s has %s=%s, the settings say %s: retention is set only when a topic "
                    "is created (kafka-configs --alter --entity-type topics --entity-name %s "
                    "--add-config %s=%s)",
                    new.topic, key, found.get(key), value, new.topic, key, value,
                )  # fmt: skip


def compaction_problem(admin: AdminClient, topic: str, existing: Mapping[str, int]) -> str | None:
    """Why an existing ``topic`` that must be compacted (a changelog, incident state, acks)
    cannot be used, or None (also when it does not exist yet: it is created compacted)."""
    if topic not in existing:
        return None
    policy = cleanup_policy(admin, topic)
    if "compact" in policy:
        return None
    return (
        f"topic {topic} has cleanup.policy={policy}: it must be compact, or it forgets what it "
        f"holds (kafka-configs --alter --entity-type topics --entity-name {topic} "
        "--add-config cleanup.policy=compact)"
    )


def require_compacted(admin: AdminClient, topic: str, existing: Mapping[str, int]) -> None:
    """:func:`compaction_problem` as a :class:`ConfigError`."""
    problem = compaction_problem(admin, topic, existing)
    if problem:
        raise ConfigError(problem)


def create_missing(
    admin: AdminClient,
    wanted: list[NewTopic],
    existing: Mapping[str, int],
    *,
    allowed: bool,
) -> None:
    """Create the ``wanted`` topics ``existing`` lacks, or fail if creating is not ``allowed``."""
    missing = [t for t in wanted if t.topic not in existing]
    if not missing:
        return
    names = ", ".join(t.topic for t in missing)
    if not allowed:
        raise ConfigError(f"missing topics: {names} (create them, or allow create_topics)")
    for name, future in admin.create_topics(missing).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                raise ConfigError(f"cannot create topic {name}: {exc}") from exc
    logger.info("created topics %s", names)
