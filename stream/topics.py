"""The analyzer's topics: checked (and, if allowed, created) before it joins the group.

The changelog must have exactly the input's partition count (it is co-partitioned: cursor of a
stream on input partition p lives in changelog partition p) and ``cleanup.policy=compact``.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from earwitness.errors import ConfigError, TransientError
from stream.config import KafkaSettings

logger = logging.getLogger(__name__)


def ensure_topics(kafka: KafkaSettings, timeout_s: float = 30.0) -> int:
    """Check the topics; create missing ones when ``kafka.create_topics``. Returns partitions."""
    admin = AdminClient(kafka.client_config())
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise TransientError(f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}") from exc
    partitions = _partitions(existing, kafka.input_topic)
    if partitions is None:
        partitions = kafka.new_topic_partitions
        _create(admin, kafka, [NewTopic(kafka.input_topic, partitions, kafka.replication_factor)])
    wanted = [
        NewTopic(kafka.output_topic, partitions, kafka.replication_factor),
        NewTopic(kafka.dlq_topic, partitions, kafka.replication_factor),
        NewTopic(
            kafka.changelog,
            partitions,
            kafka.replication_factor,
            config={"cleanup.policy": "compact"},
        ),
    ]
    _create(admin, kafka, [t for t in wanted if t.topic not in existing])
    changelog = _partitions(existing, kafka.changelog)
    if changelog is not None and changelog != partitions:
        raise ConfigError(
            f"changelog {kafka.changelog} has {changelog} partitions, input {kafka.input_topic} "
            f"has {partitions}: they must be co-partitioned (equal counts)"
        )
    return partitions


def _partitions(topics: dict, name: str) -> int | None:
    meta = topics.get(name)
    return None if meta is None else len(meta.partitions)


def _create(admin: AdminClient, kafka: KafkaSettings, topics: list[NewTopic]) -> None:
    if not topics:
        return
    names = ", ".join(t.topic for t in topics)
    if not kafka.create_topics:
        raise ConfigError(f"missing topics: {names} (create them, or set kafka.create_topics)")
    for name, future in admin.create_topics(topics).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                raise ConfigError(f"cannot create topic {name}: {exc}") from exc
    logger.info("created topics %s", names)
