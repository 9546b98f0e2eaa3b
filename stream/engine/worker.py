"""The engine thread: one asyncio loop that owns the caption engine and the micro-batcher.

Threads and processes, and who owns them::

    poll thread (Analyzer.run)        engine thread "ew-engine-loop" (EngineWorker)
      submit(window) ──call_soon_threadsafe──► MicroBatcher ──► EnginePool
      take_outcomes() ◄──── SimpleQueue ◄───── on_done(outcome)   └─► CaptionEngine x replicas
                                                                       (vLLM AsyncLLM each)
                                                                       └─► engine-core process

``EngineWorker.start`` blocks until the engine is warm (or raises, or ``interrupted`` says
stop), ``stop`` finishes or abandons what is in flight and shuts the engine down, so no engine
process outlives it. Only ``submit``, ``cancel``, ``take_outcomes``, ``pending``, ``dead`` and
``stalled_s`` may be called from the poll thread.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable

from earwitness.errors import EngineDeadError, FatalError
from stream.engine.batcher import MicroBatcher, Outcome
from stream.engine.pool import EnginePool
from stream.engine.settings import BatchSettings, EngineSettings
from windowing.window import Window

logger = logging.getLogger(__name__)

WindowKey = tuple[str, int, int]


class StartInterrupted(FatalError):
    """A stop was asked for while the engine was starting; nothing was served."""


class EngineWorker:
    """Runs the engine and the batcher on thread ``ew-engine-loop``; see the module docstring."""

    def __init__(
        self,
        engine_settings: EngineSettings,
        batch_settings: BatchSettings,
        request_id: Callable[[Window], str],
    ) -> None:
        self.engine_settings = engine_settings
        self.batch_settings = batch_settings
        self.request_id = request_id
        self.engine: EnginePool | None = None
        self.batcher: MicroBatcher | None = None
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._finish = True
        self._submitted = 0
        self._reported = 0
        self._busy_since_s = time.monotonic()
        self._last_success_s = 0.0
        self.failure: BaseException | None = None
        """Why the engine thread ended early (start failure or a dead engine)."""
        self.abandoned: list[Window] = []

    def start(
        self, timeout_s: float = 1800.0, interrupted: Callable[[], bool] = lambda: False
    ) -> None:
        """Start the thread and block until the engine is warm; raise if it cannot start, or
        :class:`StartInterrupted` as soon as ``interrupted()`` (a signal handler's flag) says
        so — the caller then stops the worker, and its processes are killed."""
        self._thread = threading.Thread(
            target=self._thread_main, name="ew-engine-loop", daemon=True
        )
        self._thread.start()
        give_up = time.monotonic() + timeout_s
        while not self._ready.wait(0.2):
            if interrupted():
                raise StartInterrupted("stopped while the engine was starting")
            if time.monotonic() > give_up:
                raise EngineDeadError(f"the engine was not ready after {timeout_s:.0f} s")
        if self.failure is not None:
            raise EngineDeadError(f"the engine failed to start: {self.failure}") from self.failure

    def submit(self, window: Window) -> None:
        """Hand a window to the batcher (thread-safe)."""
        if self._loop is None or self.batcher is None:
            raise EngineDeadError("the engine thread is not running")
        if self.pending == 0:
            self._busy_since_s = time.monotonic()
        self._submitted += 1
        self._loop.call_soon_threadsafe(self.batcher.submit, window, time.monotonic_ns())

    def cancel(self, keys: list[WindowKey]) -> None:
        """Drop these windows from the engine; each comes back as a ``cancelled`` outcome."""
        if keys and self._loop is not None and self.batcher is not None:
            self._loop.call_soon_threadsafe(self.batcher.cancel, keys)

    def take_outcomes(self) -> list[Outcome]:
        """Outcomes finished since the last call (thread-safe, never blocks)."""
        out: list[Outcome] = []
        while True:
            try:
                out.append(self._outcomes.get_nowait())
            except queue.Empty:
                break
        self._reported += len(out)
        return out

    @property
    def pending(self) -> int:
        """Windows submitted whose outcome the poll thread has not taken yet."""
        return self._submitted - self._reported

    @property
    def stalled_s(self) -> float:
        """How long windows have been in the engine with no caption coming out (0: none)."""
        if self.pending == 0:
            return 0.0
        return time.monotonic() - max(self._busy_since_s, self._last_success_s)

    @property
    def dead(self) -> bool:
        """The engine thread ended without being asked to (engine death)."""
        return self.failure is not None

    def stop(self, *, finish: bool, timeout_s: float = 60.0) -> None:
        """Finish (or abandon) what is in flight, shut the engine down, join the thread."""
        if self._thread is None:
            return
        self._finish = finish
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.error("engine thread did not stop within %.0f s", timeout_s)

    def _done(self, outcome: Outcome) -> None:
        """The batcher's outcomes (engine thread) → the poll thread's queue."""
        if outcome.result is not None:
            self._last_success_s = time.monotonic()
        self._outcomes.put(outcome)

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # the thread's last word: recorded for the poll thread
            self.failure = exc
            logger.error("engine thread ended: %s", exc)
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.engine = EnginePool(self.engine_settings)
        await self.engine.start()
        try:
            self.batcher = MicroBatcher(
                self.engine,
                self.batch_settings,
                self._done,
                self.request_id,
                request_timeout_s=self.engine_settings.request_timeout_s,
            )
            self._ready.set()
            await self._serve(self.batcher)
        finally:
            await self.engine.stop()
            self.engine = self.batcher = None
            # vLLM's client leaves zmq.asyncio objects in reference cycles; collect them while
            # their loop still runs, or their __del__ fails later on a closed loop.
            gc.collect()

    async def _serve(self, batcher: MicroBatcher) -> None:
        assert self._stop is not None
        run = asyncio.create_task(batcher.run(), name="micro-batcher")
        stop = asyncio.create_task(self._stop.wait(), name="stop-request")
        await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
        if run.done():
            stop.cancel()
            # Dead now (the batcher sees a dead core while idle too): tell the poll thread
            # before the engine's shutdown, which can take long once its core process is gone.
            self.failure = run.exception() or EngineDeadError("the micro-batcher ended")
            raise self.failure
        if self._finish:
            await batcher.drain()
        self.abandoned = await batcher.abandon()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
