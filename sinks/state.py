"""Incident state on a compacted Kafka topic: one record per rule + stream, tombstone on close.

Key ``<rule_id>|<stream_id>``, value the :class:`~sinks.incidents.IncidentState` as JSON, or
no value once the incident resolved. The runner writes these records in the same transaction
as the consumed offsets, so state and offsets always agree; :func:`load_state` reads the topic
back (``read_committed``) to its end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from earwitness.errors import ConfigError, TransientError
from sinks.incidents import IncidentState


def encode(state: IncidentState | None) -> bytes | None:
    return None if state is None else state.model_dump_json().encode()


def load_state(
    client_config: Mapping[str, str], topic: str, timeout_s: float = 60.0
) -> dict[str, IncidentState]:
    """Every live incident in ``topic``; tombstones delete, later records win."""
    consumer = Consumer(
        {
            **client_config,
            "group.id": f"earwitness-state-loader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        return _read_all(consumer, topic, timeout_s)
    finally:
        consumer.close()


def _read_all(consumer: Consumer, topic: str, timeout_s: float) -> dict[str, IncidentState]:
    partitions = _partitions(consumer, topic, timeout_s)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    states: dict[str, IncidentState] = {}
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while at_end != partitions:
        if time.monotonic() > deadline:
            raise TransientError(f"state topic {topic}: not read to its end in {timeout_s}s")
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        error, partition = msg.error(), msg.partition()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF or partition is None:
                raise TransientError(f"state topic {topic}: {error.str()}")
            at_end.add(partition)
            continue
        key = (msg.key() or b"").decode()
        value = msg.value()
        if value is None:
            states.pop(key, None)
        else:
            states[key] = IncidentState.model_validate_json(value)
    return states


def _partitions(consumer: Consumer, topic: str, timeout_s: float) -> set[int]:
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
    except KafkaException as exc:
        raise TransientError(f"state topic {topic}: {exc}") from exc
    if metadata.error is not None:
        raise ConfigError(f"state topic {topic}: {metadata.error.str()}")
    return set(metadata.partitions)
