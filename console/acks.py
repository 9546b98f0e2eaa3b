"""Acknowledgements: written to the acks topic, and only read back from it.

An ack is a Kafka record (key = alert id, value = :class:`~console.records.AckRow` JSON) on a
compacted topic. The console that takes the click produces it and waits for the broker's
acknowledgement; every console (this one too) applies it when its reader reads it back. So all
replicas agree, a restart keeps it, and a rebuilt database gets it again::

    POST /alerts/<id>/ack ─► AckWriter.write ─► acks topic ─► every console's reader ─► acks table

Owner: the web app (``console.web``); ``close`` at shutdown. confluent-kafka's producer is
thread-safe; requests call :meth:`AckWriter.write` from the thread pool.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from console.config import ConsoleKafka
from console.records import AckRow
from earwitness.errors import TransientError
from earwitness.topics import (
    create_missing,
    existing_topics,
    require_compacted,
    warn_config_drift,
)

NOTE_MAX_CHARS = 2_000


class AckWriter:
    """An idempotent producer (acks=all) of acknowledgements."""

    def __init__(self, kafka: ConsoleKafka) -> None:
        self._topic, self._timeout_s = kafka.acks_topic, kafka.timeout_s
        self._producer = Producer(
            {
                **kafka.client_config(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
                "message.timeout.ms": int(kafka.timeout_s * 1000),
            }
        )

    def write(self, alert_id: str, by: str, note: str) -> AckRow:
        """Produce the ack and wait until the broker has it; :class:`TransientError` if not."""
        ack = AckRow(alert_id=alert_id, by=by, note=note[:NOTE_MAX_CHARS], acked_ns=time.time_ns())
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        try:
            self._producer.produce(
                self._topic, ack.to_json(), alert_id.encode(), on_delivery=delivered
            )
        except (BufferError, KafkaException) as exc:
            raise TransientError(f"cannot write the ack: {exc}") from exc
        if self._producer.flush(self._timeout_s) > 0:
            raise TransientError("the ack was not acknowledged by Kafka in time")
        if errors:
            raise TransientError(f"the ack was refused: {errors[0].str()}")
        return ack

    def close(self) -> None:
        self._producer.flush(self._timeout_s)


def ensure_acks_topic(kafka: ConsoleKafka) -> None:
    """Create the acks topic (compacted: the latest ack per alert id is kept forever); an
    existing one must be compacted."""
    admin = AdminClient(kafka.client_config())
    topic = NewTopic(
        kafka.acks_topic,
        num_partitions=1,
        replication_factor=kafka.replication_factor,
        config=kafka.retention.acks.topic_config(),
    )
    existing = existing_topics(admin, kafka.timeout_s)
    require_compacted(admin, kafka.acks_topic, existing)
    warn_config_drift(admin, [topic], existing)
    create_missing(admin, [topic], existing, allowed=kafka.create_topics)
