"""The analyzer's checkpoint: events, dead letters, changelog and offsets in one transaction.

Commit order (one Kafka transaction per checkpoint; the mechanics and the error rules are
``earwitness/transactions.py``)::

    1. produce the buffered caption events and dead letters
    2. produce each changed stream's cursor (last *published* window) to the changelog, into
       the changelog partition equal to the stream's input partition, a tombstone for each
       retired stream, and each partition's dead-letter mark if it dead-lettered records
       (``stream/changelog.py``)
    3. send_offsets_to_transaction: per input partition the lowest offset still needed by any
       window not yet published (``stream/offsets.py``)
    4. commit_transaction

:meth:`Checkpoint.commit` raises :class:`~earwitness.transactions.TransactionAborted` when
the transaction was aborted: the caller rewinds every partition to its committed offset and
reloads the cursors. Owned by the poll loop (it owns the transactional producer).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import Consumer

from earwitness.events import CaptionEvent, cloudevent_headers
from earwitness.transactions import Headers, Record, TransactionalProducer
from stream.changelog import DEAD_LETTER_MARK_KEY, encode_cursor, encode_mark
from stream.config import KafkaSettings
from windowing.window import Cursor


class Checkpoint:
    """Buffers what the next transaction commits; see the module docstring."""

    def __init__(self, kafka: KafkaSettings, producer: TransactionalProducer) -> None:
        self._kafka = kafka
        self._producer = producer
        self._records: list[Record] = []
        self._closed_ns: list[int] = []
        self.last_s = time.monotonic()
        """When the last checkpoint was attempted (monotonic)."""

    def add_event(self, event: CaptionEvent) -> None:
        self._records.append(
            Record(
                self._kafka.captions_topic,
                event.stream_id.encode(),
                event.to_json(),
                cloudevent_headers(event),
            )
        )
        self._closed_ns.append(event.timings.window_closed_ns)

    def add_dead_letter(self, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        self._records.append(Record(self._kafka.dlq_topic, key, value, headers))

    def commit(
        self,
        cursors: list[tuple[Cursor, int]],
        tombstones: list[tuple[str, int]],
        marks: Mapping[int, int],
        offsets: Mapping[int, int],
        consumer: Consumer,
    ) -> list[int] | None:
        """One transaction; returns the close times of the committed events (None: nothing
        to commit). ``cursors`` are (cursor, changelog partition) pairs; ``tombstones``
        (stream id, partition) pairs of retired streams."""
        self.last_s = time.monotonic()
        changelog = [
            Record(self._kafka.changelog, c.stream_id.encode(), encode_cursor(c), partition=p)
            for c, p in cursors
        ]
        changelog += [
            Record(self._kafka.changelog, stream_id.encode(), None, partition=p)
            for stream_id, p in tombstones
        ]
        changelog += [
            Record(self._kafka.changelog, DEAD_LETTER_MARK_KEY, encode_mark(below), partition=p)
            for p, below in marks.items()
        ]
        if not (self._records or changelog or offsets):
            return None
        topic = self._kafka.frames_topic
        self._producer.commit(
            [*self._records, *changelog], {(topic, p): o for p, o in offsets.items()}, consumer
        )
        closed, self._closed_ns = self._closed_ns, []
        self._records.clear()
        return closed

    def discard(self) -> None:
        """An aborted transaction: what was buffered will be produced again by the replay."""
        self._records.clear()
        self._closed_ns.clear()
