"""The analyzer's topics: checked (and, if allowed, created) before it joins the group.

The changelog must have exactly the input's partition count (it is co-partitioned: cursor of a
stream on input partition p lives in changelog partition p) and ``cleanup.policy=compact``.
"""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from earwitness.errors import ConfigError
from earwitness.topics import create_missing, existing_topics
from stream.config import KafkaSettings


def ensure_topics(kafka: KafkaSettings) -> int:
    """Check the topics; create missing ones when ``kafka.create_topics``. Returns partitions."""
    admin = AdminClient(kafka.client_config())
    existing = existing_topics(admin)
    partitions = existing.get(kafka.frames_topic)
    if partitions is None:
        partitions = kafka.new_topic_partitions
        new = NewTopic(kafka.frames_topic, partitions, kafka.replication_factor)
        create_missing(admin, [new], existing, allowed=kafka.create_topics)
    if existing.get(kafka.changelog, partitions) != partitions:
        raise ConfigError(
            f"changelog {kafka.changelog} has {existing[kafka.changelog]} partitions, input "
            f"{kafka.frames_topic} has {partitions}: they must be co-partitioned (equal counts)"
        )
    wanted = [
        NewTopic(kafka.captions_topic, partitions, kafka.replication_factor),
        NewTopic(kafka.dlq_topic, partitions, kafka.replication_factor),
        NewTopic(
            kafka.changelog,
            partitions,
            kafka.replication_factor,
            config={"cleanup.policy": "compact"},
        ),
    ]
    create_missing(admin, wanted, existing, allowed=kafka.create_topics)
    return partitions
