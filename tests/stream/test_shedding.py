"""The freshness policy (``stream/engine/shedding.py``) as scenario tables: no engine."""

from __future__ import annotations

import dataclasses

import pytest

from stream.engine.settings import BatchSettings
from stream.engine.shedding import Freshness, Throughput
from tests.support.windows import make_window
from windowing.window import Window

S = 10**9


def window(index: int, activity_db: float = 20.0) -> Window:
    """Window ``index`` ends at ``index + 1`` s; its level is ``activity_db`` over its floor."""
    return dataclasses.replace(
        make_window("s", index), rms_dbfs=-60.0 + activity_db, noise_floor_dbfs=-60.0
    )


def plan(windows: list[Window], now_s: float, rate: float | None, **settings: object):
    freshness = Freshness(BatchSettings(**settings), wall_clock_ns=lambda: int(now_s * S))
    return [
        (shed.window.index, shed.reason.split(":")[0]) for shed in freshness.plan(windows, rate)
    ]


def test_fresh_windows_the_engine_can_reach_in_time_are_kept() -> None:
    assert plan([window(i) for i in range(10)], now_s=11, rate=5.0, max_lag_s=10) == []


@pytest.mark.parametrize(
    ("policy", "shed"),
    [("skip", [(0, "stale"), (1, "stale"), (2, "stale")]), ("widen", [(1, "stale")])],
)
def test_stale_windows_go_whatever_their_activity(policy: str, shed: list) -> None:
    # windows end at 1, 2, 3, 4 s; at 14 s with max_lag 10 s: 0, 1, 2 are older than 10 s
    windows = [window(i, activity_db=40.0) for i in range(4)]
    assert plan(windows, now_s=14, rate=None, max_lag_s=10, shed=policy) == shed


def test_under_overload_quiet_windows_go_first_oldest_first() -> None:
    """10 queued, newest 1 s old, 1 window/s, 5 s budget: 4 can be served in time, 6 must go:
    the 3 quiet ones first (oldest first), and the active ones are left to go stale later."""
    windows = [window(i, activity_db=(2.0 if i in (1, 4, 8) else 30.0)) for i in range(10)]
    got = plan(windows, now_s=11, rate=1.0, max_lag_s=5, quiet_activity_db=6.0)
    assert got == [*((i, "stale") for i in range(5)), (8, "overload")]


def test_overload_sheds_only_the_excess_of_quiet_windows() -> None:
    windows = [window(i, activity_db=1.0) for i in range(20)]  # all quiet, all fresh
    # newest ends at 20 s; at 20 s, 0.5 windows/s x 30 s: 15 can be served, 5 go, oldest first
    got = plan(windows, now_s=20, rate=0.5, max_lag_s=30, quiet_activity_db=6.0)
    assert got == [(i, "overload") for i in range(5)]


def test_no_throughput_yet_means_no_overload_guess() -> None:
    windows = [window(i, activity_db=0.0) for i in range(500)]
    assert plan(windows, now_s=500, rate=None, max_lag_s=1000) == []


def test_throughput_is_per_busy_second_over_the_last_30_s() -> None:
    now = [0.0]
    rate = Throughput(clock_s=lambda: now[0])
    assert rate.rate() is None, "no busy time yet"
    rate.busy(True)
    for _ in range(10):
        now[0] += 1.0
        rate.record()
    rate.busy(False)
    assert rate.rate() == pytest.approx(1.0)
    now[0] += 15.0  # idle: a quiet spell is not a slow engine
    assert rate.rate() == pytest.approx(1.0)
    rate.busy(True)
    now[0] += 30.0  # busy 30 s, nothing finished: the engine is stuck
    assert rate.rate() == 0.0
