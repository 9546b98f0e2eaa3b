"""The exporter's poll loop: Kafka records → partition buffers → flushes (``export/commit.py``).

Threads: the loop runs on the caller's thread (``main``) and owns the consumer, the buffers and
the store; the metrics server (``ew-http``) is the CLI's. Rebalance callbacks run inside
``consume()``, on the loop's thread, so nothing is shared.

* **assign**: each new partition is recovered (its crashed flush finished or undone) and the
  consumer starts at the offset the manifests give, whatever the group's committed offset says.
* **revoke**: the partitions' buffers are flushed first (a cooperative rebalance waits for it),
  so the next owner resumes right after them.
* **lost** (evicted): buffers dropped unflushed; the next owner replays them.
* **a flush the storage refuses**: the partition is paused (the buffer stays whole, the span
  does not move) and the flush retried after ``retry_backoff_s``.
* **SIGTERM**: every buffer flushed, the consumer closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow as pa
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from earwitness import failpoints
from earwitness.errors import FatalError, TransientError
from earwitness.health import LoopHealth
from earwitness.kafka import check_consumer_error, position, transactional_consumer_config
from export.buffer import REJECTS_SCHEMA, PartitionBuffer
from export.commit import Committer, Flush
from export.config import ExportSettings
from export.metrics import ExportMetrics
from export.schema import Table, alerts_table, captions_table
from export.store import Store

logger = logging.getLogger(__name__)

Key = tuple[str, int]
T = TypeVar("T")
RECOVERY_DEADLINE_S = 120.0


def tables_of(settings: ExportSettings) -> dict[str, Table]:
    """Topic → the table it is exported as."""
    tables = {settings.kafka.captions_topic: captions_table()}
    if settings.kafka.alerts_topic:
        tables[settings.kafka.alerts_topic] = alerts_table()
    return tables


class Exporter:
    """Runs until :meth:`stop`; see the module docstring."""

    def __init__(
        self, settings: ExportSettings, store: Store, metrics: ExportMetrics, health: LoopHealth
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.health = health
        self._tables = tables_of(settings)
        self._schemas = {topic: table.arrow_schema() for topic, table in self._tables.items()}
        self._committer = Committer(store, settings.instance, settings.keep_manifests)
        self._consumer = Consumer(self._consumer_config())
        self._buffers: dict[Key, PartitionBuffer] = {}
        self._retry_at: dict[Key, float] = {}
        self._stopping = threading.Event()

    def _consumer_config(self) -> dict[str, object]:
        kafka = self.settings.kafka
        return transactional_consumer_config(
            kafka.client_config(),
            kafka.group_id,
            session_timeout_ms=kafka.session_timeout_ms,
            max_poll_interval_ms=kafka.max_poll_interval_ms,
            group_instance_id=kafka.group_instance_id,
        )

    def stop(self) -> None:
        """Ask the loop to flush and exit; safe from a signal handler."""
        self._stopping.set()

    def run(self) -> int:
        topics = sorted(self._tables)
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        logger.info("exporting %s to %s", ", ".join(topics), self.settings.destination.url)
        try:
            while not self._stopping.is_set():
                self._step()
            self._flush_all()
        finally:
            self._consumer.close()
        return 0

    # --- the loop -------------------------------------------------------------------------

    def _step(self) -> None:
        self.health.beat()
        taken: dict[str, int] = {}
        for msg in self._consumer.consume(self.settings.kafka.poll_batch, timeout=0.5):
            error = msg.error()
            if error is not None:
                check_consumer_error(error, "export consumer")
                continue
            table = self._take(msg)
            if table is not None:
                taken[table] = taken.get(table, 0) + 1
        for table, count in taken.items():  # per batch: a labelled inc() per row costs µs
            self.metrics.records.labels(table).inc(count)
        now = time.monotonic()
        for key, buffer in list(self._buffers.items()):
            if buffer.due(self.settings.roll, now) and self._retry_at.get(key, 0.0) <= now:
                self._flush(key)
        self.metrics.buffered.set(sum(b.count for b in self._buffers.values()))

    def _take(self, msg: Message) -> str | None:
        """Buffer one record; the table it became a row of (None: skipped or rejected)."""
        topic, partition, offset = position(msg)
        buffer = self._buffers.get((topic, partition))
        if buffer is None or offset <= buffer.last:
            return None  # fetched before a revoke, or before the seek of an assignment
        _, ts_ms = msg.timestamp()
        reason = buffer.add(offset, msg.key(), msg.value(), ts_ms, msg.headers)
        table = buffer.table.name
        if reason is None:
            return table
        self.metrics.rejected.labels(table, reason).inc()
        logger.warning("%s[%d]@%d is not a %s event: %s", topic, partition, offset, table, reason)
        return None

    def _flush(self, key: Key) -> bool:
        """Commit the buffer of ``key`` (``export/commit.py``); False if the storage refused."""
        buffer = self._buffers[key]
        topic, partition = key
        started = time.monotonic()
        try:
            manifest = self._committer.commit(self._to_flush(buffer))
        except TransientError as exc:
            logger.error("flush of %s[%d] failed, retrying later: %s", topic, partition, exc)
            self.metrics.flushes.labels(buffer.table.name, "failed").inc()
            self._retry_at[key] = time.monotonic() + self.settings.retry_backoff_s
            self._consumer.pause([TopicPartition(topic, partition)])
            return False
        self.metrics.flush_seconds.observe(time.monotonic() - started)
        self._count(buffer.table.name, manifest)
        next_offset = buffer.span.next_offset
        self._buffers[key] = PartitionBuffer(buffer.table, topic, partition, next_offset)
        if self._retry_at.pop(key, None) is not None:  # a failed attempt may have left files
            self._cleanup(buffer.table.name, partition)
            self._consumer.resume([TopicPartition(topic, partition)])
        try:  # for lag monitoring only: the manifests say where to resume
            self._consumer.commit(
                offsets=[TopicPartition(topic, partition, next_offset)], asynchronous=True
            )
        except KafkaException as exc:
            logger.warning("offset commit of %s[%d] skipped: %s", topic, partition, exc)
        failpoints.hit("export.offsets_committed")
        return True

    def _cleanup(self, table: str, partition: int) -> None:
        try:
            self._committer.clean_staging(table, partition)
        except TransientError as exc:  # harmless: the next recovery deletes them
            logger.warning("cannot clean the staging files of %s[%d]: %s", table, partition, exc)

    def _to_flush(self, buffer: PartitionBuffer) -> Flush:
        hours, unrepresentable = buffer.tables(self._schemas[buffer.topic])
        for reason in unrepresentable:
            self.metrics.rejected.labels(buffer.table.name, reason).inc()
        rejects = to_arrow_rejects(buffer.rejects) if buffer.rejects else None
        return Flush(buffer.table.name, buffer.topic, buffer.partition, buffer.span, hours, rejects)

    def _count(self, table: str, manifest: dict[str, Any]) -> None:
        self.metrics.flushes.labels(table, "ok").inc()
        data = [f for f in manifest["files"] if not f["path"].startswith("_")]
        self.metrics.files.labels(table).inc(len(data))
        self.metrics.bytes.labels(table).inc(sum(f["bytes"] for f in data))

    def _flush_all(self, keys: list[Key] | None = None) -> None:
        for key in keys if keys is not None else list(self._buffers):
            buffer = self._buffers.get(key)
            if buffer is not None and buffer.count:
                self._flush(key)

    # --- rebalances -------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        positioned = []
        for tp in partitions:
            topic, partition = tp.topic, tp.partition
            low, high = self._watermarks(consumer, tp)
            start = low if self.settings.kafka.start == "earliest" else high
            table = self._tables[topic]
            resume = _retrying(
                f"recovery of {topic}[{partition}]",
                lambda: self._committer.recover(table.name, topic, partition, start),  # noqa: B023
            )
            if resume < low:
                self._expired(table.name, topic, partition, resume, low)
            self._buffers[(topic, partition)] = PartitionBuffer(table, topic, partition, resume)
            positioned.append(TopicPartition(topic, partition, resume))
        consumer.incremental_assign(positioned)
        self.health.assigned = bool(self._buffers)

    def _watermarks(self, consumer: Consumer, tp: TopicPartition) -> tuple[int, int]:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=30)
        except KafkaException as exc:
            raise FatalError(f"watermarks of {tp.topic}[{tp.partition}]: {exc}") from exc
        return int(low), int(high)

    def _expired(self, table: str, topic: str, partition: int, resume: int, low: int) -> None:
        """Records the topic's retention deleted before they were exported: said, counted."""
        logger.error(
            "%s[%d]: offsets %d..%d expired from the topic before they were exported "
            "(the exporter was down longer than the topic's retention)",
            topic,
            partition,
            resume,
            low - 1,
        )
        self.metrics.expired.labels(table).inc(low - resume)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        logger.info("revoked %s: flushing first", keys)
        self._flush_all([k for k in keys if k not in self._retry_at])
        self._forget(keys)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        logger.warning("lost %s: dropping their buffers (the next owner replays them)", keys)
        self._forget(keys)
        consumer.incremental_unassign(partitions)

    def _forget(self, keys: list[Key]) -> None:
        for key in keys:
            self._buffers.pop(key, None)
            self._retry_at.pop(key, None)
        self.health.assigned = bool(self._buffers)


def to_arrow_rejects(rows: list[dict[str, object]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=REJECTS_SCHEMA)


def _retrying(what: str, step: Callable[[], T], deadline_s: float = RECOVERY_DEADLINE_S) -> T:
    """Retry a storage round trip for ``deadline_s``; then the process must restart."""
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            return step()
        except TransientError as exc:
            if time.monotonic() > give_up:
                raise FatalError(f"{what}: {exc}") from exc
            logger.warning("%s: retrying after %s", what, exc)
            time.sleep(2.0)
