"""Two engine replicas in one worker (``engine.replicas``), on the CPU build of vLLM."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from stream.engine.settings import BatchSettings
from stream.engine.worker import EngineWorker
from tests.support.analyzer import engine_settings
from tests.support.windows import make_window

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def test_two_replicas_share_the_windows_and_leave_no_process(tiny_model_dir: Path) -> None:
    settings = engine_settings(tiny_model_dir, replicas=2, max_num_seqs=4)
    worker = EngineWorker(settings, BatchSettings(max_batch=8, max_wait_ms=200), _request_id)
    worker.start()
    try:
        assert worker.engine is not None
        pool = worker.engine
        pids = pool.process_ids
        assert len(pids) == 2 and len(set(pids)) == 2  # one engine core per replica
        rng = np.random.default_rng(7)
        now_ns = time.time_ns()  # fresh windows: stale ones would be shed
        for i in range(8):
            worker.submit(make_window("s", i, rng.standard_normal(16_000) * 0.1, now_ns))
        outcomes = _take(worker, 8, timeout_s=240)
    finally:
        worker.stop(finish=False)

    assert sorted(o.window.index for o in outcomes) == list(range(8))
    assert all(o.result is not None and o.result.output_tokens == 8 for o in outcomes)
    assert pool.captioned[0] > 0 and pool.captioned[1] > 0
    assert sum(pool.captioned) == 8
    assert pool.assigned == (0, 0)
    assert not any(psutil.pid_exists(pid) for pid in pids)


def _request_id(window) -> str:  # type: ignore[no-untyped-def]
    return f"{window.stream_id}:{window.index}"


def _take(worker: EngineWorker, n: int, timeout_s: float) -> list:  # type: ignore[type-arg]
    taken: list = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    while len(taken) < n and time.monotonic() < deadline and not worker.dead:
        taken.extend(worker.take_outcomes())
        time.sleep(0.05)
    return taken
