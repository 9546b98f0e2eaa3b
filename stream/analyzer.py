"""The poll loop: Kafka frames → windower → engine worker → caption events, exactly once.

One thread (the caller of :meth:`Analyzer.run`) owns the consumer, the windower and all
bookkeeping; the engine runs on its own thread behind four calls (``stream/engine/``). Each
turn::

    consume ≤ 500 records (≤ 50 ms) ─► decode ─► windower.push ─► silent? finished : engine
                                       bad frame ─► dead letter (stream/deadletter.py)
    windower.tick (idle streams)       outcomes ─► pending windows, in order per stream
                                                   (stream/pending.py) ─► events (buffered)
    backpressure: pause all partitions above pause_queued_windows, resume below resume_...
    every commit_interval_ms: checkpoint (stream/checkpoint.py: the commit order)

Each window the windower emits is one entry in :class:`~stream.pending.PendingWindows` until
its event is out: its key, close time, Kafka positions and outcome travel together, and one
``forget`` drops them. Events of a stream are published in window order, so the changelog
cursor says exactly which windows are out. On assignment the cursors of the new partitions are
read from the changelog and handed to the windower, which continues each stream from its
cursor at its first replayed frame: windows already published are rebuilt but never published
again. An aborted transaction rewinds every partition to its committed offset and reloads the
cursors. SIGTERM (``stop()``): stop fetching, let in-flight windows finish for up to
``drain_timeout_s`` (the rest stay uncommitted and are replayed), checkpoint, leave the group.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import cast

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from earwitness import failpoints
from earwitness.errors import BadInputError, KafkaFatalError, TransientError
from earwitness.kafka import check_consumer_error, position
from earwitness.transactions import TransactionAborted, TransactionalProducer
from stream.changelog import load_cursors
from stream.checkpoint import Checkpoint
from stream.config import AnalyzerSettings
from stream.cursors import StreamCursors
from stream.deadletter import DeadLetters, dead_letter
from stream.engine import EngineWorker, Outcome
from stream.metrics import AnalyzerMetrics
from stream.offsets import OffsetTracker
from stream.outcome import EventContext, event_of
from stream.pending import Pending, PendingWindows
from stream.probes import Health
from windowing import Windower
from windowing.window import Window
from windowing.wire import Headers, decode_frame

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ENGINE_DEAD = 3
TICK_INTERVAL_S = 0.25


class Analyzer:
    """Owns the Kafka clients, the windower and the bookkeeping; see the module docstring."""

    def __init__(
        self,
        settings: AnalyzerSettings,
        worker: EngineWorker,
        metrics: AnalyzerMetrics,
        health: Health,
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.metrics = metrics
        self.health = health
        self.windower = Windower(settings.windowing)
        self.offsets = OffsetTracker()
        self.pending = PendingWindows()
        self.cursors = StreamCursors()
        self.dead_letters = DeadLetters()
        kafka = settings.kafka
        self.consumer = Consumer(
            {**consumer_config(settings), "stats_cb": self._on_stats}, logger=logger
        )
        self.txn = TransactionalProducer(
            producer_config(settings), kafka.txn_id(), txn_call_timeout_s(settings)
        )
        self.checkpoint = Checkpoint(kafka, self.txn)
        self.context = EventContext.of(settings, self.txn.transactional_id)
        metrics.watch_windower(self.windower)
        self._assigned: set[int] = set()
        self._stop = threading.Event()
        self._paused = False
        self._last_tick_s = 0.0

    def stop(self) -> None:
        """Ask the loop to drain and return (safe from a signal handler or another thread)."""
        self._stop.set()

    def run(self) -> int:
        """Consume until ``stop()`` or engine death; returns the process exit code."""
        self.txn.init()
        topic = self.settings.kafka.frames_topic
        self.consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        logger.info(
            "consuming %s as group %s (transactional id %s)",
            topic,
            self.settings.kafka.group_id,
            self.txn.transactional_id,
        )
        try:
            while not self._stop.is_set():
                self._turn()
                if self.worker.dead:
                    logger.error("engine died: committing finished windows, then exiting")
                    self._take_outcomes()
                    self._checkpoint()
                    return EXIT_ENGINE_DEAD
            self._drain()
            return EXIT_OK
        finally:
            self.consumer.close()
            self.txn.close()

    # --- one turn -------------------------------------------------------------------------

    def _turn(self) -> None:
        messages = self.consumer.consume(500, timeout=0.05)
        now_s = time.monotonic()
        for msg in messages:
            self._on_message(msg, now_s)
        if now_s - self._last_tick_s >= TICK_INTERVAL_S:
            self._last_tick_s = now_s
            self._route(self.windower.tick(now_s))
        self._take_outcomes()
        self._backpressure()
        if (now_s - self.checkpoint.last_s) * 1000 >= self.settings.kafka.commit_interval_ms:
            self._checkpoint()
        self.health.beat()

    def _on_message(self, msg: Message, now_s: float) -> None:
        error = msg.error()
        if error is not None:
            check_consumer_error(error)
            return
        self.metrics.frames_in.inc()
        _, partition, offset = position(msg)
        self.offsets.consumed(partition, offset)
        try:
            frame = decode_frame(
                msg.key(),
                msg.value(),
                cast("Headers | None", msg.headers()),  # consumed headers are (str, bytes)
                (partition, offset),
                self.settings.windowing.frame_limits,
            )
        except BadInputError as exc:
            self._dead_letter(msg, exc)
            return
        self.cursors.seen(frame.stream_id, partition)
        self._route(self.windower.push(frame, now_s))

    def _dead_letter(self, msg: Message, exc: BadInputError) -> None:
        if not self.dead_letters.first_time(msg):
            return  # replayed: its dead letter is out already (see stream/deadletter.py)
        self.metrics.bad_frames.labels(exc.reason).inc()
        logger.warning(
            "bad frame at %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), exc
        )
        self.checkpoint.add_dead_letter(*dead_letter(msg, exc))

    # --- windows and outcomes -------------------------------------------------------------

    def _route(self, windows: list[Window]) -> None:
        """Windows fresh from the windower: pending in order; the silent ones skip the engine."""
        closed_ns = time.time_ns()
        for window in windows:
            entry = self.pending.add(window, closed_ns)
            if window.silent:
                self.metrics.windows.labels("silent").inc()
                self._finish(entry.key, None)
            else:
                self.worker.submit(window)
                self.metrics.windows.labels("submitted").inc()

    def _take_outcomes(self) -> None:
        for outcome in self.worker.take_outcomes():
            self._finish(outcome.window.key, outcome)
        self.metrics.inflight.set(self.worker.pending)

    def _finish(self, key: tuple[str, int, int], outcome: Outcome | None) -> None:
        for ready in self.pending.finish(key, outcome):
            self._publish(ready)

    def _publish(self, entry: Pending) -> None:
        """Buffer the window's event for the next checkpoint and move the stream's cursor."""
        self._count(entry.outcome)
        event = event_of(entry, self.context)
        if event is not None:
            self.checkpoint.add_event(event)
        self.cursors.on_published(entry.window.cursor)

    def _count(self, outcome: Outcome | None) -> None:
        if outcome is None:
            return
        if outcome.shed is not None:
            self.metrics.windows.labels("shed").inc()
        elif outcome.result is not None:
            self.metrics.batch_size.observe(outcome.batch_size)
            self.metrics.engine_latency.observe(outcome.result.engine_latency_ms / 1000)
            self.metrics.windows.labels("captioned").inc()
        else:
            self.metrics.windows.labels("failed").inc()

    # --- flow control and checkpoints -----------------------------------------------------

    def _backpressure(self) -> None:
        """Pause every assigned partition above the high watermark, resume below the low one."""
        pending, batch = self.worker.pending, self.settings.batch
        if not self._paused and pending >= batch.pause_queued_windows:
            self.consumer.pause(self.consumer.assignment())
            self._paused = True
            logger.info("paused input: %d windows pending", pending)
        elif self._paused and pending <= batch.resume_queued_windows:
            self.consumer.resume(self.consumer.assignment())
            self._paused = False
            logger.info("resumed input: %d windows pending", pending)
        self.metrics.paused.set(len(self._assigned) if self._paused else 0)

    def _checkpoint(self) -> None:
        """One transaction: events + dead letters, changelog cursors, offsets (checkpoint.py)."""
        holds = [*self.windower.oldest_needed().values(), *self.pending.holds()]
        offsets = self.offsets.committable(holds)
        try:
            closed = self.checkpoint.commit(
                self.cursors.changed(), self.dead_letters.changed_marks(), offsets, self.consumer
            )
        except TransactionAborted:
            self._rewind(sorted(self._assigned))
            return
        if closed is None:
            return
        self.offsets.committed(offsets)
        self.cursors.checkpointed()
        self.dead_letters.checkpointed()
        now_ns = time.time_ns()
        for closed_ns in closed:
            self.metrics.end_to_end.observe(max(0, now_ns - closed_ns) / 1e9)
        self.metrics.commits.inc()

    def _rewind(self, partitions: list[int]) -> None:
        """Drop everything since the last commit for ``partitions`` and replay from there."""
        logger.warning("rewinding partitions %s to their committed offsets", partitions)
        self.checkpoint.discard()
        self._forget(partitions)
        _retrying("rewind", lambda: self._seek_committed(partitions))
        _retrying("restore", lambda: self._restore(partitions))

    def _seek_committed(self, partitions: list[int]) -> None:
        topic = self.settings.kafka.frames_topic
        committed = self.consumer.committed([TopicPartition(topic, p) for p in partitions], 30)
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self.consumer.seek(TopicPartition(topic, tp.partition, offset))

    def _drain(self) -> None:
        """Stop fetching, let in-flight windows finish (bounded), publish, checkpoint."""
        self.consumer.pause(self.consumer.assignment())
        deadline = time.monotonic() + self.settings.batch.drain_timeout_s
        while self.worker.pending and time.monotonic() < deadline:
            self._take_outcomes()
            self.consumer.consume(100, timeout=0.05)  # paused: keeps the group session alive
        if self.worker.pending:
            logger.warning(
                "abandoning %d windows still in the engine; they will be replayed",
                self.worker.pending,
            )
        self._checkpoint()

    # --- rebalances -----------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = sorted(tp.partition for tp in partitions)
        logger.info("assigned %s", numbers)
        self._restore(numbers)
        failpoints.hit("assign.restored")
        self._assigned.update(numbers)
        consumer.incremental_assign(partitions)
        if self._paused:
            consumer.pause(partitions)
        self.health.assigned = bool(self._assigned)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = sorted(tp.partition for tp in partitions)
        logger.info("revoked %s: checkpointing first", numbers)
        self._take_outcomes()
        self._checkpoint()
        self._forget(numbers)
        self._assigned.difference_update(numbers)
        consumer.incremental_unassign(partitions)
        self.health.assigned = bool(self._assigned)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = sorted(tp.partition for tp in partitions)
        logger.warning("lost %s without a checkpoint; rewinding the rest", numbers)
        self._forget(numbers)
        self._assigned.difference_update(numbers)
        consumer.incremental_unassign(partitions)
        self._rewind(sorted(self._assigned))
        self.health.assigned = bool(self._assigned)

    def _restore(self, partitions: list[int]) -> None:
        """Read the partitions' cursors from the changelog before their records are processed."""
        kafka = self.settings.kafka
        for partition in partitions:
            restored = load_cursors(kafka.client_config(), kafka.changelog, [partition])
            self.cursors.restored(restored.cursors, partition)
            for cursor in restored.cursors.values():
                self._route(self.windower.restore(cursor, time.monotonic()))
            self.dead_letters.restored(partition, restored.dead_lettered_below.get(partition, 0))

    def _forget(self, partitions: list[int]) -> None:
        """Drop all state of the partitions' streams; their outcomes will be ignored."""
        streams = self.cursors.streams_in(partitions)
        for stream_id in streams:
            self.windower.forget(stream_id)
        dropped = self.pending.forget(streams)
        self.cursors.forget(streams)
        self.offsets.forget(partitions)
        self.dead_letters.forget(partitions)
        if dropped:
            logger.info("dropped %d unpublished windows of partitions %s", len(dropped), partitions)

    def _on_stats(self, stats_json: str) -> None:
        """librdkafka statistics (every 5 s, on this thread): per-partition consumer lag."""
        topic = orjson.loads(stats_json).get("topics", {}).get(self.settings.kafka.frames_topic)
        for partition, stats in (topic or {}).get("partitions", {}).items():
            lag = stats.get("consumer_lag", -1)
            if partition != "-1" and lag >= 0:
                self.metrics.lag.labels(partition).set(lag)


def consumer_config(settings: AnalyzerSettings) -> dict[str, object]:
    kafka = settings.kafka
    config: dict[str, object] = {
        **kafka.client_config(),
        "group.id": kafka.group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": kafka.session_timeout_ms,
        "max.poll.interval.ms": kafka.max_poll_interval_ms,
        "statistics.interval.ms": 5000,
    }
    if kafka.group_instance_id:
        config["group.instance.id"] = kafka.group_instance_id
    return config


def _retrying(what: str, step: Callable[[], None], deadline_s: float = 120.0) -> None:
    """Retry a broker round trip while the broker comes back (after a restart, say)."""
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            step()
            return
        except (KafkaException, TransientError) as exc:
            if time.monotonic() > give_up:
                raise KafkaFatalError(f"{what}: broker unreachable for {deadline_s:.0f} s") from exc
            logger.warning("%s failed, retrying: %s", what, exc)
            time.sleep(1.0)


def txn_call_timeout_s(settings: AnalyzerSettings) -> float:
    """A transactional call must end well inside the transaction's own broker-side timeout."""
    return min(30.0, settings.kafka.transaction_timeout_ms / 2000)


def producer_config(settings: AnalyzerSettings) -> dict[str, object]:
    return {
        **settings.kafka.client_config(),
        "transaction.timeout.ms": settings.kafka.transaction_timeout_ms,
        "linger.ms": 5,
        "compression.type": "zstd",
    }
