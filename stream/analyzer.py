"""The poll loop: Kafka frames → windower → engine worker → caption events, exactly once.

One thread (the caller of :meth:`Analyzer.run`) owns the consumer, the transactional producer,
the windower and all bookkeeping; the engine runs on its own thread (``stream/worker.py``).
Each turn::

    consume ≤ 500 records (≤ 50 ms) ─► decode ─► windower.push ─► silent? done : engine
                                       bad frame ─► dead letter (buffered for the checkpoint)
    windower.tick (idle streams)       outcomes ─► per-stream order ─► events (buffered)
    backpressure: pause all partitions above pause_queued_windows, resume below resume_...
    every commit_interval_ms: checkpoint

**Commit order** (one Kafka transaction per checkpoint, ``earwitness/transactions.py``):

1. produce the buffered caption events and dead letters,
2. produce each changed stream's cursor (last *published* window) to the changelog, into the
   changelog partition equal to the stream's input partition, and each partition's dead-letter
   mark if it dead-lettered records (replayed bad records are not dead-lettered again),
3. ``send_offsets_to_transaction``: per input partition the lowest offset still needed by any
   window not yet published (``stream/offsets.py``),
4. ``commit_transaction``.

Events of a stream are published in window order (``stream/ordering.py``), so the changelog
cursor says exactly which windows are out. On assignment the cursors of the new partitions are
read from the changelog and each stream is restored from its cursor before its first replayed
frame: windows already published are rebuilt but never published again. An aborted
transaction rewinds every partition to its committed offset and reloads the cursors.
SIGTERM (``stop()``): stop fetching, let in-flight windows finish for up to ``drain_timeout_s``
(the rest stay uncommitted and are replayed), checkpoint, leave the group.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from earwitness import failpoints
from earwitness.errors import BadInputError, KafkaFatalError, TransientError
from earwitness.transactions import Record, TransactionAborted, TransactionalProducer
from stream.batcher import Outcome
from stream.changelog import DEAD_LETTER_MARK_KEY, encode_cursor, encode_mark, load_cursors
from stream.config import AnalyzerSettings, SilencePolicy
from stream.cursors import StreamCursors
from stream.deadletter import dead_letter
from stream.events import EventKind, cloudevent_headers, window_event
from stream.http import Health
from stream.metrics import AnalyzerMetrics
from stream.offsets import OffsetTracker, WindowKey
from stream.ordering import InOrder
from stream.worker import EngineWorker
from windowing import Windower
from windowing.window import Window
from windowing.wire import Headers, decode_frame

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ENGINE_DEAD = 3
TICK_INTERVAL_S = 0.25


def window_key(window: Window) -> WindowKey:
    return (window.stream_id, window.segment_id, window.index)


@dataclass(frozen=True)
class Done:
    """A window whose fate is known, waiting for its turn to be published."""

    window: Window
    closed_ns: int
    outcome: Outcome | None = None
    """None: silent window (no engine)."""


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
        self.order: InOrder[Done] = InOrder()
        self.cursors = StreamCursors()
        kafka = settings.kafka
        self.consumer = Consumer(
            {**consumer_config(settings), "stats_cb": self._on_stats}, logger=logger
        )
        self.txn = TransactionalProducer(
            producer_config(settings), kafka.txn_id(), txn_call_timeout_s(settings)
        )
        metrics.watch_windower(self.windower)
        self._records: list[Record] = []
        self._dead_lettered_below: dict[int, int] = {}
        """Per partition: bad records below this offset are dead-lettered (changelog mark)."""
        self._marks_dirty: set[int] = set()
        self._committing_closed_ns: list[int] = []
        self._closed_ns: dict[WindowKey, int] = {}
        self._assigned: set[int] = set()
        self._stop = threading.Event()
        self._paused = False
        self._last_tick_s = 0.0
        self._last_commit_s = time.monotonic()

    def stop(self) -> None:
        """Ask the loop to drain and return (safe from a signal handler or another thread)."""
        self._stop.set()

    def run(self) -> int:
        """Consume until ``stop()`` or engine death; returns the process exit code."""
        self.txn.init()
        topic = self.settings.kafka.input_topic
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
        if (now_s - self._last_commit_s) * 1000 >= self.settings.kafka.commit_interval_ms:
            self._checkpoint()
        self.health.beat()

    def _on_message(self, msg: Message, now_s: float) -> None:
        error = msg.error()
        if error is not None:
            self._on_consumer_error(error)
            return
        self.metrics.frames_in.inc()
        partition, offset = _position(msg)
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
        if frame.stream_id not in self.windower:
            self._reopen(frame.stream_id, now_s)
        self._route(self.windower.push(frame, now_s))

    def _reopen(self, stream_id: str, now_s: float) -> None:
        """A stream the windower does not hold: continue from its last emitted cursor."""
        cursor = self.cursors.emitted.get(stream_id)
        if cursor is not None:
            self._route(self.windower.restore(cursor, now_s))

    def _on_consumer_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise KafkaFatalError(f"consumer: {error.str()}")
        logger.warning("consumer: %s", error.str())

    def _dead_letter(self, msg: Message, exc: BadInputError) -> None:
        partition, offset = _position(msg)
        if offset < self._dead_lettered_below.get(partition, 0):
            return  # replayed: its dead letter is out already (see stream/changelog.py)
        self._dead_lettered_below[partition] = offset + 1
        self._marks_dirty.add(partition)
        self.metrics.bad_frames.labels(exc.reason).inc()
        logger.warning(
            "bad frame at %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), exc
        )
        key, value, headers = dead_letter(msg, exc)
        self._records.append(Record(self.settings.kafka.dlq_topic, key, value, headers))

    # --- windows and outcomes -------------------------------------------------------------

    def _route(self, windows: list[Window]) -> None:
        """Windows fresh from the windower: ordered per stream; the silent ones skip the engine."""
        closed_ns = time.time_ns()
        for window in windows:
            key = window_key(window)
            self.cursors.on_emitted(window.cursor)
            self.order.expect(key)
            self.offsets.hold(key, window.positions)
            if window.silent:
                self.metrics.windows.labels("silent").inc()
                self._finish(key, Done(window, closed_ns))
            else:
                self._closed_ns[key] = closed_ns
                self.worker.submit(window)
                self.metrics.windows.labels("submitted").inc()

    def _take_outcomes(self) -> None:
        for outcome in self.worker.take_outcomes():
            key = window_key(outcome.window)
            closed_ns = self._closed_ns.pop(key, time.time_ns())
            self._finish(key, Done(outcome.window, closed_ns, outcome))
        self.metrics.inflight.set(self.worker.pending)

    def _finish(self, key: WindowKey, done: Done) -> None:
        for ready in self.order.finish(key, done):
            self._publish(ready)

    def _publish(self, done: Done) -> None:
        """Buffer the window's event for the next checkpoint and move the stream's cursor."""
        window, outcome = done.window, done.outcome
        if outcome is None:
            if self.settings.batch.silence is SilencePolicy.EVENT:
                self._emit(window, EventKind.SILENCE, done.closed_ns, skipped="silence")
        elif outcome.shed is not None:
            self.metrics.windows.labels("shed").inc()
            self._emit(window, EventKind.SHED, done.closed_ns, skipped=f"shed: {outcome.shed}")
        elif outcome.result is not None:
            self.metrics.batch_size.observe(outcome.batch_size)
            self.metrics.engine_latency.observe(outcome.result.engine_latency_ms / 1000)
            self.metrics.windows.labels("captioned").inc()
            self._emit(
                window,
                EventKind.CAPTION,
                done.closed_ns,
                caption=outcome.result.text,
                engine_latency_ms=outcome.result.engine_latency_ms,
            )
        else:
            self.metrics.windows.labels("failed").inc()
            self._emit(window, EventKind.ERROR, done.closed_ns, error=outcome.error)
        self.cursors.on_published(window.cursor)
        self.offsets.release(window_key(window))

    def _emit(
        self,
        window: Window,
        kind: EventKind,
        closed_ns: int,
        *,
        caption: str | None = None,
        engine_latency_ms: float | None = None,
        skipped: str | None = None,
        error: str | None = None,
    ) -> None:
        engine = self.settings.engine
        event = window_event(
            window,
            kind,
            model=engine.model,
            model_revision=engine.revision or "main",
            closed_ns=closed_ns,
            caption=caption,
            engine_latency_ms=engine_latency_ms,
            skipped=skipped,
            error=error,
        )
        self._records.append(
            Record(
                self.settings.kafka.output_topic,
                window.stream_id.encode(),
                event.to_json(),
                cloudevent_headers(event),
            )
        )
        self._committing_closed_ns.append(closed_ns)

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
        """One transaction: events + dead letters, changelog cursors, offsets (module doc)."""
        self._last_commit_s = time.monotonic()
        kafka = self.settings.kafka
        changelog = [
            Record(
                kafka.changelog,
                c.stream_id.encode(),
                encode_cursor(c),
                partition=self.cursors.partition_of[c.stream_id],
            )
            for c in self.cursors.take_dirty()
        ]
        changelog += [
            Record(
                kafka.changelog,
                DEAD_LETTER_MARK_KEY,
                encode_mark(self._dead_lettered_below[p]),
                partition=p,
            )
            for p in sorted(self._marks_dirty)
        ]
        offsets = self.offsets.committable(self.windower.oldest_needed().values())
        if not (self._records or changelog or offsets):
            return
        try:
            self.txn.commit(
                [*self._records, *changelog],
                {(kafka.input_topic, p): o for p, o in offsets.items()},
                self.consumer,
            )
        except TransactionAborted:
            self._rewind(sorted(self._assigned))
            return
        self._committed(offsets)

    def _committed(self, offsets: dict[int, int]) -> None:
        self.offsets.committed(offsets)
        self.cursors.checkpointed()
        self._marks_dirty.clear()
        self._records.clear()
        now_ns = time.time_ns()
        for closed_ns in self._committing_closed_ns:
            self.metrics.end_to_end.observe(max(0, now_ns - closed_ns) / 1e9)
        self._committing_closed_ns.clear()
        self.metrics.commits.inc()

    def _rewind(self, partitions: list[int]) -> None:
        """Drop everything since the last commit for ``partitions`` and replay from there."""
        logger.warning("rewinding partitions %s to their committed offsets", partitions)
        self._records.clear()
        self._committing_closed_ns.clear()
        self._forget(partitions)
        _retrying("rewind", lambda: self._seek_committed(partitions))
        _retrying("restore", lambda: self._restore(partitions))

    def _seek_committed(self, partitions: list[int]) -> None:
        topic = self.settings.kafka.input_topic
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
        if not partitions:
            return
        kafka = self.settings.kafka
        for partition in partitions:
            restored = load_cursors(kafka.client_config(), kafka.changelog, [partition])
            self.cursors.restored(restored.cursors, partition)
            self._dead_lettered_below[partition] = restored.dead_lettered_below.get(partition, 0)

    def _forget(self, partitions: list[int]) -> None:
        """Drop all state of the partitions' streams; their outcomes will be ignored."""
        streams = self.cursors.streams_in(partitions)
        for stream_id in streams:
            self.windower.forget(stream_id)
        dropped = self.order.forget(streams)
        self.cursors.forget(streams)
        self.offsets.forget(partitions)
        for partition in partitions:
            self._dead_lettered_below.pop(partition, None)
            self._marks_dirty.discard(partition)
        if dropped:
            logger.info("dropped %d unpublished windows of partitions %s", dropped, partitions)

    def _on_stats(self, stats_json: str) -> None:
        """librdkafka statistics (every 5 s, on this thread): per-partition consumer lag."""
        topic = orjson.loads(stats_json).get("topics", {}).get(self.settings.kafka.input_topic)
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


def _position(msg: Message) -> tuple[int, int]:
    """``(partition, offset)`` of a consumed record (the client always sets both)."""
    partition, offset = msg.partition(), msg.offset()
    if partition is None or offset is None:
        raise KafkaFatalError(f"a consumed record without a position: {msg.topic()}")
    return partition, offset


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
