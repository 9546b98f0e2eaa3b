"""The jitter buffer, as scenario tables: arrival order in, release order and drops out.

Each scenario is ``(arrivals, jitter, released, dropped)``; ``dropped`` maps a seq to the offer
outcome that dropped it. A hole is given up once a frame ``jitter`` past it has arrived::

    jitter 3   arrive  0 2 3 5 6 7                  (1 and 4 never come)
               release 0 . . . . .                   6 ≥ 1+3 → give 1 up: 2 3 out
                             └─ at 6: 2 3 ;  at 7: 7 ≥ 4+3 → 5 6 7
"""

from __future__ import annotations

import pytest

from tests.windowing.support import frame
from windowing.reorder import Offer, Reorder

SCENARIOS = [
    # arrivals                 jitter  released                  dropped
    ([0, 1, 2, 3], 3, [0, 1, 2, 3], {}),
    ([1, 0, 3, 2], 3, [0, 1, 2, 3], {}),
    ([2, 1, 0], 3, [0, 1, 2], {}),
    ([0, 2, 3, 5, 6, 7], 3, [0, 2, 3, 5, 6, 7], {}),
    ([0, 2, 3], 3, [0], {}),  # 1 may still come: 2 and 3 wait
    ([0, 2, 3, 4, 1], 3, [0, 2, 3, 4], {1: Offer.LATE}),
    ([0, 1, 1, 2], 3, [0, 1, 2], {1: Offer.DUPLICATE}),
    ([0, 2, 2, 1], 3, [0, 1, 2], {2: Offer.DUPLICATE}),
    ([0, 5, 1, 2], 1, [0, 5], {1: Offer.LATE, 2: Offer.LATE}),  # jitter 1: no waiting
    ([100, 101, 99], 3, [100, 101], {99: Offer.DUPLICATE}),  # a stream joined mid-way
    ([2, 0, 1], 3, [0, 1, 2], {}),  # first frame within jitter of 0: wait for 0
]


@pytest.mark.parametrize(("arrivals", "jitter", "released", "dropped"), SCENARIOS)
def test_release_order(
    arrivals: list[int], jitter: int, released: list[int], dropped: dict[int, Offer]
) -> None:
    reorder = Reorder(jitter)
    out: list[int] = []
    seen_drops: dict[int, Offer] = {}
    for seq in arrivals:
        item = frame(seq)
        offer = reorder.offer(item)
        if offer is Offer.IN_ORDER:
            out.append(seq)
        elif offer is Offer.HELD:
            out += [f.seq for f in reorder.ready()]
        else:
            seen_drops[seq] = offer
    assert (out, seen_drops) == (released, dropped)


def test_drain_gives_up_every_hole_in_order() -> None:
    reorder = Reorder(10)
    for seq in (0, 4, 2, 7):
        reorder.offer(frame(seq))
        list(reorder.ready())
    assert sorted(reorder.held_positions()) == [(0, 2), (0, 4), (0, 7)]
    assert [f.seq for f in reorder.drain()] == [2, 4, 7]
    assert reorder.offer(frame(3)) is Offer.LATE
    assert reorder.offer(frame(4)) is Offer.DUPLICATE


def test_older_seq_with_newer_timestamp_is_a_reset() -> None:
    reorder = Reorder(3)
    for seq in range(10):
        reorder.offer(frame(seq))
        list(reorder.ready())
    restarted = frame(0, ts_ns=frame(10).ts_ns)
    assert reorder.offer(restarted) is Offer.RESET
    reorder.restart(restarted)
    assert [f.seq for f in reorder.ready()] == [0]
