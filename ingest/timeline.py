"""Where decoded audio sits in time: PTS (and a clock) in, segment decisions out. Pure.

Each decoded chunk of audio has a PTS in the source's own time base. ``Timeline.place`` compares
it with where the previous chunk ended and decides::

    delta = pts - expected_pts                 (expected: the previous chunk's pts + duration,
                                                so jitter and slow drift never add up)

    ─────────────┼──────────┼──────────┼──────────────────────────┼──────────►  delta
      BREAK      -tolerance  0  +tolerance       GAP                max_gap       BREAK
      (jump back)        CONTINUE            (a hole: ew-ts skips     (too long a hole)
                                              ahead, same segment)

A segment's first chunk (START, and every BREAK) is *anchored*: its wall-clock time comes from
the source's clock when it has one for this PTS (RTSP: RTCP sender reports; a recording: its
creation time), else from the arrival time of its packet. Within a segment, time comes from
the samples sent and the holes seen, so ew-ts never jitters with the network::

    ew-ts(frame) = anchor_wall_ns + samples before it / rate + holes before it

A chunk without PTS continues the segment. ``ingest.framer.Framer`` turns the decisions into
``ew-seq``/``ew-ts`` on the wire (a BREAK is ``ew-seq`` back to 0 with time forward).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Step(Enum):
    START = "start"
    """First audio of a connection: a new segment, anchored."""
    CONTINUE = "continue"
    GAP = "gap"
    """A hole within the segment: ``gap_ns`` of missing audio before this chunk."""
    BREAK = "break"
    """A PTS jump: the segment ends, a new one starts at this chunk, anchored."""


@dataclass(frozen=True, slots=True)
class Placement:
    step: Step
    wall_ns: int = 0
    """For START and BREAK: the wall-clock time of the chunk's first sample (the anchor)."""
    gap_ns: int = 0
    """For GAP: the length of the hole."""


_CONTINUE = Placement(Step.CONTINUE)


class Timeline:
    """The PTS bookkeeping of one connection (a reconnect makes a new one)."""

    __slots__ = ("_expected_ns", "_max_gap_ns", "_tolerance_ns")

    def __init__(self, tolerance_ns: int, max_gap_ns: int) -> None:
        self._tolerance_ns = tolerance_ns
        self._max_gap_ns = max_gap_ns
        self._expected_ns: int | None = None

    def place(
        self, pts_ns: int | None, duration_ns: int, arrival_ns: int, source_wall_ns: int | None
    ) -> Placement:
        """Decide for one chunk. ``source_wall_ns``: the source clock's time for ``pts_ns``."""
        expected = self._expected_ns
        if expected is None:
            return self._anchor(Step.START, pts_ns or 0, duration_ns, arrival_ns, source_wall_ns)
        if pts_ns is None:
            self._expected_ns = expected + duration_ns
            return _CONTINUE
        delta = pts_ns - expected
        if -self._tolerance_ns <= delta <= self._tolerance_ns:
            self._expected_ns = pts_ns + duration_ns
            return _CONTINUE
        if 0 < delta <= self._max_gap_ns:
            self._expected_ns = pts_ns + duration_ns
            return Placement(Step.GAP, gap_ns=delta)
        return self._anchor(Step.BREAK, pts_ns, duration_ns, arrival_ns, source_wall_ns)

    def _anchor(
        self,
        step: Step,
        pts_ns: int,
        duration_ns: int,
        arrival_ns: int,
        source_wall_ns: int | None,
    ) -> Placement:
        self._expected_ns = pts_ns + duration_ns
        wall = source_wall_ns if source_wall_ns is not None else arrival_ns
        return Placement(step, wall_ns=wall)
