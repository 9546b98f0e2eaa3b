"""The micro-batcher, driven through its real seam: the engine's async ``prepare`` and
``generate`` (and ``caption``, their sum, for retries).

The engine here is a stand-in that records call times and sleeps; the real vLLM engine is
exercised by tests/stream/test_analyzer.py and tests/engine/.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from earwitness.errors import EngineDeadError, TransientError
from stream.engine.batcher import MicroBatcher, Outcome
from stream.engine.engine import AudioInputError, CaptionResult, PreparedWindow
from stream.engine.settings import BatchSettings
from stream.engine.shedding import Freshness
from tests.support.windows import make_window
from windowing.window import Window


class ScriptedEngine:
    """Prepares in ``prepare_s`` (``bad`` requests are rejected there), answers after
    ``delay_s``; fails the first ``failures[request]`` generations of a request."""

    def __init__(
        self,
        delay_s: float = 0.01,
        failures: dict[str, int] | None = None,
        dead_after: int | None = None,
        prepare_s: float = 0.0,
        bad: frozenset[str] = frozenset(),
    ) -> None:
        self.delay_s = delay_s
        self.prepare_s = prepare_s
        self.failures = dict(failures or {})
        self.dead_after = dead_after
        self.bad = bad
        self.calls: list[tuple[float, str]] = []
        """(time, request id) of every generation started."""
        self.prepared: list[tuple[float, str]] = []
        """(time, request id) of every preparation finished."""
        self.running = 0
        self.most_running = 0
        self.alive = True
        """What ``is_alive`` says: a test sets it False for an engine core that died."""

    @property
    def is_alive(self) -> bool:
        return self.alive

    async def prepare(self, samples: object, request_id: str) -> PreparedWindow:
        await asyncio.sleep(self.prepare_s)
        if request_id in self.bad:
            raise AudioInputError("audio_length", f"{request_id}: scripted rejection", request_id)
        self.prepared.append((time.monotonic(), request_id))
        return PreparedWindow(request_id, None, time.monotonic())

    async def generate(self, prepared: PreparedWindow) -> CaptionResult:
        request_id = prepared.request_id
        self.calls.append((time.monotonic(), request_id))
        if self.dead_after is not None and len(self.calls) > self.dead_after:
            raise EngineDeadError("engine core exited")
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.running -= 1
        if self.failures.get(request_id, 0) > 0:
            self.failures[request_id] -= 1
            raise TransientError("request failed")
        return CaptionResult(request_id, f"caption of {request_id}", 3, 400, "stop", 1.0)

    async def caption(self, samples: object, request_id: str) -> CaptionResult:
        return await self.generate(await self.prepare(samples, request_id))


def request_id(window: Window) -> str:
    return f"{window.stream_id}#{window.index}"


def batcher_of(
    engine: ScriptedEngine, settings: BatchSettings, done: list[Outcome], now_ns: int = 0
) -> MicroBatcher:
    """A batcher whose wall clock reads ``now_ns``: test windows (1 s each from the epoch)
    are fresh at 0 and ``now_ns / 1e9 - index`` seconds old otherwise."""
    freshness = Freshness(settings, wall_clock_ns=lambda: now_ns)
    return MicroBatcher(engine, settings, done.append, request_id, freshness=freshness)


async def run_batcher(
    engine: ScriptedEngine,
    settings: BatchSettings,
    windows: list[Window],
    expect: int,
    spacing_s: float = 0.0,
) -> tuple[MicroBatcher, list[Outcome]]:
    done: list[Outcome] = []
    batcher = batcher_of(engine, settings, done)
    task = asyncio.create_task(batcher.run())
    for window in windows:
        batcher.submit(window)
        if spacing_s:
            await asyncio.sleep(spacing_s)
    async with asyncio.timeout(10):
        while len(done) < expect:
            await asyncio.sleep(0.005)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return batcher, done


def test_batches_fill_to_max_batch():
    """10 windows at once, max_batch 4:  |####|####|##|  → batches of 4, 4, 2"""
    settings = BatchSettings(max_batch=4, max_wait_ms=200, max_inflight=64)
    windows = [make_window("s", i) for i in range(10)]

    batcher, done = asyncio.run(run_batcher(ScriptedEngine(), settings, windows, 10))

    assert list(batcher.batch_sizes) == [4, 4, 2]
    assert sorted(o.window.index for o in done) == list(range(10))
    assert all(o.result is not None and o.error is None for o in done)


def test_a_batch_reaches_the_engine_together_once_all_of_it_is_prepared():
    """prepare takes 20 ms each, 4 at a time: no generation starts before the last prepare"""
    settings = BatchSettings(max_batch=4, max_wait_ms=50, max_inflight=8)
    engine = ScriptedEngine(prepare_s=0.02)
    windows = [make_window("s", i) for i in range(8)]

    batcher, done = asyncio.run(run_batcher(engine, settings, windows, 8))

    assert list(batcher.batch_sizes) == [4, 4]
    prepared = dict((rid, t) for t, rid in engine.prepared)
    for batch in (["s#0", "s#1", "s#2", "s#3"], ["s#4", "s#5", "s#6", "s#7"]):
        first_generation = min(t for t, rid in engine.calls if rid in batch)
        assert first_generation >= max(prepared[rid] for rid in batch)
    assert all(o.result is not None for o in done)


def test_a_window_rejected_while_preparing_does_not_hold_its_batch():
    settings = BatchSettings(max_batch=3, max_wait_ms=50, max_inflight=8)
    engine = ScriptedEngine(prepare_s=0.005, bad=frozenset({"s#1"}))
    windows = [make_window("s", i) for i in range(3)]

    _, done = asyncio.run(run_batcher(engine, settings, windows, 3))

    by_index = {o.window.index: o for o in done}
    assert by_index[1].result is None and "scripted rejection" in (by_index[1].error or "")
    assert by_index[1].attempts == 1
    assert by_index[0].result is not None and by_index[2].result is not None
    assert sorted(rid for _, rid in engine.calls) == ["s#0", "s#2"]


def test_a_batch_closes_at_max_wait_ms():
    """one window, then nothing: the batch leaves after max_wait_ms with 1 window"""
    settings = BatchSettings(max_batch=8, max_wait_ms=30, max_inflight=8)
    engine = ScriptedEngine()

    async def scenario() -> tuple[float, list[int]]:
        started = time.monotonic()
        batcher, _ = await run_batcher(engine, settings, [make_window("s", 0)], 1)
        return engine.calls[0][0] - started, list(batcher.batch_sizes)

    waited_s, sizes = asyncio.run(scenario())
    assert sizes == [1]
    assert 0.025 <= waited_s < 0.5


def test_oldest_window_first_across_streams():
    """a busy stream's backlog does not starve a window that became ready earlier"""
    settings = BatchSettings(max_batch=1, max_wait_ms=0, max_inflight=1)
    engine = ScriptedEngine(delay_s=0.002)

    async def scenario() -> list[str]:
        done: list[Outcome] = []
        batcher = batcher_of(engine, settings, done)
        now = time.monotonic_ns()
        batcher.submit(make_window("quiet", 0), ready_ns=now + 100)
        for i in range(5):
            batcher.submit(make_window("busy", i), ready_ns=now + 200 + i)
        batcher.submit(make_window("late", 0), ready_ns=now + 150)
        task = asyncio.create_task(batcher.run())
        async with asyncio.timeout(5):
            while len(done) < 7:
                await asyncio.sleep(0.005)
        task.cancel()
        return [rid for _, rid in engine.calls]

    order = asyncio.run(scenario())
    assert order == ["quiet#0", "late#0", "busy#0", "busy#1", "busy#2", "busy#3", "busy#4"]


def test_never_more_than_max_inflight_in_the_engine():
    settings = BatchSettings(max_batch=16, max_wait_ms=5, max_inflight=3)
    engine = ScriptedEngine(delay_s=0.02)
    windows = [make_window("s", i) for i in range(12)]

    _, done = asyncio.run(run_batcher(engine, settings, windows, 12))

    assert len(done) == 12
    assert engine.most_running == 3


def test_a_failed_request_is_retried_once_then_reported():
    settings = BatchSettings(max_batch=4, max_wait_ms=1, request_retries=1)
    engine = ScriptedEngine(failures={"s#0": 1, "s#1": 2})
    windows = [make_window("s", 0), make_window("s", 1)]

    _, done = asyncio.run(run_batcher(engine, settings, windows, 2))

    by_index = {o.window.index: o for o in done}
    assert by_index[0].result is not None and by_index[0].attempts == 2
    assert by_index[1].result is None and by_index[1].attempts == 2
    assert "failed after 2 attempts" in (by_index[1].error or "")


def test_a_dead_engine_ends_run_and_reports_nothing_unfinished():
    """dead engine: finished windows are reported; the rest are not (they will be replayed)"""
    settings = BatchSettings(max_batch=1, max_wait_ms=0, max_inflight=1)
    engine = ScriptedEngine(dead_after=2)

    async def scenario() -> list[Outcome]:
        done: list[Outcome] = []
        batcher = batcher_of(engine, settings, done)
        for i in range(5):
            batcher.submit(make_window("s", i))
        with pytest.raises(EngineDeadError):
            async with asyncio.timeout(5):
                await batcher.run()
        return done

    done = asyncio.run(scenario())
    assert [o.window.index for o in done] == [0, 1]


def test_an_engine_that_dies_while_idle_ends_run():
    """nothing in flight, so no request fails: the sweep sees the engine not alive and run
    ends with EngineDeadError (before, a dead idle engine went unnoticed and /healthz stayed
    green until the next window)"""
    settings = BatchSettings(max_batch=1, max_wait_ms=0, max_inflight=1)
    engine = ScriptedEngine()

    async def scenario() -> list[Outcome]:
        done: list[Outcome] = []
        batcher = batcher_of(engine, settings, done)
        batcher.submit(make_window("s", 0))
        run = asyncio.create_task(batcher.run())
        async with asyncio.timeout(60):
            while not done:
                await asyncio.sleep(0.01)
        engine.alive = False  # the core process is gone; the batcher waits for windows
        with pytest.raises(EngineDeadError, match="engine core died"):
            async with asyncio.timeout(60):
                await run
        return done

    done = asyncio.run(scenario())
    assert [o.window.index for o in done] == [0]


@pytest.mark.parametrize(
    ("policy", "shed_indexes"),
    [("skip", [0, 1, 2, 3, 4, 5]), ("widen", [1, 3, 5])],
)
def test_stale_windows_are_shed_and_reported(policy: str, shed_indexes: list[int]):
    """windows older than max_lag_s (their end against the wall clock): skip sheds them all,
    widen sheds odd indexes; a fresh window is captioned"""
    settings = BatchSettings(max_batch=8, max_wait_ms=0, max_lag_s=1.0, shed=policy)
    engine = ScriptedEngine()

    async def scenario() -> list[Outcome]:
        done: list[Outcome] = []
        batcher = batcher_of(engine, settings, done, now_ns=100 * 10**9)
        for i in range(6):  # windows ending 1..6 s after the epoch: ~95 s old
            batcher.submit(make_window("s", i))
        batcher.submit(make_window("fresh", 99))  # ends at 100 s: age 0
        task = asyncio.create_task(batcher.run())
        async with asyncio.timeout(5):
            while len(done) < 7:
                await asyncio.sleep(0.005)
        task.cancel()
        return done

    done = asyncio.run(scenario())
    shed = sorted(o.window.index for o in done if o.shed is not None)
    assert shed == shed_indexes
    assert all("stale" in (o.shed or "") and "max_lag_s" in (o.shed or "") for o in done if o.shed)
    captioned = {(o.window.stream_id, o.window.index) for o in done if o.result is not None}
    assert ("fresh", 99) in captioned
    assert len(done) == 7


def test_cancel_drops_queued_and_in_flight_windows_and_reports_each():
    """what a revoked partition or an aborted transaction asks: nothing captioned for nothing"""
    settings = BatchSettings(max_batch=2, max_wait_ms=0, max_inflight=2)
    engine = ScriptedEngine(delay_s=30.0)  # in flight until cancelled

    async def scenario() -> tuple[list[Outcome], MicroBatcher]:
        done: list[Outcome] = []
        batcher = batcher_of(engine, settings, done)
        task = asyncio.create_task(batcher.run())
        for i in range(4):
            batcher.submit(make_window("s", i))
        async with asyncio.timeout(5):
            while batcher.inflight < 2:
                await asyncio.sleep(0.005)
        assert batcher.cancel([("s", 0, i) for i in range(4)]) == 4
        async with asyncio.timeout(5):
            while batcher.inflight:
                await asyncio.sleep(0.005)
        task.cancel()
        return done, batcher

    done, batcher = asyncio.run(scenario())
    assert sorted(o.window.index for o in done) == [0, 1, 2, 3]
    assert all(o.cancelled and o.result is None for o in done)
    assert batcher.queued == 0


class HangingEngine(ScriptedEngine):
    """Prepares, then never answers: a stuck engine core."""

    async def generate(self, prepared: PreparedWindow) -> CaptionResult:
        self.calls.append((time.monotonic(), prepared.request_id))
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def test_a_request_the_engine_never_finishes_times_out_and_is_retried_then_reported():
    settings = BatchSettings(max_batch=1, max_wait_ms=0, request_retries=1)
    engine = HangingEngine()

    async def scenario() -> list[Outcome]:
        done: list[Outcome] = []
        batcher = MicroBatcher(
            engine,
            settings,
            done.append,
            request_id,
            request_timeout_s=0.2,
            freshness=Freshness(settings, wall_clock_ns=lambda: 0),
        )
        task = asyncio.create_task(batcher.run())
        batcher.submit(make_window("s", 0))
        async with asyncio.timeout(10):
            while not done:
                await asyncio.sleep(0.01)
        task.cancel()
        return done

    (outcome,) = asyncio.run(scenario())
    assert outcome.result is None and outcome.attempts == 2
    assert "no result after 0.2 s" in (outcome.error or "")
    assert len(engine.calls) == 2


def test_a_stuck_engine_still_sheds_what_goes_stale():
    """every slot taken by a hung request: the sweep sheds queued windows once they are stale"""
    settings = BatchSettings(max_batch=1, max_wait_ms=0, max_inflight=1, max_lag_s=1.0)
    engine = HangingEngine()
    clock = [10 * 10**9]

    async def scenario() -> list[Outcome]:
        done: list[Outcome] = []
        freshness = Freshness(settings, wall_clock_ns=lambda: clock[0])
        batcher = MicroBatcher(engine, settings, done.append, request_id, freshness=freshness)
        task = asyncio.create_task(batcher.run())
        for i in range(9, 12):  # windows ending at 10, 11, 12 s: fresh
            batcher.submit(make_window("s", i))
        await asyncio.sleep(0.3)
        assert done == [] and batcher.inflight == 1
        clock[0] = 30 * 10**9  # 18+ s later: the two queued windows are stale
        async with asyncio.timeout(10):
            while len(done) < 2:
                await asyncio.sleep(0.05)
        task.cancel()
        return done

    done = asyncio.run(scenario())
    assert sorted(o.window.index for o in done) == [10, 11]
    assert all(o.shed and o.shed.startswith("stale") for o in done)


def test_a_window_stale_on_arrival_is_shed_at_once():
    """cut from a Kafka backlog: shed when submitted, with every slot busy and no sweep yet,
    so a stale backlog drains as fast as it is read (not a pause threshold per sweep)"""
    settings = BatchSettings(max_batch=1, max_wait_ms=0, max_inflight=1, max_lag_s=1.0)
    engine = HangingEngine()

    async def scenario() -> list[Outcome]:
        done: list[Outcome] = []
        batcher = batcher_of(engine, settings, done, now_ns=10 * 10**9)
        task = asyncio.create_task(batcher.run())
        batcher.submit(make_window("s", 9))  # ends at 10 s: fresh, takes the only slot
        await asyncio.sleep(0.05)
        assert batcher.inflight == 1
        for i in range(5):  # ending 1..5 s: 5+ s old
            batcher.submit(make_window("backlog", i))
        shed_at_once = list(done)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return shed_at_once

    done = asyncio.run(scenario())
    assert [o.window.index for o in done] == [0, 1, 2, 3, 4]
    assert all(o.shed and o.shed.startswith("stale") for o in done)
