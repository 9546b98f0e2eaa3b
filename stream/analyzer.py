"""The poll loop: Kafka frames → windower → engine worker → caption events, exactly once.

One thread (the caller of :meth:`Analyzer.run`) owns the consumer, the windower and all
bookkeeping; the engine runs on its own thread behind a few calls (``stream/engine/``). Each
turn::

    restore cursors of newly assigned partitions (they stay paused until then)
    consume ≤ 500 records (≤ 50 ms) ─► decode ─► windower.push ─► silent? finished : engine
                                       bad frame ─► dead letter (stream/deadletter.py)
    windower.tick (idle streams)       outcomes ─► pending windows, in order per stream
                                                   (stream/pending.py) ─► events (buffered)
    backpressure: pause all partitions above pause_queued_windows, resume below resume_...
    every commit_interval_ms: checkpoint (stream/checkpoint.py: the commit order), then
    retire idle streams and refresh the gauges

Each window the windower emits is one entry in :class:`~stream.pending.PendingWindows` until
its event is out: its key, close time, Kafka positions and outcome travel together, and one
``forget`` drops them (and cancels them in the engine). Events of a stream are published in
window order, so the changelog cursor says exactly which windows are out. On assignment the
new partitions are paused until their cursors are read from the changelog (in the poll loop,
not in the rebalance callback) and handed to the windower, which continues each stream from
its cursor at its first replayed frame: windows already published are rebuilt but never
published again. An aborted transaction rewinds every partition to its committed offset and
reloads the cursors the same way.

The windower's clock (``input_s``) stops while input is paused: a stream is idle when its
frames stop arriving, not while we choose not to read them. SIGTERM (``stop()``): stop
fetching, let in-flight windows finish for up to ``drain_timeout_s`` (the rest stay
uncommitted and are replayed), checkpoint, leave the group.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import cast

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from earwitness import failpoints
from earwitness.errors import BadInputError, EngineDeadError
from earwitness.kafka import check_consumer_error, position
from earwitness.transactions import TransactionAborted, TransactionalProducer
from stream.changelog import load_cursors
from stream.checkpoint import Checkpoint
from stream.clients import consumer_config, producer_config, retrying, txn_call_timeout_s
from stream.config import AnalyzerSettings
from stream.deadletter import dead_letter
from stream.engine import EngineWorker, Outcome
from stream.metrics import AnalyzerMetrics
from stream.outcome import EventContext, event_of
from stream.pending import Pending
from stream.probes import Health
from stream.state import AnalyzerState
from windowing.window import Window
from windowing.wire import Headers, decode_frame

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ENGINE_DEAD = 3
TICK_INTERVAL_S = 0.25
INIT_DEADLINE_S = 120.0
"""How long init_transactions retries a broker blip after the warm-up (not to waste it)."""


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
        self.state = AnalyzerState(settings)
        kafka = settings.kafka
        self.consumer = Consumer(
            {**consumer_config(settings), "stats_cb": self._on_stats}, logger=logger
        )
        self.txn = TransactionalProducer(
            producer_config(settings), kafka.txn_id(), txn_call_timeout_s(settings)
        )
        self.checkpoint = Checkpoint(kafka, self.txn)
        self.context = EventContext.of(settings, self.txn.transactional_id)
        self._assigned: set[int] = set()
        self._restoring: set[int] = set()
        self._stop = threading.Event()
        self._paused_since: float | None = None
        self._paused_total_s = 0.0
        self._last_tick_s = 0.0

    def stop(self) -> None:
        """Ask the loop to drain and return (safe from a signal handler or another thread)."""
        self._stop.set()

    def run(self) -> int:
        """Consume until ``stop()`` or engine death; returns the process exit code."""
        self.txn.init(deadline_s=INIT_DEADLINE_S)
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
        if self._restoring:
            self._restore_pending()
        messages = self.consumer.consume(500, timeout=0.05)
        now_s = time.monotonic()
        for msg in messages:
            self._on_message(msg, now_s)
        if now_s - self._last_tick_s >= TICK_INTERVAL_S:
            self._last_tick_s = now_s
            if self._paused_since is None:  # idle means no frames arriving, not paused input
                self._route(self.state.windower.tick(self._input_s(now_s)))
        self._take_outcomes()
        self._backpressure(now_s)
        if (now_s - self.checkpoint.last_s) * 1000 >= self.settings.kafka.commit_interval_ms:
            self._checkpoint()
            self._housekeeping(now_s)
        self.health.beat()

    def _input_s(self, now_s: float) -> float:
        """The windower's clock: monotonic time with the paused spells taken out."""
        paused = self._paused_total_s
        if self._paused_since is not None:
            paused += now_s - self._paused_since
        return now_s - paused

    def _on_message(self, msg: Message, now_s: float) -> None:
        error = msg.error()
        if error is not None:
            check_consumer_error(error)
            return
        self.metrics.frames_in.inc()
        _, partition, offset = position(msg)
        self.state.offsets.consumed(partition, offset)
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
        self.state.seen(frame.stream_id, partition, offset, frame.ts_ns, now_s)
        self._route(self.state.windower.push(frame, self._input_s(now_s)))

    def _dead_letter(self, msg: Message, exc: BadInputError) -> None:
        if not self.state.dead_letters.first_time(msg):
            return  # replayed: its dead letter is out already (see stream/deadletter.py)
        self.metrics.bad_frames.labels(exc.reason).inc()
        logger.warning(
            "bad frame at %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), exc
        )
        self.checkpoint.add_dead_letter(*dead_letter(msg, exc, self.settings.dead_letter))

    # --- windows and outcomes -------------------------------------------------------------

    def _route(self, windows: list[Window]) -> None:
        """Windows fresh from the windower: pending in order; the silent ones skip the engine."""
        closed_ns = time.time_ns()
        gate = self.settings.batch.activity_gate_db
        for window in windows:
            entry = self.state.pending.add(window, closed_ns)
            if window.marker:  # closes its segment, publishes only the final cursor
                self._finish(entry.key, None)
            elif window.silent:
                self.metrics.windows.labels("silent").inc()
                self._finish(entry.key, None)
            elif gate is not None and window.activity_db < gate:
                self.metrics.windows.labels("inactive").inc()
                entry.skipped = f"inactive: {window.activity_db:.1f} dB over the noise floor"
                self._finish(entry.key, None)
            else:
                self._submit(window)

    def _submit(self, window: Window) -> None:
        try:
            self.worker.submit(window)
        except EngineDeadError as exc:  # the loop sees worker.dead and commits what is done
            logger.error("cannot submit %s: %s", window.key, exc)
            return
        self.metrics.windows.labels("submitted").inc()

    def _take_outcomes(self) -> None:
        for outcome in self.worker.take_outcomes():
            if not outcome.cancelled:  # a window forgotten here; its replay is another entry
                self._finish(outcome.window.key, outcome)
        self.metrics.inflight.set(self.worker.pending)

    def _finish(self, key: tuple[str, int, int], outcome: Outcome | None) -> None:
        for ready in self.state.pending.finish(key, outcome):
            self._publish(ready)

    def _publish(self, entry: Pending) -> None:
        """Buffer the window's event for the next checkpoint and move the stream's cursor."""
        self._count(entry.outcome)
        event = event_of(entry, self.context)
        if event is not None:
            self.checkpoint.add_event(event)
        self.state.cursors.on_published(entry.window.cursor)

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

    def _backpressure(self, now_s: float) -> None:
        """Pause every assigned partition above the high watermark, resume below the low one."""
        pending, batch = self.worker.pending, self.settings.batch
        if self._paused_since is None and pending >= batch.pause_queued_windows:
            self.consumer.pause(self.consumer.assignment())
            self._paused_since = now_s
            logger.info("paused input: %d windows pending", pending)
        elif self._paused_since is not None and pending <= batch.resume_queued_windows:
            self._resume([tp.partition for tp in self.consumer.assignment()])
            self._paused_total_s += now_s - self._paused_since
            self._paused_since = None
            logger.info("resumed input: %d windows pending", pending)
        self.metrics.paused.set(len(self._assigned) if self._paused_since is not None else 0)

    def _resume(self, partitions: list[int]) -> None:
        """Resume what neither backpressure nor a pending restore holds back."""
        topic = self.settings.kafka.frames_topic
        ready = [p for p in partitions if p not in self._restoring]
        self.consumer.resume([TopicPartition(topic, p) for p in ready])

    def _checkpoint(self) -> None:
        """One transaction: events + dead letters, changelog cursors, offsets (checkpoint.py)."""
        state = self.state
        offsets = state.committable()
        try:
            closed = self.checkpoint.commit(
                state.cursors.changed(),
                state.cursors.tombstones(),
                state.dead_letters.changed_marks(),
                offsets,
                self.consumer,
            )
        except TransactionAborted:
            self._rewind(sorted(self._assigned))
            return
        if closed is None:
            return
        state.checkpointed(offsets)
        now_ns = time.time_ns()
        for closed_ns in closed:
            self.metrics.end_to_end.observe(max(0, now_ns - closed_ns) / 1e9)
        self.metrics.commits.inc()

    def _housekeeping(self, now_s: float) -> None:
        """After a checkpoint: retire idle streams, refresh the gauges the HTTP thread reads."""
        self.metrics.streams_retired.inc(self.state.retire_idle(now_s))
        self.metrics.observe_windower(self.state.windower)
        self.metrics.behind.set(self.state.behind_s(time.time_ns()))
        self.metrics.engine_stalled.set(self.worker.stalled_s)

    def _rewind(self, partitions: list[int]) -> None:
        """Drop everything since the last commit for ``partitions`` and replay from there."""
        logger.warning("rewinding partitions %s to their committed offsets", partitions)
        self.checkpoint.discard()
        self._forget(partitions)
        retrying("rewind", lambda: self._seek_committed(partitions))
        self._await_restore(partitions)

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
        logger.info("assigned %s; paused until their cursors are restored", numbers)
        self._assigned.update(numbers)
        consumer.incremental_assign(partitions)
        self._await_restore(numbers)
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

    def _await_restore(self, partitions: list[int]) -> None:
        """Hold the partitions paused until the next turn has restored their cursors."""
        topic = self.settings.kafka.frames_topic
        self.consumer.pause([TopicPartition(topic, p) for p in partitions])
        self._restoring.update(partitions)

    def _restore_pending(self) -> None:
        """Read the cursors of every partition waiting for them at once, then let them flow."""
        partitions = sorted(self._restoring & self._assigned)
        kafka = self.settings.kafka
        restored = retrying(
            "restore", lambda: load_cursors(kafka.client_config(), kafka.changelog, partitions)
        )
        self._route(self.state.restored(restored, partitions, self._input_s(time.monotonic())))
        failpoints.hit("assign.restored")
        self._restoring.clear()
        if self._paused_since is None:
            self._resume(partitions)

    def _forget(self, partitions: list[int]) -> None:
        """Drop all state of the partitions' streams, in the engine too."""
        dropped = self.state.forget(partitions)
        self.worker.cancel([entry.key for entry in dropped if not entry.finished])
        self._restoring.difference_update(partitions)
        if dropped:
            logger.info("dropped %d unpublished windows of partitions %s", len(dropped), partitions)

    def _on_stats(self, stats_json: str) -> None:
        """librdkafka statistics (every 5 s, on this thread): per-partition log end and lag.

        The lag is the log end (last stable offset) minus this analyzer's position, not the
        committed offset, which trails a keeping-up analyzer by (window - hop) of audio per
        stream (and moves only through the producer's transactions).
        """
        topic = orjson.loads(stats_json).get("topics", {}).get(self.settings.kafka.frames_topic)
        for name, stats in (topic or {}).get("partitions", {}).items():
            partition = int(name)
            end = stats.get("ls_offset", stats.get("hi_offset", -1))
            if partition < 0 or end < 0 or partition not in self._assigned:
                continue
            self.state.log_end[partition] = end
            self.metrics.lag.labels(name).set(max(0, end - self.state.offsets.position(partition)))
