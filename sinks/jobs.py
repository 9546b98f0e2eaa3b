"""Jobs and tickets: the bookkeeping between the runner's poll loop and the delivery threads.

A batch's (alert, receiver) jobs share one :class:`Ticket`. The runner commits the batch once
the ticket is complete: every job delivered or dead-lettered, **or parked**. A job still
undelivered ``park_after_s`` after hand-off is parked: the batch commits it to the state topic
as a pending delivery (:func:`sinks.state.parked_record`) and goes on, while the receiver's
own thread keeps trying. A parked job that finishes later is *settled*: the ticket hands it to
``on_settled`` instead of counting it, and the next checkpoint deletes its record (and
writes its dead letter, if it died). So one receiver's outage delays the others by at most
``park_after_s``, once, and nothing is lost: after a crash the records are read back and the
deliveries resumed (receivers see duplicates with the same idempotency key).

::

    dispatch ──► job ──► receiver queue ──► delivered / dead ──► ticket counts it down
                  │                                     (parked) └─► on_settled ─► tombstone
                  └── park_after_s passed, or the receiver already has parked jobs:
                      parked ──► record in the state topic, with the batch's offsets

Thread safety: a ticket's condition guards its counters and its jobs' ``done``/``parked``
flags; delivery threads call :meth:`Ticket.finish`, the poll loop everything else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sinks.alerts import Alert


@dataclass(frozen=True)
class DeadLetter:
    """An alert a receiver did not take, and why."""

    alert: Alert
    receiver: str
    reason: str
    detail: str
    attempts: int


@dataclass(eq=False)
class Job:
    """One alert for one receiver. ``done`` and ``parked`` are guarded by the ticket."""

    alert: Alert
    receiver: str
    ticket: Ticket
    handed_at: float = field(default_factory=time.monotonic)
    done: bool = False
    parked: bool = False


Settle = Callable[[Job, DeadLetter | None], None]


class Ticket:
    """Counts down the jobs of one batch; collects their dead letters and parked jobs."""

    def __init__(self, on_settled: Settle | None = None) -> None:
        self._jobs: list[Job] = []
        self._remaining = 0
        self._done = threading.Condition()
        self._on_settled = on_settled
        self.dead_letters: list[DeadLetter] = []
        self.parked: list[Job] = []

    def add(self, job: Job, *, parked: bool = False) -> None:
        """A job of this ticket (before it is submitted); ``parked``: never waited for."""
        with self._done:
            self._jobs.append(job)
            job.parked = parked
            if parked:
                self.parked.append(job)
            else:
                self._remaining += 1

    def finish(self, job: Job, dead_letter: DeadLetter | None = None) -> None:
        """Called by the delivery thread: the job is delivered (or dead, ``dead_letter``)."""
        with self._done:
            job.done = True
            if not job.parked:
                if dead_letter is not None:
                    self.dead_letters.append(dead_letter)
                self._remaining -= 1
                self._done.notify_all()
                return
        if self._on_settled is not None:
            self._on_settled(job, dead_letter)

    def park(self) -> list[Job]:
        """Park every unfinished job (the ticket is complete after this); returns those."""
        with self._done:
            newly = [job for job in self._jobs if not job.done and not job.parked]
            for job in newly:
                job.parked = True
            self.parked.extend(newly)
            self._remaining -= len(newly)
            self._done.notify_all()
        return newly

    def wait(self, timeout_s: float) -> bool:
        """True once every job is delivered, dead-lettered or parked."""
        with self._done:
            return self._done.wait_for(lambda: self._remaining <= 0, timeout_s)
