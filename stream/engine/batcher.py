"""Micro-batching windows into the engine, oldest first, with a bound on what is in flight.

::

    submit(w) ─► heap by (ready time, order) ─► batch ─► prepare x n ─► generate x n ─► on_done
                 │                                     │              (once all n are prepared)
                 └─ freshness (shedding.py): stale or  │
                    overload-quiet windows → shed      │
     first window opens a batch ──┬── max_batch windows taken   ─┐
                                  └── max_wait_ms passed         ─┴─► launch; ≤ max_inflight
                                                                     windows inside the engine

A launched batch is first *prepared* window by window (mel features and prompt, in vLLM's
renderer threads), and only when every window of it is prepared (or rejected) are its requests
handed to the engine core, in one go (``requests.py``). The engine core then schedules the
batch's audio encoder and prefill in a few large steps instead of one small step per window as
each one finishes preprocessing: +8.7 % windows/s on an H200 (``docs/benchmarks.md``).

The oldest ready window always goes first, whatever its stream, so no stream starves. Windows
that would reach the engine too late are shed by the freshness policy (``shedding.py``) when a
batch is formed and on a sweep every second, slots or not, and reported as an outcome with
``shed`` set, never silently. A failed or timed-out request is retried ``request_retries``
times, then its outcome carries the error; an input the engine rejects is not retried.
:meth:`MicroBatcher.cancel` drops windows the analyzer no longer wants (a revoked partition, an
aborted transaction): queued ones leave the queue, in-flight ones are aborted, and each is
reported ``cancelled``. A dead engine ends ``run`` with ``EngineDeadError`` (a request that fails
with it, or the sweep finding the engine not alive while idle); windows still
queued or in flight are then *not* reported: they were never acknowledged, so the analyzer does
not commit past them and they are captioned again after the restart.

Runs on one asyncio loop (the engine thread's; see ``stream/engine/worker.py``): every method
must be called from that loop. Tasks: ``micro-batcher`` (``run``), ``shed-sweep``, and one
``caption:<request id>`` per window in flight, all owned here.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from earwitness import failpoints
from earwitness.errors import EngineDeadError
from stream.engine.engine import CaptionResult
from stream.engine.requests import Captioner, Gate, caption_window
from stream.engine.settings import BatchSettings
from stream.engine.shedding import Freshness, Throughput
from windowing.window import Window

logger = logging.getLogger(__name__)

RECENT_BATCHES = 4096
SWEEP_INTERVAL_S = 1.0
WindowKey = tuple[str, int, int]


@dataclass(frozen=True)
class Outcome:
    """What became of one window in the engine."""

    window: Window
    result: CaptionResult | None
    error: str | None
    attempts: int
    batch_size: int
    queued_ms: float
    """Time from ``submit`` to the batch that took it (or to being shed)."""
    shed: str | None = None
    """Why load shedding dropped the window (then it never reached the engine)."""
    cancelled: bool = False
    """The analyzer cancelled it (:meth:`MicroBatcher.cancel`); nothing to publish."""


@dataclass(order=True)
class _Queued:
    ready_ns: int
    order: int
    window: Window = field(compare=False)


class MicroBatcher:
    """Owns the queue of ready windows and the tasks of the windows in flight."""

    def __init__(
        self,
        engine: Captioner,
        settings: BatchSettings,
        on_done: Callable[[Outcome], None],
        request_id: Callable[[Window], str],
        *,
        request_timeout_s: float = 300.0,
        freshness: Freshness | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.on_done = on_done
        self.request_id = request_id
        self.request_timeout_s = request_timeout_s
        self.freshness = freshness or Freshness(settings)
        self.throughput = Throughput()
        self._heap: list[_Queued] = []
        self._order = itertools.count()
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.max_inflight)
        self._tasks: dict[asyncio.Task[None], Window] = {}
        self._dead: EngineDeadError | None = None
        self.batches = 0
        """Batches launched so far."""
        self.batch_sizes: deque[int] = deque(maxlen=RECENT_BATCHES)
        """Sizes of the last :data:`RECENT_BATCHES` batches (benchmarks, tests)."""

    @property
    def queued(self) -> int:
        return len(self._heap)

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    def submit(self, window: Window, ready_ns: int | None = None) -> None:
        """Queue a window; ``ready_ns`` (default now) orders it among all streams' windows.

        A window already stale (cut from a backlog) is shed at once: queued, it would hold a
        place under the pause threshold until the next sweep, and a backlog would drain at
        only that many windows a second."""
        stale = self.freshness.stale(window)
        if stale is not None:
            self.on_done(Outcome(window, None, None, 0, 0, 0.0, shed=stale))
            return
        ready = time.monotonic_ns() if ready_ns is None else ready_ns
        heapq.heappush(self._heap, _Queued(ready, next(self._order), window))
        self._arrived.set()

    async def run(self) -> None:
        """Form and launch batches until cancelled or the engine dies."""
        sweep = asyncio.create_task(self._sweep(), name="shed-sweep")
        try:
            while self._dead is None:
                batch = await self._next_batch()
                if self._dead is None:
                    self._launch(batch)
        finally:
            sweep.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        raise self._dead

    def cancel(self, keys: Iterable[WindowKey]) -> int:
        """Drop the windows ``keys`` name, queued or in flight; each is reported cancelled."""
        wanted = set(keys)
        dropped = [item.window for item in self._heap if item.window.key in wanted]
        if dropped:
            self._heap = [item for item in self._heap if item.window.key not in wanted]
            heapq.heapify(self._heap)
        for task, window in list(self._tasks.items()):
            if window.key in wanted and task.cancel():
                dropped.append(window)
        for window in dropped:
            self.on_done(Outcome(window, None, None, 0, 0, 0.0, cancelled=True))
        return len(dropped)

    async def drain(self) -> None:
        """Wait until nothing is queued or in flight (shutdown with ``finish``)."""
        while (self._heap or self._tasks) and self._dead is None:
            await asyncio.sleep(0.01)

    async def abandon(self) -> list[Window]:
        """Cancel what is in flight and empty the queue; return the windows abandoned."""
        abandoned = [item.window for item in self._heap]
        self._heap.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return abandoned

    async def _next_batch(self) -> list[_Queued]:
        """Block for the first window and a free slot, then fill to max_batch or the deadline."""
        await self._first_window()
        await self._slots.acquire()
        self._shed()
        if not self._heap or self._dead is not None:
            self._slots.release()
            return []
        batch = [heapq.heappop(self._heap)]
        deadline = time.monotonic() + self.settings.max_wait_ms / 1000
        while len(batch) < self.settings.max_batch and self._dead is None:
            if not self._heap:
                if not await self._wait_arrival(deadline):
                    break
                continue
            if not await self._acquire_before(deadline):
                break
            batch.append(heapq.heappop(self._heap))
        return batch

    async def _first_window(self) -> None:
        while not self._heap and self._dead is None:
            self._arrived.clear()
            await self._arrived.wait()

    async def _wait_arrival(self, deadline: float) -> bool:
        self._arrived.clear()
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            return False
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _acquire_before(self, deadline: float) -> bool:
        if not self._slots.locked():
            await self._slots.acquire()
            return True
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            return False
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except TimeoutError:
            return False
        return True

    async def _sweep(self) -> None:
        """Shed on a timer too: with every slot busy (a slow or stuck engine) nothing else does.
        And look at the engine: one that dies while idle has no request to fail with."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            if not self.engine.is_alive:
                self._dead = self._dead or EngineDeadError("the engine core died")
                self._arrived.set()  # wake run() so it stops forming batches
                return
            self._shed()

    def _shed(self) -> None:
        """Report what the freshness policy drops from the queue (see shedding.py)."""
        if not self._heap:
            return
        plan = self.freshness.plan((item.window for item in self._heap), self.throughput.rate())
        if not plan:
            return
        gone = {shed.window.key: shed.reason for shed in plan}
        now_ns = time.monotonic_ns()
        kept: list[_Queued] = []
        for item in self._heap:
            reason = gone.get(item.window.key)
            if reason is None:
                kept.append(item)
                continue
            queued_ms = (now_ns - item.ready_ns) / 1e6
            self.on_done(Outcome(item.window, None, None, 0, 0, queued_ms, shed=reason))
        heapq.heapify(kept)
        self._heap = kept

    def _launch(self, batch: list[_Queued]) -> None:
        if not batch:
            return
        self.batches += 1
        self.batch_sizes.append(len(batch))
        failpoints.hit("batch.launched")
        now_ns = time.monotonic_ns()
        gate = Gate(len(batch))
        for item in batch:
            queued_ms = (now_ns - item.ready_ns) / 1e6
            task = asyncio.create_task(
                self._caption(item.window, gate, len(batch), queued_ms),
                name=f"caption:{self.request_id(item.window)}",
            )
            self._tasks[task] = item.window
            task.add_done_callback(self._forget_task)
        self.throughput.busy(True)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        if not self._tasks:
            self.throughput.busy(False)

    async def _caption(self, window: Window, gate: Gate, batch_size: int, queued_ms: float) -> None:
        try:
            result, error, attempts = await caption_window(
                self.engine,
                window.samples,
                self.request_id(window),
                gate,
                retries=self.settings.request_retries,
                timeout_s=self.request_timeout_s,
            )
        except EngineDeadError as exc:
            self._dead = self._dead or exc
            self._arrived.set()  # wake run() so it stops forming batches
            return
        finally:
            self._slots.release()
        self.throughput.record()
        self.on_done(Outcome(window, result, error, attempts, batch_size, queued_ms))
