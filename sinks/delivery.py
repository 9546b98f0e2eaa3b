"""Delivery: one thread per receiver, retries with backoff and jitter, then dead-letter.

Threads and owners::

    runner (poll loop thread)
      └── Dispatcher
            └── ReceiverWorker, thread "ew-deliver-<name>", one per receiver
                  └── its Sender (socket, HTTP client, file, producer)

The runner hands a batch of (alert, receiver) jobs to :meth:`Dispatcher.dispatch` and gets a
:class:`Ticket`; each worker delivers its jobs in order and marks them done on the ticket,
either delivered or dead-lettered (with the reason). The runner commits the batch's offsets
only once the ticket is complete. ``stop()`` interrupts backoff sleeps; a job abandoned that
way never completes its ticket, so its captions are redelivered after a restart.

Backoff before attempt ``n + 1``: uniform in ``[0, min(backoff_max_s, backoff_initial_s·2ⁿ⁻¹)]``
("full jitter"), at least the receiver's ``Retry-After`` when it sent one.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sinks.alerts import Alert
from sinks.config import Receiver, RetryPolicy
from sinks.errors import DeliveryFailed, DeliveryRejected
from sinks.metrics import AlertMetrics
from sinks.rules import RuleSet
from sinks.senders import Sender

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    """An alert a receiver did not take, and why."""

    alert: Alert
    receiver: str
    reason: str
    detail: str
    attempts: int


class Ticket:
    """Counts down the jobs of one batch; collects their dead letters. Thread-safe."""

    def __init__(self, jobs: int) -> None:
        self._remaining = jobs
        self._done = threading.Condition()
        self.dead_letters: list[DeadLetter] = []

    def finish(self, dead_letter: DeadLetter | None = None) -> None:
        with self._done:
            if dead_letter is not None:
                self.dead_letters.append(dead_letter)
            self._remaining -= 1
            self._done.notify_all()

    def wait(self, timeout_s: float) -> bool:
        """True once every job is delivered or dead-lettered."""
        with self._done:
            return self._done.wait_for(lambda: self._remaining <= 0, timeout_s)


@dataclass(frozen=True)
class Job:
    alert: Alert
    ticket: Ticket
    handed_at: float = field(default_factory=time.monotonic)


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
                job.ticket.finish()
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
        job.ticket.finish(DeadLetter(job.alert, self.name, reason, detail, attempts))


class Dispatcher:
    """Routes alerts to receivers and owns one :class:`ReceiverWorker` per receiver."""

    def __init__(
        self,
        receivers: dict[str, Receiver],
        senders: dict[str, Sender],
        rules: RuleSet,
        metrics: AlertMetrics,
    ) -> None:
        self._receivers = receivers
        self._rules = rules
        self._workers = {
            name: ReceiverWorker(name, senders[name], receivers[name].retry, metrics)
            for name in receivers
        }

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
        ticket = Ticket(len(jobs))
        for alert, name in jobs:
            self._workers[name].submit(Job(alert, ticket))
        return ticket

    def alive(self) -> bool:
        """Every delivery thread is running (health turns 503 otherwise)."""
        return all(worker.alive() for worker in self._workers.values())

    def stop(self, timeout_s: float = 5.0) -> None:
        for worker in self._workers.values():
            worker.stop(timeout_s)


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
