"""One stream: jitter buffer → current segment, or a new one.

A released frame goes to the current segment, which decides whether it continues it
(:meth:`~windowing.segment.Segment.extend` holds the one continuity rule)::

    delta = ew-ts - expected        (ew-seq reset or format change: always a new segment)

    ──────────┼────────┼───────────────────────────┼──────────►  delta
      jump    -drift   0   hole filled with silence  max_gap       new segment
      back               (only if ew-seq skipped a number or delta > drift)

If it does not, a new segment starts at that frame; the old one is closed first, and its tail
comes out as a final window.
"""

from __future__ import annotations

from collections.abc import Iterator

from windowing.config import WindowSettings
from windowing.floor import NoiseFloor
from windowing.reorder import Offer, Reorder
from windowing.segment import Segment
from windowing.window import Cursor, Window, WindowStats
from windowing.wire import Frame

NO_FLOOR = -1


class Stream:
    """The state ``windowing/`` keeps for one stream id."""

    __slots__ = (
        "_floor_ts_ns",
        "_noise",
        "_settings",
        "_stats",
        "cursor",
        "id",
        "last_seen_s",
        "reorder",
        "segment",
    )

    def __init__(
        self, stream_id: str, settings: WindowSettings, stats: WindowStats, now_s: float
    ) -> None:
        self.id = stream_id
        self._settings, self._stats = settings, stats
        self.reorder = Reorder(settings.jitter_frames)
        self.segment: Segment | None = None
        self.cursor: Cursor | None = None
        self.last_seen_s = now_s
        self._floor_ts_ns = NO_FLOOR
        self._noise = NoiseFloor(settings.noise_floor_rise_db)

    def push(self, frame: Frame, out: list[Window]) -> None:
        """Take one frame; append the windows it completes to ``out``."""
        before = len(out)
        if frame.ts_ns < self._floor_ts_ns:
            self._stats.duplicates += 1
            return
        offer = self.reorder.offer(frame)
        if offer is Offer.IN_ORDER:
            self._accept(frame, out)
        else:
            self._reorder(offer, frame, out)
        if len(out) > before:
            self.cursor = out[-1].cursor

    def flush(self, out: list[Window]) -> None:
        """Give up every hole, emit everything, close the segment (idle, eviction, shutdown)."""
        before = len(out)
        self._accept_all(self.reorder.drain(), out)
        self._close(out)
        if len(out) > before:
            self.cursor = out[-1].cursor

    def _reorder(self, offer: Offer, frame: Frame, out: list[Window]) -> None:
        if offer is Offer.HELD:
            self._accept_all(self.reorder.ready(), out)
        elif offer is Offer.RESET:
            self._stats.seq_resets += 1
            self._accept_all(self.reorder.drain(), out)
            self.reorder.restart(frame)
            self._accept_all(self.reorder.ready(), out)
        elif offer is Offer.LATE:
            self._stats.late += 1
        else:
            self._stats.duplicates += 1

    def restore(self, cursor: Cursor) -> None:
        """Continue from ``cursor``: replayed frames before its anchor are dropped as duplicates."""
        self.reorder.resume(cursor.seq, cursor.ts_ns - 1)
        self._floor_ts_ns = cursor.ts_ns
        self._noise = NoiseFloor(self._settings.noise_floor_rise_db, cursor.noise_floor_dbfs)
        self.cursor = cursor
        if cursor.final:
            return
        fmt = (cursor.rate_hz, cursor.channels, cursor.fmt)
        self.segment = self._segment(
            cursor.segment_id,
            fmt,
            cursor.seq,
            cursor.ts_ns,
            next_index=cursor.window_index + 1,
            in_sample=cursor.in_sample,
        )

    def oldest_needed(self) -> object:
        positions = [p for p in self.reorder.held_positions() if p is not None]
        if self.segment is not None:
            positions.extend(p for p in self.segment.positions() if p is not None)
        return min(positions) if positions else None  # type: ignore[type-var]

    def held_bytes(self) -> int:
        ring = self.segment.held_bytes if self.segment is not None else 0
        return ring + self.reorder.held_bytes()

    def _accept_all(self, frames: Iterator[Frame], out: list[Window]) -> None:
        for frame in frames:
            self._accept(frame, out)

    def _accept(self, frame: Frame, out: list[Window]) -> None:
        self._floor_ts_ns = NO_FLOOR
        if self.segment is None or not self.segment.extend(frame, out):
            self._start(frame, out)
        if frame.eos:
            self._close(out)

    def _start(self, frame: Frame, out: list[Window]) -> None:
        """``frame`` does not continue the current segment: close it, start one at ``frame``."""
        self._close(out, frame)
        self._stats.segments_started += 1
        fmt = (frame.rate_hz, frame.channels, frame.fmt)
        self.segment = self._segment(frame.ts_ns, fmt, frame.seq, frame.ts_ns)
        self.segment.add(frame, 0, out)

    def _segment(
        self,
        segment_id: int,
        fmt: tuple[int, int, str],
        first_seq: int,
        first_ts_ns: int,
        *,
        next_index: int = 0,
        in_sample: int = 0,
    ) -> Segment:
        return Segment(
            self.id,
            segment_id,
            fmt,
            settings=self._settings,
            stats=self._stats,
            held=self.reorder.held_positions,
            floor=self._noise,
            first_seq=first_seq,
            first_ts_ns=first_ts_ns,
            next_index=next_index,
            in_sample=in_sample,
        )

    def _close(self, out: list[Window], next_frame: Frame | None = None) -> None:
        if self.segment is not None:
            self.segment.close(out, next_frame)
            self.segment = None
