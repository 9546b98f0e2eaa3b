"""Delivery: one thread per receiver, retries with backoff and jitter, then dead-letter.

Threads and owners::

    runner (poll loop thread)
      └── Dispatcher
            └── ReceiverWorker, thread "ew-deliver-<name>", one per receiver
                  └── its Sender (socket, HTTP client, file, producer)

The runner hands a batch of (alert, receiver) jobs to :meth:`Dispatcher.dispatch` and gets a
:class:`~sinks.jobs.Ticket`; each worker delivers its jobs in order and marks them done on the
ticket, either delivered or dead-lettered (with the reason). The runner commits the batch's
offsets once the ticket is complete, or after parking what a receiver did not take in
``park_after_s`` (:mod:`sinks.jobs`: parked jobs are committed to the state topic and retried
by their receiver's thread alone). ``stop()`` interrupts backoff sleeps; a job abandoned that
way is redelivered after a restart (from its captions, or from its parked record).

Backoff before attempt ``n + 1``: uniform in ``[0, min(backoff_max_s, backoff_initial_s·2ⁿ⁻¹)]``
("full jitter"), at least the receiver's ``Retry-After`` when it sent one.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

from sinks.alerts import Alert
from sinks.errors import DeliveryFailed, DeliveryRejected
from sinks.jobs import DeadLetter, Job, Ticket
from sinks.metrics import AlertMetrics
from sinks.receivers import Receiver, RetryPolicy
from sinks.rules import RuleSet
from sinks.senders import Sender

logger = logging.getLogger(__name__)


def backoff_s(policy: RetryPolicy, attempt: int, rng: random.Random, hint_s: float | None) -> float:
    """Delay after failed attempt ``attempt`` (1-based)."""
    cap = min(policy.backoff_max_s, policy.backoff_initial_s * 2 ** (attempt - 1))
    delay = rng.uniform(0, cap)
    return max(delay, min(hint_s, policy.backoff_max_s)) if hint_s else delay


class ReceiverWorker:
    """Delivers one receiver's jobs in order on its own thread. Owned by the Dispatcher."""

    def __init__(
        self, name: str, sender: Sender, policy: RetryPolicy, metrics: AlertMetrics
    ) -> None:
        self.name = name
        self._sender = sender
        self._policy = policy
        self._metrics = metrics
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._rng = random.Random()
        self._thread = threading.Thread(target=self._run, name=f"ew-deliver-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Abandon queued jobs, interrupt backoff, close the sender."""
        self._stopping.set()
        self._jobs.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.warning("delivery thread %s still busy after %.1fs", self.name, timeout_s)

    def alive(self) -> bool:
        """False once the thread has ended (it only ends on ``stop()``)."""
        return self._thread.is_alive() or not self._thread.ident

    def _run(self) -> None:
        try:
            while (job := self._jobs.get()) is not None and not self._stopping.is_set():
                self._deliver(job)
        finally:
            self._sender.close()

    def _deliver(self, job: Job) -> None:
        for attempt in range(1, self._policy.max_attempts + 1):
            failure = self._attempt(job)
            if failure is None:
                self._metrics.deliveries.labels(self.name, "ok").inc()
                self._metrics.latency.labels(self.name).observe(time.monotonic() - job.handed_at)
                job.ticket.finish(job)
                return
            if isinstance(failure, DeliveryRejected):
                self._dead_letter(job, failure.reason, failure.detail, attempt)
                return
            if not self._after_failure(job, failure, attempt):
                return

    def _attempt(self, job: Job) -> DeliveryFailed | DeliveryRejected | None:
        """One send; every error becomes a failure, so this thread never dies of one.

        A sender translates its foreign errors; anything it missed (a library's surprise, a
        bug) counts as a retryable ``unexpected`` failure, logged by type only (its message
        may hold the URL), and ends as a retry or a dead letter like any other.
        """
        try:
            self._sender.send(job.alert)
        except (DeliveryRejected, DeliveryFailed) as exc:
            return exc
        except Exception as exc:  # see the docstring
            logger.error(
                "receiver %s: unexpected %s from its sender", self.name, type(exc).__name__
            )
            return DeliveryFailed("unexpected", type(exc).__name__)
        return None

    def _after_failure(self, job: Job, exc: DeliveryFailed, attempt: int) -> bool:
        """Count, then back off; False when the job is finished (dead) or abandoned (stop)."""
        self._metrics.deliveries.labels(self.name, "failed").inc()
        if attempt >= self._policy.max_attempts:
            self._dead_letter(job, exc.reason, exc.detail, attempt)
            return False
        delay_s = backoff_s(self._policy, attempt, self._rng, exc.retry_after_s)
        logger.info(
            "receiver %s: attempt %d for %s failed (%s); retrying in %.2fs",
            self.name,
            attempt,
            job.alert.idempotency_key,
            exc.reason,
            delay_s,
        )
        if self._stopping.wait(delay_s):
            return False
        self._metrics.deliveries.labels(self.name, "retried").inc()
        return True

    def _dead_letter(self, job: Job, reason: str, detail: str, attempts: int) -> None:
        logger.warning(
            "receiver %s: dead-lettering %s after %d attempt(s): %s",
            self.name,
            job.alert.idempotency_key,
            attempts,
            reason,
        )
        self._metrics.deliveries.labels(self.name, "dead_lettered").inc()
        job.ticket.finish(job, DeadLetter(job.alert, self.name, reason, detail, attempts))


class Dispatcher:
    """Routes alerts to receivers and owns one :class:`ReceiverWorker` per receiver.

    It also keeps the parked jobs (:mod:`sinks.jobs`) still outstanding per receiver: while a
    receiver has any, its new jobs are parked at once (the batch does not wait for a receiver
    known to be down), and it hands the ones that settled to the poll loop (``take_settled``).
    """

    def __init__(
        self,
        receivers: dict[str, Receiver],
        senders: dict[str, Sender],
        rules: RuleSet,
        metrics: AlertMetrics,
    ) -> None:
        self._receivers = receivers
        self._rules = rules
        self._metrics = metrics
        self._workers = {
            name: ReceiverWorker(name, senders[name], receivers[name].retry, metrics)
            for name in receivers
        }
        self._lock = threading.Lock()  # guards _outstanding (poll loop and delivery threads)
        # idempotency keys of parked jobs not finished yet (a re-send repeats a key)
        self._outstanding: dict[str, Counter[str]] = {name: Counter() for name in receivers}
        self._settled: queue.SimpleQueue[tuple[Job, DeadLetter | None]] = queue.SimpleQueue()

    def start(self) -> None:
        for worker in self._workers.values():
            worker.start()

    def route(self, alert: Alert) -> list[str]:
        """Receivers for an alert: the rule's list (or all), at or above their min severity."""
        rule = self._rules.by_id.get(alert.rule_id)
        names = rule.receivers if rule is not None and rule.receivers else self._receivers
        rank = alert.severity.rank
        return [n for n in names if rank >= self._receivers[n].min_severity.rank]

    def dispatch(self, jobs: list[tuple[Alert, str]]) -> Ticket:
        ticket = Ticket(self._settle)
        for alert, name in jobs:
            job = Job(alert, name, ticket)
            with self._lock:
                degraded = bool(self._outstanding[name])
                ticket.add(job, parked=degraded)
                if degraded:
                    self._hold(job)
            self._workers[name].submit(job)
        return ticket

    def park(self, ticket: Ticket) -> list[Job]:
        """Park the ticket's unfinished jobs; returns every parked job of the ticket."""
        with self._lock:
            for job in ticket.park():
                self._hold(job)
        for name in {job.receiver for job in ticket.parked}:
            logger.warning(
                "receiver %s: deliveries parked (%d outstanding); other receivers go on",
                name,
                self._outstanding[name].total(),
            )
        return ticket.parked

    def resume(self, parked: Iterable[tuple[str, Alert]]) -> None:
        """Deliveries parked before a restart or rebalance; those already queued are skipped,
        those of a receiver no longer configured settle at once as dead letters."""
        ticket = Ticket(self._settle)
        for name, alert in parked:
            job = Job(alert, name, ticket)
            with self._lock:
                if name in self._outstanding and alert.idempotency_key in self._outstanding[name]:
                    continue
                ticket.add(job, parked=True)
                if name not in self._workers:
                    letter = DeadLetter(alert, name, "receiver_removed", "not configured", 0)
                    self._settled.put((job, letter))
                    continue
                self._hold(job)
            self._workers[name].submit(job)

    def degraded(self, name: str) -> bool:
        """The receiver has parked jobs outstanding (it was down not long ago, or still is)."""
        with self._lock:
            return bool(self._outstanding[name])

    def take_settled(self) -> list[tuple[Job, DeadLetter | None]]:
        """Parked jobs finished since the last call (poll loop)."""
        settled = []
        while True:
            try:
                settled.append(self._settled.get_nowait())
            except queue.Empty:
                return settled

    def alive(self) -> bool:
        """Every delivery thread is running (health turns 503 otherwise)."""
        return all(worker.alive() for worker in self._workers.values())

    def stop(self, timeout_s: float = 5.0) -> None:
        for worker in self._workers.values():
            worker.stop(timeout_s)

    def _hold(self, job: Job) -> None:
        """Count a parked job as outstanding. Caller holds ``_lock``."""
        held = self._outstanding[job.receiver]
        held[job.alert.idempotency_key] += 1
        self._metrics.parked.labels(job.receiver).set(held.total())

    def _settle(self, job: Job, dead_letter: DeadLetter | None) -> None:
        """A parked job finished (delivery thread)."""
        with self._lock:
            held = self._outstanding[job.receiver]
            held[job.alert.idempotency_key] -= 1
            if held[job.alert.idempotency_key] <= 0:
                del held[job.alert.idempotency_key]
            self._metrics.parked.labels(job.receiver).set(held.total())
        self._settled.put((job, dead_letter))


class Resender:
    """Which firing alerts are due for a periodic re-send (e.g. Alertmanager). Poll-loop only.

    The first firing send starts the clock; nothing is persisted, so after a restart each open
    incident is re-sent one interval after the runner first sees it.
    """

    def __init__(self, receivers: dict[str, Receiver]) -> None:
        self._every_s = {n: r.resend_every_s for n, r in receivers.items() if r.resend_every_s}
        self._last_s: dict[tuple[str, str], float] = {}

    def due(
        self, firing: list[Alert], route: Callable[[Alert], list[str]], now_s: float
    ) -> list[tuple[Alert, str]]:
        """Jobs for firing alerts whose receivers' interval has passed; forgets closed ones."""
        jobs = []
        alive = set()
        for alert in firing:
            for name in route(alert):
                if name not in self._every_s:
                    continue
                key = (alert.alert_id, name)
                alive.add(key)
                last_s = self._last_s.setdefault(key, now_s)
                if now_s - last_s >= self._every_s[name]:
                    self._last_s[key] = now_s
                    jobs.append((alert, name))
        self._last_s = {k: v for k, v in self._last_s.items() if k in alive}
        return jobs
