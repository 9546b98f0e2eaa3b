"""The commit rule: per partition, the lowest offset any unfinished work still needs."""

from __future__ import annotations

from stream.offsets import OffsetTracker


def test_nothing_held_commits_the_consumed_position():
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.consumed(0, offset)
    assert tracker.committable([]) == {0: 5}


def test_windower_and_pending_windows_hold_the_commit_back():
    """
    partition 0:  0 1 2 3 4 5 6 7 8 9        consumed → 10
                      └ pending window needs 2..5
                            └ windower holds 4..9
    commit 2; once the window is published, 4; once the windower lets go, 10
    """
    tracker = OffsetTracker()
    for offset in range(10):
        tracker.consumed(0, offset)
    pending_window = (0, 2)  # the lowest of its frames' positions (0, 3), (0, 2), (0, 5)

    assert tracker.committable([(0, 4), pending_window]) == {0: 2}
    tracker.committed({0: 2})
    # the window is published: only the windower's hold is left
    assert tracker.committable([(0, 4)]) == {0: 4}
    assert tracker.committable([]) == {0: 10}


def test_only_moved_partitions_are_committed_again():
    tracker = OffsetTracker()
    tracker.consumed(0, 0)
    tracker.consumed(1, 7)
    tracker.committed(tracker.committable([]))
    tracker.consumed(1, 8)
    assert tracker.committable([]) == {1: 9}


def test_revoked_partitions_are_forgotten():
    tracker = OffsetTracker()
    tracker.consumed(0, 3)
    tracker.consumed(1, 3)
    tracker.forget([1])
    assert tracker.committable([(1, 1)]) == {0: 4}


def test_positions_that_are_not_kafka_positions_are_ignored():
    tracker = OffsetTracker()
    tracker.consumed(0, 1)
    assert tracker.committable([None, "x"]) == {0: 2}
