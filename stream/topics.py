"""The analyzer's topics: checked (and, if allowed, created) before it joins the group.

The changelog must have exactly the input's partition count (it is co-partitioned: cursor of a
stream on input partition p lives in changelog partition p) and ``cleanup.policy=compact`` (a
changelog that deletes old records forgets the cursors of quiet streams).
"""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka.admin import AdminClient, NewTopic

from earwitness.errors import ConfigError
from earwitness.topics import (
    compaction_problem,
    create_missing,
    existing_topics,
    warn_config_drift,
)
from stream.config import KafkaSettings


def ensure_topics(kafka: KafkaSettings) -> int:
    """Check the topics; create missing ones when ``kafka.create_topics``. Returns partitions."""
    admin = AdminClient(kafka.client_config())
    existing = existing_topics(admin)
    partitions = existing.get(kafka.frames_topic)
    if partitions is None:
        partitions = kafka.new_topic_partitions
        new = NewTopic(
            kafka.frames_topic,
            partitions,
            kafka.replication_factor,
            config=kafka.retention.frames.topic_config(),
        )
        create_missing(admin, [new], existing, allowed=kafka.create_topics)
    problem = _changelog_problem(admin, kafka, existing, partitions)
    if problem:
        raise ConfigError(problem)
    retention, replicas = kafka.retention, kafka.replication_factor
    wanted = [
        NewTopic(
            kafka.captions_topic, partitions, replicas, config=retention.captions.topic_config()
        ),
        NewTopic(
            kafka.dlq_topic, partitions, replicas, config=retention.dead_letters.topic_config()
        ),
        NewTopic(kafka.changelog, partitions, replicas, config=retention.changelog.topic_config()),
    ]
    warn_config_drift(admin, wanted, existing)
    create_missing(admin, wanted, existing, allowed=kafka.create_topics)
    return partitions


def check_topics(kafka: KafkaSettings) -> tuple[list[str], list[str]]:
    """What ``ensure_topics`` would find, without creating anything.

    Returns one line per topic, and the problems that would stop the analyzer from starting
    (a topic missing while ``create_topics`` is off, a changelog of another partition count or
    not compacted). Raises :class:`~earwitness.errors.TransientError` when the cluster cannot be
    reached.
    """
    admin = AdminClient(kafka.client_config())
    existing = existing_topics(admin)
    action = "would be created" if kafka.create_topics else "MISSING (create_topics is off)"
    roles = (
        ("frames", kafka.frames_topic),
        ("captions", kafka.captions_topic),
        ("dead letters", kafka.dlq_topic),
        ("changelog", kafka.changelog),
    )
    lines = [
        f"{role} {topic}: " + (f"{existing[topic]} partitions" if topic in existing else action)
        for role, topic in roles
    ]
    problems = []
    missing = [topic for _, topic in roles if topic not in existing]
    if missing and not kafka.create_topics:
        names = ", ".join(missing)
        problems.append(f"missing topics: {names} (create them, or allow create_topics)")
    frames = existing.get(kafka.frames_topic, kafka.new_topic_partitions)
    problem = _changelog_problem(admin, kafka, existing, frames)
    if problem:
        problems.append(problem)
    return lines, problems


def _changelog_problem(
    admin: AdminClient, kafka: KafkaSettings, existing: Mapping[str, int], partitions: int
) -> str | None:
    """Why an existing changelog cannot serve ``partitions`` input partitions, or None."""
    found = existing.get(kafka.changelog)
    if found is None:
        return None
    if found != partitions:
        return (
            f"changelog {kafka.changelog} has {found} partitions, input "
            f"{kafka.frames_topic} has {partitions}: they must be co-partitioned (equal counts)"
        )
    return compaction_problem(admin, kafka.changelog, existing)
