"""Per-stream jitter buffer: frames come out in ``ew-seq`` order, holes are given up after a bound.

::

    jitter_frames = 3, frames arrive   0 2 3 1 5 6 7 …          (4 never comes)
    released                           0 . . 1 2 3 . . 5 6 7
                                                    └─ 7 ≥ 4 + 3: hole 4 given up, 5 6 7 out

A hole ``n`` is given up once a frame with ew-seq ≥ n + jitter_frames is held, and only that
hole: a frame n + 1 that has not arrived yet still gets its own chance.

A frame whose ew-seq is below the next one expected is a *duplicate* (already released or
held) or *late* (its number was given up as a hole) and is dropped — unless its ew-ts is newer
than anything released: then the producer restarted its numbering (a *seq reset*).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from enum import Enum

from windowing.wire import Frame

MAX_HOLES_REMEMBERED = 64


class Offer(Enum):
    """What :meth:`Reorder.offer` did with a frame."""

    IN_ORDER = "in_order"
    """The frame was the next expected; the caller takes it directly."""
    HELD = "held"
    """The frame is held; :meth:`Reorder.ready` yields whatever can go now."""
    DUPLICATE = "duplicate"
    LATE = "late"
    RESET = "reset"
    """New numbering: the caller drains, then calls :meth:`Reorder.restart` with the frame."""


class Reorder:
    """Orders one stream's frames by ew-seq, waiting for a hole until ``jitter`` frames pass it."""

    __slots__ = ("_holes", "_max_held", "_pending", "jitter", "last_ts_ns", "next_seq")

    def __init__(self, jitter: int) -> None:
        self.jitter = jitter
        self.next_seq: int | None = None
        self.last_ts_ns = -1
        self._pending: dict[int, Frame] = {}
        self._max_held = -1
        self._holes: deque[tuple[int, int]] = deque(maxlen=MAX_HOLES_REMEMBERED)

    def offer(self, frame: Frame) -> Offer:
        seq = frame.seq
        if seq == self.next_seq and not self._pending:
            self.next_seq = seq + 1
            self.last_ts_ns = max(self.last_ts_ns, frame.ts_ns)
            return Offer.IN_ORDER
        if self.next_seq is None:
            self.restart(frame)
            return Offer.HELD
        if seq < self.next_seq:
            if frame.ts_ns > self.last_ts_ns:
                return Offer.RESET
            return Offer.LATE if self._given_up(seq) else Offer.DUPLICATE
        if seq in self._pending:
            return Offer.DUPLICATE
        self._hold(frame)
        return Offer.HELD

    def restart(self, frame: Frame) -> None:
        """Start numbering at ``frame`` (0 if it is within the jitter bound of 0); holds it."""
        self.next_seq = 0 if frame.seq < self.jitter else frame.seq
        self._holes.clear()
        self._hold(frame)

    def resume(self, next_seq: int, after_ts_ns: int) -> None:
        """Continue as if frames up to ``next_seq - 1`` (ew-ts ≤ ``after_ts_ns``) were released."""
        self.next_seq = next_seq
        self.last_ts_ns = after_ts_ns

    def ready(self) -> Iterator[Frame]:
        """Frames that may go now, in order; a frame leaves the buffer only when yielded."""
        while self._pending:
            frame = self._pending.pop(self.next_seq, None)  # type: ignore[arg-type]
            if frame is None:
                if self._max_held < self.next_seq + self.jitter:  # type: ignore[operator]
                    return
                first_held = min(self._pending)
                self._skip_to(min(first_held, self._max_held - self.jitter + 1))
                continue
            self._advance(frame)
            yield frame

    def drain(self) -> Iterator[Frame]:
        """Every held frame, in order, giving up all holes (idle close, reset, shutdown)."""
        while self._pending:
            seq = min(self._pending)
            self._skip_to(seq)
            frame = self._pending.pop(seq)
            self._advance(frame)
            yield frame

    def held_positions(self) -> Iterator[object]:
        return (frame.position for frame in self._pending.values())

    def held_bytes(self) -> int:
        return sum(len(frame.pcm) for frame in self._pending.values())

    def _hold(self, frame: Frame) -> None:
        self._pending[frame.seq] = frame
        self._max_held = frame.seq if len(self._pending) == 1 else max(self._max_held, frame.seq)

    def _advance(self, frame: Frame) -> None:
        self.next_seq = frame.seq + 1
        self.last_ts_ns = max(self.last_ts_ns, frame.ts_ns)

    def _skip_to(self, seq: int) -> None:
        if self.next_seq is not None and seq > self.next_seq:
            self._holes.append((self.next_seq, seq))
        self.next_seq = seq

    def _given_up(self, seq: int) -> bool:
        return any(lo <= seq < hi for lo, hi in self._holes)
