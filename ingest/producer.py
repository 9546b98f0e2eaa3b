"""Frames to Kafka: straight into librdkafka from the source's thread, a byte-bounded outbox
that drops the oldest behind it, and the one producer thread.

::

    source threads ──Publisher.put()──► produce() into librdkafka ──► Kafka
    (never block)        │  (≤ producer_queue_max_bytes; idempotent: in order per partition,
                         │   so per source)
                         └─ refused (BufferError), or the outbox already holds frames:
                            Outbox (≤ buffer_max_bytes; full: the OLDEST frames go, counted per
                            source, logged) ──► thread ew-ingest-kafka drains it into librdkafka

A frame goes into librdkafka on the thread that framed it: a hand-off to one producer thread
would make every frame wait for that thread's turn at the GIL behind the N reader threads
(at 100 sources that wait was most of the capture-to-produce latency). Order is kept by
``Publisher._order``: held while a frame enters librdkafka, by a source thread or by the
drain, and a frame goes to the outbox instead whenever the outbox is not empty, so no frame
overtakes an older one that waits there.

Live audio cannot wait: a source never blocks on Kafka. While the broker is unreachable
librdkafka's queue fills, ``produce()`` refuses more (``BufferError``), frames pile up in the
outbox, and past its bound the oldest go. Dropped frames leave ``ew-seq`` holes, which the
analyzer treats as gaps (silence, ``gap_fraction``) or a new segment, as the wire format says.
Memory is bounded by both queues together; neither grows past its bound.

Owners: :class:`Publisher` owns the producer, thread ``ew-ingest-kafka`` (drains the outbox,
serves librdkafka's error callbacks) and thread ``ew-ingest-topic`` (every few seconds: asks
the cluster for the frames topic, creating it if allowed, for ``/readyz``; on its own thread,
so that an unreachable cluster never holds up the producer loop); ``stop()`` drains the
outbox into librdkafka and flushes it for up to ``timeout_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from earwitness.errors import EarwitnessError
from earwitness.kafka import ClientConfig
from earwitness.topics import create_missing, existing_topics
from ingest.config import IngestKafka
from ingest.framer import OutFrame
from ingest.metrics import IngestMetrics

logger = logging.getLogger(__name__)

RECORD_OVERHEAD_BYTES = 160
"""What a record costs beyond its value (key, headers, objects), for the byte bound."""
_LOG_EVERY_S = 10.0
_BATCH = 512
_TOPIC_RETRY_S = 5.0


def record_bytes(frame: OutFrame) -> int:
    return len(frame.value) + RECORD_OVERHEAD_BYTES


class Outbox:
    """Frames waiting for librdkafka, oldest first, bounded in bytes. Thread-safe."""

    def __init__(self, max_bytes: int, metrics: IngestMetrics) -> None:
        self.max_bytes = max_bytes
        self._metrics = metrics
        self._items: deque[OutFrame] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self.wake = threading.Event()
        self._dropped: dict[bytes, int] = {}
        self._dropped_bytes = 0
        self._last_log = 0.0

    @property
    def bytes(self) -> int:
        return self._bytes

    def put(self, frames: Iterable[OutFrame]) -> None:
        """Append; never blocks. Over the bound, the oldest frames are dropped."""
        dropped: list[OutFrame] = []
        with self._lock:
            for frame in frames:
                self._items.append(frame)
                self._bytes += record_bytes(frame)
            while self._bytes > self.max_bytes and self._items:
                old = self._items.popleft()
                self._bytes -= record_bytes(old)
                dropped.append(old)
        self.wake.set()
        if dropped:
            self._count_drops(dropped)

    def take(self, limit: int) -> list[OutFrame]:
        with self._lock:
            count = min(limit, len(self._items))
            taken = [self._items.popleft() for _ in range(count)]
            self._bytes -= sum(record_bytes(f) for f in taken)
            if not self._items:
                self.wake.clear()
        return taken

    def put_back(self, frames: list[OutFrame]) -> None:
        """Return frames librdkafka refused to the front, in order (they are the oldest)."""
        with self._lock:
            self._items.extendleft(reversed(frames))
            self._bytes += sum(record_bytes(f) for f in frames)
        self.wake.set()

    def _count_drops(self, dropped: list[OutFrame]) -> None:
        for frame in dropped:
            self._metrics.by_key(frame.key).dropped.inc()
            self._dropped[frame.key] = self._dropped.get(frame.key, 0) + 1
            self._dropped_bytes += len(frame.value)
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_S:
            self._last_log = now
            streams = ", ".join(k.decode(errors="replace") for k in sorted(self._dropped)[:10])
            logger.warning(
                "Kafka is not keeping up: dropped the oldest %d frames (%d bytes of PCM) of "
                "%d stream(s) since the last report (%s): buffer_max_bytes %d is full",
                sum(self._dropped.values()),
                self._dropped_bytes,
                len(self._dropped),
                streams,
                self.max_bytes,
            )
            self._dropped.clear()
            self._dropped_bytes = 0


def producer_config(kafka: IngestKafka, bootstrap: str | None = None) -> ClientConfig:
    """The idempotent producer: in order per partition, retried until ``message_timeout_ms``."""
    return {
        **kafka.client_config(),
        "bootstrap.servers": bootstrap or kafka.bootstrap_servers,
        "enable.idempotence": True,
        "linger.ms": kafka.linger_ms,
        "message.timeout.ms": kafka.message_timeout_ms,
        "queue.buffering.max.kbytes": max(1, kafka.producer_queue_max_bytes // 1024),
        "queue.buffering.max.messages": 2_000_000,
        # Delivery reports only for failures: a Python call per delivered frame would cost
        # more than the frame itself; frames are counted as they are handed over instead.
        "delivery.report.only.error": True,
    }


class Publisher:
    """Moves frames from the :class:`Outbox` into librdkafka on thread ``ew-ingest-kafka``."""

    def __init__(
        self, config: ClientConfig, kafka: IngestKafka, outbox: Outbox, metrics: IngestMetrics
    ) -> None:
        self.topic = kafka.frames_topic
        self._kafka = kafka
        self._config = config
        self._outbox = outbox
        self._metrics = metrics
        self._stop = threading.Event()
        self._order = threading.Lock()
        """Held while frames enter librdkafka (from a source or the outbox): keeps their order."""
        self._producer = Producer(
            {
                **config,
                "on_delivery": self._delivered,
                "error_cb": self._client_error,
                "logger": logging.getLogger("ingest.librdkafka"),
            }
        )
        self._thread = threading.Thread(target=self._run, name="ew-ingest-kafka", daemon=True)
        self._topic_thread = threading.Thread(
            target=self._ensure_topic, name="ew-ingest-topic", daemon=True
        )
        self.reachable = False
        """Whether the last word from the cluster was good (a delivery, or metadata)."""
        self._last_error_log = 0.0

    def start(self) -> None:
        self._thread.start()
        self._topic_thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float) -> int:
        """Drain and flush for up to ``timeout_s``; returns the frames left undelivered."""
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        self._thread.join(timeout_s)
        self._topic_thread.join(max(0.0, deadline - time.monotonic()))
        while self._outbox.bytes and time.monotonic() < deadline:
            self._produce_batch()
        left = self._producer.flush(max(0.0, deadline - time.monotonic()))
        left += len(self._outbox.take(10**9))
        if left:
            logger.error("%d frames were not delivered before the stop timeout", left)
        return left

    def put(self, frames: list[OutFrame]) -> None:
        """From a source's thread: into librdkafka now, unless the outbox holds frames already
        or librdkafka refuses (its queue is full); those wait in the outbox. Never blocks on
        Kafka."""
        with self._order:
            if not self._outbox.bytes:
                handed = self._hand(frames)
                frames = frames[handed:]
            if frames:
                self._outbox.put(frames)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._outbox.bytes:
                self._outbox.wake.wait(0.05)
            self._produce_batch()
            self._producer.poll(0)
            self._metrics.buffer_bytes.set(self._outbox.bytes)

    def _produce_batch(self) -> None:
        """Drain up to a batch of the outbox into librdkafka (in order, under ``_order``)."""
        with self._order:
            batch = self._outbox.take(_BATCH)
            handed = self._hand(batch)
            if handed < len(batch):
                self._outbox.put_back(batch[handed:])
        if handed < len(batch):
            self._producer.poll(0.05)  # librdkafka's queue is full: let it drain

    def _hand(self, frames: list[OutFrame]) -> int:
        """``produce()`` frames in order until librdkafka refuses one; how many it took (a
        frame it rejects outright counts as taken, and as a delivery error)."""
        produce = self._producer.produce
        now = time.monotonic()
        handed: dict[bytes, list[int]] = {}
        taken = 0
        try:
            for frame in frames:
                try:
                    produce(self.topic, frame.value, frame.key, headers=frame.headers)
                except BufferError:
                    break
                except KafkaException as exc:
                    self._metrics.by_key(frame.key).delivery_errors.inc()
                    self._log_error("cannot produce: %s", exc)
                    taken += 1
                    continue
                taken += 1
                self._metrics.by_key(frame.key).latency.observe(now - frame.captured_mono)
                counts = handed.setdefault(frame.key, [0, 0])
                counts[0] += 1
                counts[1] += len(frame.value)
        finally:
            for key, (count, size) in handed.items():
                metrics = self._metrics.by_key(key)
                metrics.frames.inc(count)
                metrics.bytes.inc(size)
        return taken

    def _ensure_topic(self) -> None:
        """Thread ``ew-ingest-topic``, every few seconds: the cluster answers and the topic exists
        (created if allowed); ``reachable`` says how the last check went."""
        admin = AdminClient(self._config)
        new = NewTopic(
            self.topic,
            self._kafka.new_topic_partitions,
            self._kafka.replication_factor,
            config=self._kafka.retention.frames.topic_config(),
        )
        while True:
            try:
                existing = existing_topics(admin, timeout_s=_TOPIC_RETRY_S)
                create_missing(admin, [new], existing, allowed=self._kafka.create_topics)
                self.reachable = True
            except EarwitnessError as exc:
                self.reachable = False
                self._log_error("frames topic %s not ready: %s", self.topic, exc)
            if self._stop.wait(_TOPIC_RETRY_S):
                return

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        """Called for failed deliveries only (``delivery.report.only.error``)."""
        if err is None:
            return
        key = msg.key() or b""
        self._metrics.by_key(key).delivery_errors.inc()
        self._log_error("frame of %r not delivered: %s", key.decode(errors="replace"), err.str())

    def _client_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.reachable = False
        self._log_error("kafka: %s", err.str())

    def _log_error(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= _LOG_EVERY_S:
            self._last_error_log = now
            logger.warning(message, *args)
