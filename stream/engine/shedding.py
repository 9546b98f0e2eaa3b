"""Freshness: which queued windows the batcher sheds rather than captions, and why.

A window's *age* is the time since its end, its stream time (ew-ts, the capture wall clock)
against this machine's wall clock. Two rules, applied to the queue whenever a batch is formed
and on a sweep every second (so a stuck engine still sheds); a window already stale when it
is submitted (cut from a Kafka backlog) is shed at once, never queued::

    stale     age > max_lag_s                       → shed "stale" (policy widen: odd index only)
    overload  age of the newest queued window
              + queued / throughput > max_lag_s      → shed quiet windows (activity below
                                                       quiet_activity_db), oldest first, until
                                                       the queue can be served in time

``throughput`` is the engine's recent rate of finished windows while it had work
(:class:`Throughput`). Active
windows are never shed for overload: if even they cannot all be served, the oldest of them go
stale first (older before newer). When the engine catches up, nothing is shed any more: full
captioning resumes by itself. Every shed window still gets its event (kind ``shed``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from stream.engine.settings import BatchSettings, ShedPolicy
from windowing.window import Window

THROUGHPUT_HORIZON_S = 30.0
"""How far back the engine's rate of finished windows is measured."""


class Throughput:
    """The engine's capacity: windows finished per second of *busy* time (some window in the
    engine) over the last :data:`THROUGHPUT_HORIZON_S`, so a quiet hour does not read as a slow
    engine. Monotonic clock; used on the engine thread only."""

    def __init__(self, clock_s: Callable[[], float] = time.monotonic) -> None:
        self._clock_s = clock_s
        self._done: deque[float] = deque()
        self._busy: deque[list[float]] = deque()
        """[start, end] of busy spans; the open one ends at +inf."""

    def busy(self, now_busy: bool) -> None:
        """The engine went from idle to busy (True) or back (False)."""
        now = self._clock_s()
        open_span = bool(self._busy) and self._busy[-1][1] == float("inf")
        if now_busy and not open_span:
            self._busy.append([now, float("inf")])
        elif not now_busy and open_span:
            self._busy[-1][1] = now

    def record(self) -> None:
        self._done.append(self._clock_s())

    def rate(self) -> float | None:
        """Windows/s while busy, or None with under 5 s of busy time to tell from."""
        now = self._clock_s()
        start = now - THROUGHPUT_HORIZON_S
        while self._done and self._done[0] < start:
            self._done.popleft()
        while self._busy and self._busy[0][1] < start:
            self._busy.popleft()
        busy_s = sum(min(end, now) - max(begin, start) for begin, end in self._busy)
        if busy_s < 5.0:
            return None
        return len(self._done) / busy_s


@dataclass(frozen=True)
class Shed:
    """A queued window the policy drops, and the reason its event carries."""

    window: Window
    reason: str


class Freshness:
    """The shedding policy of the module docstring; pure but for the clocks."""

    def __init__(
        self, settings: BatchSettings, wall_clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.settings = settings
        self.wall_clock_ns = wall_clock_ns

    def age_s(self, window: Window, now_ns: int | None = None) -> float:
        now = self.wall_clock_ns() if now_ns is None else now_ns
        return max(0.0, (now - window.end_ns) / 1e9)

    def stale(self, window: Window, now_ns: int | None = None) -> str | None:
        """Why ``window`` is too old to caption (the stale rule), or None."""
        age, limit = self.age_s(window, now_ns), self.settings.max_lag_s
        if age <= limit or (self.settings.shed is ShedPolicy.WIDEN and window.index % 2 == 0):
            return None
        return f"stale: {age:.1f} s old > max_lag_s {limit:g} s"

    def plan(self, queued: Iterable[Window], rate: float | None) -> list[Shed]:
        """What to shed from ``queued`` (oldest first) now; the rest stays queued."""
        now_ns = self.wall_clock_ns()
        shed: list[Shed] = []
        kept: list[Window] = []
        for window in sorted(queued, key=lambda w: w.end_ns):
            reason = self.stale(window, now_ns)
            if reason is not None:
                shed.append(Shed(window, reason))
            else:
                kept.append(window)
        return shed + self._overload(kept, rate, now_ns)

    def _overload(self, kept: list[Window], rate: float | None, now_ns: int) -> list[Shed]:
        """Quiet windows to shed so that the rest can be served before they go stale."""
        if not kept or not rate:
            return []
        newest_age = self.age_s(kept[-1], now_ns)
        budget = int(rate * max(0.0, self.settings.max_lag_s - newest_age))
        excess = len(kept) - budget
        if excess <= 0:
            return []
        quiet = [w for w in kept if w.activity_db < self.settings.quiet_activity_db]
        reason = f"overload: {len(kept)} queued, {rate:.1f} windows/s, quiet first"
        return [Shed(window, reason) for window in quiet[:excess]]
