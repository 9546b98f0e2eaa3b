"""Per-stream publication order (``stream/ordering.py``): scenario tables, no broker, no engine."""

from __future__ import annotations

import pytest

from stream.ordering import InOrder


def key(stream: str, index: int, segment: int = 1) -> tuple[str, int, int]:
    return (stream, segment, index)


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
    order: InOrder[int] = InOrder()
    for index in range(4):
        order.expect(key("a", index))
    assert [order.finish(key("a", i), i) for i in finished] == released
    assert order.waiting() == 0


def test_streams_do_not_wait_for_each_other() -> None:
    order: InOrder[str] = InOrder()
    order.expect(key("a", 0))
    order.expect(key("a", 1))
    order.expect(key("b", 0))
    assert order.finish(key("a", 1), "a1") == []
    assert order.finish(key("b", 0), "b0") == ["b0"]  # a#0 still out: b is not held back
    assert order.finish(key("a", 0), "a0") == ["a0", "a1"]


def test_segments_of_one_stream_keep_emission_order() -> None:
    order: InOrder[str] = InOrder()
    order.expect(key("a", 7, segment=1))  # final tail of segment 1
    order.expect(key("a", 0, segment=2))  # first window of the next segment
    assert order.finish(key("a", 0, segment=2), "s2#0") == []
    assert order.finish(key("a", 7, segment=1), "s1#7") == ["s1#7", "s2#0"]


def test_unexpected_repeated_and_forgotten_results_are_dropped() -> None:
    order: InOrder[str] = InOrder()
    assert order.finish(key("a", 0), "never expected") == []
    order.expect(key("a", 0))
    order.expect(key("a", 1))
    order.expect(key("b", 0))
    assert order.finish(key("a", 1), "first") == []
    assert order.finish(key("a", 1), "again") == [], "a second result for a window"
    assert order.waiting() == 3
    assert order.forget(["a", "c"]) == 2
    assert order.finish(key("a", 0), "revoked") == [], "a stream forgotten on revoke/rewind"
    assert order.waiting() == 1
    assert order.finish(key("b", 0), "b0") == ["b0"]
    assert order.finish(key("b", 0), "b0 again") == [], "a window already out"
    assert order.waiting() == 0
