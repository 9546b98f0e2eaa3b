"""Pending windows (``stream/pending.py``): publication order, forgetting, commit holds.

Scenario tables, no broker, no engine.
"""

from __future__ import annotations

import dataclasses

import pytest

from stream.pending import Pending, PendingWindows
from tests.support.windows import make_window
from windowing.window import Window


def window(stream: str, index: int, segment: int = 1, positions: tuple = ()) -> Window:
    return dataclasses.replace(make_window(stream, index), segment_id=segment, positions=positions)


def indexes(entries: list[Pending]) -> list[int]:
    return [entry.window.index for entry in entries]


@pytest.mark.parametrize(
    ("finished", "released"),
    [
        # emitted #0 #1 #2 #3 of stream "a"; engine finishes them in this order:
        ([0, 1, 2, 3], [[0], [1], [2], [3]]),
        ([1, 3, 0, 2], [[], [], [0, 1], [2, 3]]),
        ([3, 2, 1, 0], [[], [], [], [0, 1, 2, 3]]),
        ([0, 2, 3, 1], [[0], [], [], [1, 2, 3]]),
    ],
)
def test_results_are_released_in_window_order(
    finished: list[int], released: list[list[int]]
) -> None:
    pending = PendingWindows()
    keys = [pending.add(window("a", index), 0).key for index in range(4)]
    assert [indexes(pending.finish(keys[i])) for i in finished] == released
    assert len(pending) == 0


def test_streams_do_not_wait_for_each_other() -> None:
    pending = PendingWindows()
    a0, a1 = pending.add(window("a", 0), 0).key, pending.add(window("a", 1), 0).key
    b0 = pending.add(window("b", 0), 0).key
    assert pending.finish(a1) == []
    assert indexes(pending.finish(b0)) == [0]  # a#0 still out: b is not held back
    assert indexes(pending.finish(a0)) == [0, 1]


def test_segments_of_one_stream_keep_emission_order() -> None:
    pending = PendingWindows()
    tail = pending.add(window("a", 7, segment=1), 0).key  # final tail of segment 1
    first = pending.add(window("a", 0, segment=2), 0).key  # first window of the next segment
    assert pending.finish(first) == []
    assert [e.key for e in pending.finish(tail)] == [tail, first]


def test_unexpected_repeated_and_forgotten_results_are_dropped() -> None:
    pending = PendingWindows()
    assert pending.finish(("a", 1, 0)) == [], "never expected"
    a0, a1 = pending.add(window("a", 0), 0).key, pending.add(window("a", 1), 0).key
    b0 = pending.add(window("b", 0), 0).key
    assert pending.finish(a1) == []
    assert pending.finish(a1) == [], "a second result for a window"
    assert len(pending) == 3
    assert len(pending.forget(["a", "c"])) == 2
    assert pending.finish(a0) == [], "a stream forgotten on revoke/rewind"
    assert len(pending) == 1
    assert indexes(pending.finish(b0)) == [0]
    assert pending.finish(b0) == [], "a window already out"
    assert len(pending) == 0


def test_an_entry_keeps_the_window_its_close_time_and_its_outcome() -> None:
    pending = PendingWindows()
    entry = pending.add(window("a", 0), closed_ns=123)
    (out,) = pending.finish(entry.key, outcome=None)
    assert (out.window.key, out.closed_ns, out.outcome, out.finished) == (
        ("a", 1, 0),
        123,
        None,
        True,
    )


def test_forget_returns_what_the_engine_still_holds() -> None:
    pending = PendingWindows()
    done = pending.add(window("a", 0), 0)
    still_in_engine = pending.add(window("a", 1), 0)
    pending.finish(still_in_engine.key)  # finished but waiting for #0
    assert [e.finished for e in pending.forget(["a"])] == [False, True]
    assert done.finished is False


def test_each_pending_window_holds_the_commit_at_its_lowest_position() -> None:
    pending = PendingWindows()
    first = pending.add(window("a", 0, positions=((0, 7), (0, 5), (0, 9))), 0)
    pending.add(window("b", 0, positions=((1, 3),)), 0)
    pending.add(window("c", 0, positions=(None,)), 0)  # no Kafka position: holds nothing
    assert sorted(pending.holds()) == [(0, 5), (1, 3)]
    pending.finish(first.key)
    assert sorted(pending.holds()) == [(1, 3)]
