"""The transactional checkpoint: dead letters + incident state + consumed offsets, atomically.

One Kafka transaction per batch, after every delivery of the batch finished (the mechanics and
the error rules are :mod:`earwitness.transactions`)::

    produce dead letters        → dead-letter topic (alerts a receiver never took, bad captions)
    produce incident changes    → compacted state topic (value, or tombstone when closed)
    produce parked deliveries   → state topic (value when parked, tombstone once settled)
    send_offsets_to_transaction → the consumer group's offsets (next to read)
    commit_transaction

An aborted transaction raises :class:`CheckpointAborted`: the runner rewinds to the last
committed offsets and state and redoes the batch (receivers see duplicates with the same
idempotency keys).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from confluent_kafka import Consumer

from earwitness.kafka import ClientConfig
from earwitness.transactions import Record, TransactionAborted, TransactionalProducer
from sinks.formats import Headers
from sinks.incident_state import IncidentState
from sinks.jobs import DeadLetter
from sinks.state import encode

CheckpointAborted = TransactionAborted


@dataclass
class BadCaption:
    """A caption (or state) record that did not parse; dead-lettered raw."""

    key: bytes | None
    value: bytes | None
    reason: str
    detail: str
    kind: str = "caption"


@dataclass
class Batch:
    """What one checkpoint commits."""

    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    starts: dict[tuple[str, int], int] = field(default_factory=dict)
    """Offset of the batch's first record per partition: where an abort rewinds to when the
    group has committed nothing there yet."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    bad_captions: list[BadCaption] = field(default_factory=list)
    changes: dict[str, IncidentState | None] = field(default_factory=dict)
    state_records: dict[bytes, bytes | None] = field(default_factory=dict)
    """Other state-topic writes: parked deliveries (value) and settled or bad ones (None)."""

    def empty(self) -> bool:
        return not (
            self.offsets
            or self.dead_letters
            or self.bad_captions
            or self.changes
            or self.state_records
        )


class Checkpointer:
    """Owns the transactional producer; used only from the poll-loop thread."""

    def __init__(
        self,
        client_config: ClientConfig,
        transactional_id: str,
        state_topic: str,
        dead_letter_topic: str,
        timeout_s: float,
    ) -> None:
        self._state_topic = state_topic
        self._dlq_topic = dead_letter_topic
        self._producer = TransactionalProducer(client_config, transactional_id, timeout_s)

    def init(self) -> None:
        """Fence older instances with this transactional id; aborts what they left open."""
        self._producer.init()

    def commit(self, batch: Batch, consumer: Consumer) -> None:
        self._producer.commit(self._records(batch), batch.offsets, consumer)

    def close(self) -> None:
        self._producer.close()

    def _records(self, batch: Batch) -> Iterator[Record]:
        for letter in batch.dead_letters:
            key, value, headers = dead_letter_record(letter)
            yield Record(self._dlq_topic, key, value, headers)
        for bad in batch.bad_captions:
            raw_headers: Headers = [
                ("ew-error", bad.reason.encode()),
                ("ew-kind", bad.kind.encode()),
            ]
            yield Record(self._dlq_topic, bad.key, bad.value, raw_headers)
        for state_key, state in batch.changes.items():
            yield Record(self._state_topic, state_key.encode(), encode(state))
        for raw_key, raw_value in batch.state_records.items():
            yield Record(self._state_topic, raw_key, raw_value)


def dead_letter_record(letter: DeadLetter) -> tuple[bytes, bytes, Headers]:
    """Key = idempotency key; value = the reason and the whole alert."""
    value = orjson.dumps(
        {
            "receiver": letter.receiver,
            "reason": letter.reason,
            "detail": letter.detail,
            "attempts": letter.attempts,
            "alert": letter.alert.to_dict(),
        }
    )
    headers: Headers = [
        ("ew-error", letter.reason.encode()),
        ("ew-kind", b"alert"),
        ("ew-receiver", letter.receiver.encode()),
    ]
    return letter.alert.idempotency_key.encode(), value, headers
