"""The alert runner: captions → rules → incidents → receivers → transactional checkpoint.

Commit order, per batch (all on the poll-loop thread, the one that calls :meth:`run`)::

    1. consume up to batch_max_events captions (read_committed, no auto-commit)
    2. rules + incidents (pure, in memory)      → alerts, incident changes
    3. hand (alert, receiver) jobs to the Dispatcher; pause the assignment and keep
       polling (heartbeats, rebalance callbacks) until every job is delivered or
       dead-lettered — the poll loop never blocks for longer than one short poll
    4. one transaction: dead letters + incident changes + offsets (sinks.checkpoint)
    5. resume the assignment

On the tick (``tick_interval_s``, after step 2): incidents whose stream went silent resolve
(:meth:`~sinks.incidents.IncidentTracker.resolve_stale`, wall clock, only on partitions read to
their end: ``enable.partition.eof`` marks those) and periodic re-sends fall due.

A crash anywhere before 4 commits nothing: the captions are consumed again, the restored
state replays them into the same incident ids, and receivers see duplicates with the same
idempotency keys — never a loss. On revocation the in-flight batch is finished (up to
``drain_timeout_s``) and committed before the partitions go; on assignment the state topic is
read back. ``stop()`` (SIGTERM) drains the in-flight batch the same way, then closes.

Owners: the runner owns the consumer, the :class:`~sinks.checkpoint.Checkpointer` (its
transactional producer), the :class:`~sinks.delivery.Dispatcher` (one thread per receiver)
and the incident tracker. It writes ``health`` (heartbeat each turn of the loop, ``assigned``
once partitions are held and their state restored); the HTTP server's threads read it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_END, Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError

from earwitness.events import CaptionEvent
from earwitness.health import LoopHealth
from earwitness.kafka import check_consumer_error, position
from sinks import state as state_store
from sinks.alerts import Alert
from sinks.checkpoint import BadCaption, Batch, CheckpointAborted, Checkpointer
from sinks.config import AlertsSettings
from sinks.delivery import Dispatcher, Resender
from sinks.incidents import IncidentTracker
from sinks.jobs import Ticket
from sinks.metrics import AlertMetrics
from sinks.rules import RuleSet
from sinks.senders import Sender, build_sender

logger = logging.getLogger(__name__)

_WAIT_POLL_S = 0.1


class AlertRunner:
    def __init__(
        self,
        settings: AlertsSettings,
        rules: RuleSet,
        metrics: AlertMetrics,
        health: LoopHealth | None = None,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._settings = settings
        self._kafka = settings.kafka
        self._metrics = metrics
        self.health = health or LoopHealth(settings.health_stall_s)
        self._wall_clock_ns = wall_clock_ns
        self._tracker = IncidentTracker(rules, settings.stale_grace_s)
        self._at_end: set[int] = set()  # captions partitions read to their end (EOF seen last)
        self.partitions: frozenset[int] = frozenset()  # held now; their incidents are ours
        self._stopping = threading.Event()
        self._drain_deadline = float("inf")
        self._client = self._kafka.client_config()
        senders: dict[str, Sender] = {
            name: build_sender(r, self._client) for name, r in settings.receivers.items()
        }
        self._dispatcher = Dispatcher(settings.receivers, senders, rules, metrics)
        self._resender = Resender(settings.receivers)
        self._checkpointer = Checkpointer(
            self._client,
            self._kafka.transactional_id,
            self._kafka.state_topic,
            self._kafka.dead_letter_topic,
            timeout_s=min(30.0, self._kafka.max_poll_interval_ms / 4000),
        )
        self._consumer = Consumer(self._consumer_config())
        self._pending: Batch | None = None
        self._ticket: Ticket | None = None
        self._carry: list[Alert] = []
        self._bad_state: list[state_store.BadRecord] = []
        self._next_tick = 0.0

    def stop(self) -> None:
        """Ask the loop to drain and exit; safe from a signal handler or another thread."""
        if not self._stopping.is_set():
            self._drain_deadline = time.monotonic() + self._settings.drain_timeout_s
            self._stopping.set()

    def run(self) -> int:
        """Run until :meth:`stop`; returns the process exit code."""
        self._checkpointer.init()
        self._dispatcher.start()
        self._consumer.subscribe(
            [self._kafka.captions_topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        logger.info("alert runner consuming %s", self._kafka.captions_topic)
        try:
            while not self._stopping.is_set():
                self._step()
        finally:
            self._close()
        return 0

    # --- the loop ---------------------------------------------------------------------------

    def _consumer_config(self) -> dict[str, object]:
        return {
            **self._client,
            "group.id": self._kafka.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "max.poll.interval.ms": self._kafka.max_poll_interval_ms,
            "session.timeout.ms": self._kafka.session_timeout_ms,
            "enable.partition.eof": True,  # marks partitions read to their end (_at_end)
        }

    def _step(self) -> None:
        self.health.beat()
        messages = self._consumer.consume(
            self._kafka.batch_max_events, self._kafka.batch_wait_ms / 1000
        )
        batch = Batch()
        self._settle_parked(batch)
        alerts = self._take_carry()
        for msg in messages:
            alerts.extend(self._observe(msg, batch))
        jobs = self._tick(alerts)
        batch.changes = self._tracker.take_changes()
        if jobs or not batch.empty():
            self._finish(batch, self._dispatcher.dispatch(jobs) if jobs else None)

    def _observe(self, msg: Message, batch: Batch) -> list[Alert]:
        if not self._usable(msg):
            return []
        topic, partition, offset = position(msg)
        self._at_end.discard(partition)
        batch.offsets[(topic, partition)] = offset + 1
        batch.starts.setdefault((topic, partition), offset)
        try:
            event = CaptionEvent.from_json(msg.value() or b"")
        except (ValidationError, ValueError) as exc:
            self._metrics.captions.labels("invalid").inc()
            logger.warning("bad caption at %s[%d]@%d", topic, partition, offset)
            batch.bad_captions.append(
                BadCaption(msg.key(), msg.value(), "invalid_caption", str(exc))
            )
            return []
        self._metrics.captions.labels(str(event.kind)).inc()
        seen_ns = self._wall_clock_ns()
        alerts, matched = self._tracker.observe(event, seen_ns=seen_ns, partition=partition)
        for rule_id in matched:
            self._metrics.matches.labels(rule_id).inc()
        self._count(alerts)
        return alerts

    def _usable(self, msg: Message) -> bool:
        """False for an event that is not a record: end of partition (noted) or an error."""
        error = msg.error()
        if error is None:
            return True
        if error.code() == KafkaError._PARTITION_EOF:
            partition = msg.partition()
            if partition is not None:
                self._at_end.add(partition)
        else:
            check_consumer_error(error)
        return False

    def _count(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self._metrics.alerts.labels(alert.rule_id, str(alert.state)).inc()

    def _tick(self, alerts: list[Alert]) -> list[tuple[Alert, str]]:
        """Jobs for ``alerts``; on the tick also stale resolutions and due re-sends."""
        now = time.monotonic()
        resends: list[tuple[Alert, str]] = []
        if now >= self._next_tick:
            self._next_tick = now + self._settings.tick_interval_s
            stale = self._tracker.resolve_stale(self._wall_clock_ns(), self._at_end)
            for alert in stale:
                self._metrics.stale.labels(alert.rule_id).inc()
            self._count(stale)
            alerts = alerts + stale
            resends = self._resender.due(self._tracker.firing(), self._dispatcher.route, now)
            # a receiver with parked deliveries is down or just back: re-sends would only queue
            resends = [(a, n) for a, n in resends if not self._dispatcher.degraded(n)]
        return [(a, n) for a in alerts for n in self._dispatcher.route(a)] + resends

    def _settle_parked(self, batch: Batch) -> None:
        """Parked deliveries that finished: delete their records; dead letters if they died.
        Also state records that did not parse: dead-lettered raw and deleted."""
        for job, letter in self._dispatcher.take_settled():
            batch.state_records[state_store.parked_key(job).encode()] = None
            if letter is not None:
                batch.dead_letters.append(letter)
        bad, self._bad_state = self._bad_state, []
        for record in bad:
            batch.bad_captions.append(
                BadCaption(record.key, record.value, "invalid_state", record.detail, "state")
            )
            batch.state_records[record.key or b""] = None

    def _take_carry(self) -> list[Alert]:
        carry, self._carry = self._carry, []
        return carry

    def _finish(self, batch: Batch, ticket: Ticket | None) -> None:
        """Wait for deliveries (polling, paused), then checkpoint. Poll-loop thread only."""
        self._pending, self._ticket = batch, ticket
        if ticket is not None:
            self._await(ticket)
        if self._pending is batch:  # a revocation may have committed it already
            self._pending = None
            self._seal(batch, ticket)
            self._commit(batch)

    def _await(self, ticket: Ticket) -> None:
        """Keep polling, partitions paused, until the ticket completes; what is not delivered
        after ``park_after_s`` (or when the drain on SIGTERM runs out) is parked."""
        park_at = time.monotonic() + self._settings.park_after_s
        self._consumer.pause(self._consumer.assignment())
        try:
            while not ticket.wait(_WAIT_POLL_S):
                if self._dispatcher.alive():  # a dead delivery thread must show in /healthz
                    self.health.beat()
                if time.monotonic() >= min(park_at, self._drain_deadline):
                    self._dispatcher.park(ticket)
                self._poll_paused()
        finally:
            self._consumer.resume(self._consumer.assignment())

    def _seal(self, batch: Batch, ticket: Ticket | None) -> None:
        """The ticket's outcome into the batch: dead letters, parked deliveries' records."""
        if ticket is None:
            return
        batch.dead_letters.extend(ticket.dead_letters)
        for job in ticket.parked:
            key = state_store.parked_key(job).encode()
            batch.state_records[key] = state_store.parked_record(job)

    def _poll_paused(self) -> None:
        """Serve heartbeats and callbacks; a record that slips through is rewound, not lost."""
        msg = self._consumer.poll(0)
        if msg is None or not self._usable(msg):
            return
        topic, partition, offset = position(msg)
        self._at_end.discard(partition)
        self._consumer.seek(TopicPartition(topic, partition, offset))
        self._consumer.pause([TopicPartition(topic, partition)])

    def _commit(self, batch: Batch) -> None:
        try:
            self._checkpointer.commit(batch, self._consumer)
        except CheckpointAborted:
            self._metrics.checkpoints.labels("aborted").inc()
            self._rewind(batch)
            return
        self._metrics.checkpoints.labels("committed").inc()
        for rule_id, count in self._tracker.open_count().items():
            self._metrics.incidents_open.labels(rule_id).set(count)

    def _rewind(self, batch: Batch) -> None:
        """Back to the last committed offsets and state, to redo the aborted batch. Where the
        group committed nothing yet (a new group), back to the batch's first record."""
        assignment = self._consumer.assignment()
        self._at_end.clear()
        for committed in self._consumer.committed(assignment, timeout=30):
            target = committed
            if committed.offset < 0:
                start = batch.starts.get((committed.topic, committed.partition))
                if start is None:
                    continue  # nothing consumed there since the start: nothing to redo
                target = TopicPartition(committed.topic, committed.partition, start)
            self._consumer.seek(target)
        self._restore_state()

    # --- rebalance and shutdown -------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("assigned %d partition(s); loading incident state", len(partitions))
        self._at_end.clear()
        self.partitions = frozenset(tp.partition for tp in partitions)
        if self._kafka.start_at == "end":
            consumer.assign(self._new_at_end(consumer, partitions))
        self._restore_state()
        self.health.assigned = bool(partitions)

    @staticmethod
    def _new_at_end(consumer: Consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The assignment with partitions the group never committed starting at their end
        (``auto.offset.reset`` stays ``earliest`` for offsets that fell out of retention)."""
        committed = consumer.committed(partitions, timeout=30)
        return [
            TopicPartition(tp.topic, tp.partition, OFFSET_END if tp.offset < 0 else tp.offset)
            for tp in committed
        ]

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.health.assigned = False
        self.partitions = frozenset()
        self._at_end.clear()
        batch, self._pending = self._pending, None
        if batch is None:
            return
        logger.info(
            "revoked %d partition(s) mid-batch: finishing and committing it", len(partitions)
        )
        ticket = self._ticket
        wait_s = min(self._drain_left_s(), self._settings.park_after_s)
        if ticket is not None and not ticket.wait(wait_s):
            self._dispatcher.park(ticket)  # the next owner resumes them from the state topic
        self._seal(batch, ticket)
        self._commit(batch)

    def _drain_left_s(self) -> float:
        if not self._stopping.is_set():
            return self._settings.drain_timeout_s
        return max(0.0, self._drain_deadline - time.monotonic())

    def _restore_state(self) -> None:
        stored = state_store.load(self._client, self._kafka.state_topic)
        self._carry.extend(self._tracker.restore(stored.incidents, self.partitions))
        parked = [
            (p.receiver, p.alert)
            for p in stored.parked.values()
            if (p.alert.partition or 0) in self.partitions
        ]
        self._dispatcher.resume(parked)
        if 0 in self.partitions:  # one replica deals with records that do not parse
            self._bad_state = list(stored.bad.values())
        logger.info(
            "partition(s) %s: %d open incident(s), %d parked deliveries resumed",
            sorted(self.partitions),
            len(self._tracker.firing()),
            len(parked),
        )

    def _close(self) -> None:
        logger.info("alert runner stopping")
        try:
            self._consumer.close()
        finally:
            self._dispatcher.stop()
            self._checkpointer.close()
