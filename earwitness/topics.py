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


def cleanup_policy(admin: AdminClient, topic: str, timeout_s: float = 30.0) -> str:
    """The ``cleanup.policy`` of an existing ``topic`` (``delete``, ``compact`` or both)."""
    (future,) = admin.describe_configs([ConfigResource("topic", topic)]).values()
    try:
        entries = future.result(timeout_s)
    except KafkaException as exc:
        raise TransientError(f"cannot read the configuration of topic {topic}: {exc}") from exc
    return str(entries["cleanup.policy"].value)


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
