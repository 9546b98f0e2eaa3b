"""Micro-batching windows into the engine, oldest first, with a bound on what is in flight.

::

    submit(w) ─► heap by (ready time, order) ─► batch ─► prepare x n ─► generate x n ─► on_done
                                                       │              (once all n are prepared)
     first window opens a batch ──┬── max_batch windows taken   ─┐
                                  └── max_wait_ms passed         ─┴─► launch; ≤ max_inflight
                                                                     windows inside the engine

A launched batch is first *prepared* window by window (mel features and prompt, in vLLM's
renderer threads), and only when every window of it is prepared (or rejected) are its requests
handed to the engine core, in one go. The engine core then schedules the batch's audio encoder
and prefill in a few large steps instead of one small step per window as each one finishes
preprocessing: +8.7 % windows/s on an H200 (``docs/benchmarks.md``).

The oldest ready window always goes first, whatever its stream, so no stream starves. A window
that waited longer than ``max_lag_s`` is shed (policy ``skip``: every stale window; ``widen``:
stale windows of odd index) and reported as an outcome with ``shed`` set, never silently. A failed
request is retried ``request_retries`` times, then its outcome carries the error; an input the
engine rejects is not retried. A dead engine ends ``run`` with ``EngineDeadError``; windows still
queued or in flight are then *not* reported: they were never acknowledged, so the analyzer does
not commit past them and they are captioned again after the restart.

Runs on one asyncio loop (the engine thread's; see ``stream/engine/worker.py``): every method
must be called from that loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from earwitness import failpoints
from earwitness.errors import BadInputError, EngineDeadError, TransientError
from stream.engine.engine import CaptionResult, PreparedWindow
from stream.engine.settings import BatchSettings, ShedPolicy
from windowing.window import Window

logger = logging.getLogger(__name__)

RECENT_BATCHES = 4096


class Captioner(Protocol):
    """What the batcher needs of an engine (``stream.engine.CaptionEngine``)."""

    def prepare(self, samples: np.ndarray, request_id: str) -> Awaitable[PreparedWindow]: ...

    def generate(self, prepared: PreparedWindow) -> Awaitable[CaptionResult]: ...

    def caption(self, samples: np.ndarray, request_id: str) -> Awaitable[CaptionResult]: ...


class _Gate:
    """Opens when every window of one batch has been prepared (or failed to be)."""

    def __init__(self, windows: int) -> None:
        self._left = windows
        self._open = asyncio.Event()
        if windows <= 0:
            self._open.set()

    def arrive(self) -> None:
        self._left -= 1
        if self._left <= 0:
            self._open.set()

    async def opened(self) -> None:
        await self._open.wait()


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
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.on_done = on_done
        self.request_id = request_id
        self._heap: list[_Queued] = []
        self._order = itertools.count()
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.max_inflight)
        self._tasks: set[asyncio.Task[None]] = set()
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
        """Queue a window; ``ready_ns`` (default now) orders it among all streams' windows."""
        ready = time.monotonic_ns() if ready_ns is None else ready_ns
        heapq.heappush(self._heap, _Queued(ready, next(self._order), window))
        self._arrived.set()

    async def run(self) -> None:
        """Form and launch batches until cancelled or the engine dies."""
        while self._dead is None:
            batch = await self._next_batch()
            if self._dead is None:
                self._launch(batch)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        raise self._dead

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
        self._shed_stale()
        if not self._heap and self._dead is None:
            self._slots.release()
            return []
        if self._dead is not None:
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

    def _shed_stale(self) -> None:
        """Report windows queued longer than max_lag_s as shed (see the module docstring)."""
        now_ns = time.monotonic_ns()
        limit_ns = now_ns - int(self.settings.max_lag_s * 1e9)
        kept: list[_Queued] = []
        while self._heap and self._heap[0].ready_ns < limit_ns:
            item = heapq.heappop(self._heap)
            if self.settings.shed is ShedPolicy.WIDEN and item.window.index % 2 == 0:
                kept.append(item)
                continue
            waited_s = (now_ns - item.ready_ns) / 1e9
            why = f"queued {waited_s:.1f} s > max_lag_s {self.settings.max_lag_s:g} s"
            self.on_done(Outcome(item.window, None, None, 0, 0, waited_s * 1000, shed=why))
        for item in kept:
            heapq.heappush(self._heap, item)

    def _launch(self, batch: list[_Queued]) -> None:
        if not batch:
            return
        self.batches += 1
        self.batch_sizes.append(len(batch))
        failpoints.hit("batch.launched")
        now_ns = time.monotonic_ns()
        gate = _Gate(len(batch))
        for item in batch:
            queued_ms = (now_ns - item.ready_ns) / 1e6
            task = asyncio.create_task(
                self._caption(item.window, gate, len(batch), queued_ms),
                name=f"caption:{self.request_id(item.window)}",
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _caption(
        self, window: Window, gate: _Gate, batch_size: int, queued_ms: float
    ) -> None:
        try:
            result, error, attempts = await self._with_retries(window, gate)
        except EngineDeadError as exc:
            self._dead = self._dead or exc
            self._arrived.set()  # wake run() so it stops forming batches
            return
        finally:
            self._slots.release()
        self.on_done(Outcome(window, result, error, attempts, batch_size, queued_ms))

    async def _with_retries(
        self, window: Window, gate: _Gate
    ) -> tuple[CaptionResult | None, str | None, int]:
        """Prepare, wait for the rest of the batch, generate; retry a failure in full."""
        request_id = self.request_id(window)
        prepared: PreparedWindow | None = None
        try:
            prepared = await self.engine.prepare(window.samples, request_id)
        except BadInputError as exc:
            return None, f"rejected: {exc}", 1
        except TransientError as exc:
            logger.warning("preparing %s failed: %s", request_id, exc)
        finally:
            gate.arrive()
        await gate.opened()
        attempts, error = 0, ""
        while attempts <= self.settings.request_retries:
            attempts += 1
            try:
                if prepared is not None:
                    first, prepared = prepared, None
                    return await self.engine.generate(first), None, attempts
                return await self.engine.caption(window.samples, request_id), None, attempts
            except BadInputError as exc:
                return None, f"rejected: {exc}", attempts
            except TransientError as exc:
                error = str(exc)
                logger.warning("caption %s failed (attempt %d): %s", request_id, attempts, exc)
        return None, f"failed after {attempts} attempts: {error}", attempts
