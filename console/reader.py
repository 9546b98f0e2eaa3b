"""The console's one Kafka consumer: captions, alerts and acks → the database → live clients.

Thread ``ew-console-reader``, owned by :func:`console.cli.serve` (``start``/``stop``). It owns
the consumer and the :class:`~console.store.Store` (the only writer). Every replica reads
every partition (``assign``, no consumer group), ``isolation.level=read_committed``, from the
offsets the database holds, or from the beginning when the database is new (the rebuild)::

    poll (≤ batch_max_records or batch_wait_ms) ─► parse ─► Store.apply (one transaction,
    offsets included) ─► publish(changes) ─► console.live.Hub ─► SSE clients

Bad records are counted and logged by position (never by content) and skipped; their offsets
still advance. New partitions are picked up every ``metadata_refresh_s``; a topic that does not
exist yet (no alert has been sent) is looked for again then.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from console.config import ConsoleKafka, StoreSettings
from console.metrics import ConsoleMetrics
from console.records import BadRecord, ack_row, alert_row, window_row
from console.store import Batch, Change, Store
from earwitness.health import LoopHealth
from earwitness.kafka import check_consumer_error, position

logger = logging.getLogger(__name__)

Publish = Callable[[list[Change]], None]


class ConsoleHealth(LoopHealth):
    """Ready once the backlog present at start is read (a rebuilt database is complete)."""

    def __init__(self, stall_s: float) -> None:
        super().__init__(stall_s)
        self.caught_up = False

    def ready(self) -> tuple[bool, str]:
        if not self.caught_up:
            return False, "reading the topics' backlog"
        return self.healthy()


class TopicReader:
    """Reads the three topics into the store until :meth:`stop`."""

    def __init__(
        self,
        *,
        kafka: ConsoleKafka,
        store_settings: StoreSettings,
        store: Store,
        publish: Publish,
        metrics: ConsoleMetrics,
        health: ConsoleHealth,
    ) -> None:
        self._kafka, self._store, self._publish = kafka, store, publish
        self._purge_interval_s = store_settings.purge_interval_s
        self._metrics, self._health = metrics, health
        self._topics = (kafka.captions_topic, kafka.alerts_topic, kafka.acks_topic)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ew-console-reader", daemon=True)
        self._assigned: set[tuple[str, int]] = set()
        self._ends: dict[tuple[str, int], int] = {}
        self._next_refresh = self._next_purge = 0.0
        self.error: BaseException | None = None
        """What ended the thread, if it was not :meth:`stop`."""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        self._thread.join(timeout_s)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        consumer = Consumer(self._consumer_config())
        try:
            while not self._stopping.is_set():
                self._step(consumer)
        except BaseException as exc:
            self.error = exc
            logger.exception("the reader stopped")
        finally:
            consumer.close()

    def _consumer_config(self) -> dict[str, str | int | float | bool]:
        return {
            **self._kafka.client_config(),
            "group.id": f"earwitness-console-{uuid.uuid4().hex[:12]}",  # never joined: assign
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 100,
        }

    def _step(self, consumer: Consumer) -> None:
        self._health.beat()
        now = time.monotonic()
        if now >= self._next_refresh:
            self._next_refresh = now + self._kafka.metadata_refresh_s
            self._assign_new(consumer)
        messages = consumer.consume(self._kafka.batch_max_records, self._kafka.batch_wait_ms / 1000)
        batch = Batch()
        for msg in messages:
            self._read(msg, batch)
        if batch.offsets:
            with self._metrics.batch_seconds.time():
                changes = self._store.apply(batch)
            self._publish(changes)
        if not self._health.caught_up:
            self._check_caught_up(consumer)
        if now >= self._next_purge:
            self._next_purge = now + self._purge_interval_s
            self._metrics.purged.inc(self._store.purge())

    def _read(self, msg: Message, batch: Batch) -> None:
        error = msg.error()
        if error is not None:
            check_consumer_error(error, "console reader")
            return
        topic, partition, offset = position(msg)
        batch.offsets[(topic, partition)] = offset + 1
        try:
            self._parse(topic, msg, batch)
        except BadRecord as bad:
            self._metrics.bad_records.labels(topic, bad.reason).inc()
            logger.warning(
                "unreadable record at %s[%d]@%d: %s", topic, partition, offset, bad.detail
            )
            return
        self._metrics.records.labels(topic).inc()

    def _parse(self, topic: str, msg: Message, batch: Batch) -> None:
        value = msg.value()
        if topic == self._kafka.captions_topic:
            batch.windows.append(window_row(value))
        elif topic == self._kafka.alerts_topic:
            batch.alerts.append(alert_row(value))
        elif value is not None:  # acks; a tombstone (compaction's delete) carries no ack
            batch.acks.append(ack_row(value))

    def _assign_new(self, consumer: Consumer) -> None:
        """Assign partitions not assigned yet, from the stored offset or the beginning."""
        stored = self._store.offsets()
        new = []
        for topic in self._topics:
            for partition in self._partitions(consumer, topic):
                if (topic, partition) not in self._assigned:
                    offset = stored.get((topic, partition), OFFSET_BEGINNING)
                    new.append(TopicPartition(topic, partition, offset))
        self._health.assigned = True  # looked at every topic: caught up can be decided
        if not new:
            return
        if not self._health.caught_up:
            self._remember_ends(consumer, new)
        consumer.incremental_assign(new)
        self._assigned.update((tp.topic, tp.partition) for tp in new)
        logger.info("reading %d new partition(s) of %s", len(new), ", ".join(self._topics))

    def _partitions(self, consumer: Consumer, topic: str) -> list[int]:
        try:
            metadata = consumer.list_topics(topic, timeout=self._kafka.timeout_s).topics[topic]
        except KafkaException as exc:
            logger.warning("cannot list %s: %s", topic, exc)
            return []
        if metadata.error is not None:
            logger.info("topic %s: %s (looking again later)", topic, metadata.error.str())
            return []
        return sorted(metadata.partitions)

    def _remember_ends(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=self._kafka.timeout_s
            )
            if high > max(tp.offset, 0):
                self._ends[(tp.topic, tp.partition)] = high

    def _check_caught_up(self, consumer: Consumer) -> None:
        """Caught up once every partition's position passed its end as it was at start."""
        todo = [TopicPartition(topic, partition) for topic, partition in self._ends]
        for tp in consumer.position(todo) if todo else []:
            if tp.offset >= self._ends[(tp.topic, tp.partition)]:
                del self._ends[(tp.topic, tp.partition)]
        if not self._ends and self._health.assigned:
            self._health.caught_up = True
            self._metrics.caught_up.set(1)
            logger.info("caught up with %s", ", ".join(self._topics))
