"""The facade the analyzer drives: frames in, windows out, for many streams at once.

Not thread-safe: one owner (the analyzer's poll loop) calls every method. Nothing here blocks
or does I/O; time comes in as ``now_s`` (monotonic wall clock), only for idle tracking.

Each stream remembers when it last got a frame (``now_s`` of that push)::

    now_s ──────────────────────────────────────────────────►
    s7  ▮▮▮▮▮▮▮▮ ......... idle_timeout_s .........│ tick(): tail flushed, stream forgotten
    s2  ▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮  still active
    new stream at max_streams: the least recently active one is flushed and forgotten first

``tick`` looks at every stream: call it every 0.1-1 s, not per frame.

A stream the windower lets go (idle, evicted) leaves its last cursor behind, *parked*: when
its next frame comes it continues from there (late frames of a closed segment stay dropped as
duplicates). ``restore`` parks a cursor the same way (one read from the analyzer's changelog),
so every stream's position lives here, held or parked. ``forget`` drops both.
"""

from __future__ import annotations

import logging

from windowing.config import WindowSettings
from windowing.stream import Stream
from windowing.window import Cursor, Window, WindowStats
from windowing.wire import Frame

logger = logging.getLogger(__name__)


class Windower:
    """Reassembles every stream's frames into overlapping windows.

    ``push`` and ``tick`` return the windows that completed, in order per stream. Read
    ``stats`` for counters, ``oldest_needed()`` before committing offsets, and each window's
    ``cursor`` (or ``cursor(stream_id)``) for exactly-once restarts via ``restore``.
    """

    def __init__(self, settings: WindowSettings | None = None) -> None:
        self.settings = settings or WindowSettings()
        self.stats = WindowStats()
        self._streams: dict[str, Stream] = {}
        self._parked: dict[str, Cursor] = {}
        """Streams not held now: the cursor to continue from when their next frame comes."""

    def __len__(self) -> int:
        """Streams held now."""
        return len(self._streams)

    def __contains__(self, stream_id: object) -> bool:
        """Whether the stream is held now (not yet seen, or evicted, if not)."""
        return stream_id in self._streams

    def push(self, frame: Frame, now_s: float) -> list[Window]:
        """Take one decoded frame; return the windows it completed (maybe of an evicted stream)."""
        out: list[Window] = []
        self.stats.frames += 1
        stream = self._streams.get(frame.stream_id)
        if stream is None:
            stream = self._open(frame.stream_id, now_s, out)
        stream.last_seen_s = now_s
        stream.push(frame, out)
        return out

    def tick(self, now_s: float) -> list[Window]:
        """Flush and forget streams idle for ``idle_timeout_s``; return their final windows."""
        out: list[Window] = []
        deadline = now_s - self.settings.idle_timeout_s
        idle = [stream for stream in self._streams.values() if stream.last_seen_s <= deadline]
        for stream in idle:
            self._evict(stream, out)
            self.stats.streams_evicted_idle += 1
        return out

    def flush_all(self) -> list[Window]:
        """Shutdown: every stream's held audio comes out; all state is forgotten."""
        out: list[Window] = []
        while self._streams:
            self._evict(next(iter(self._streams.values())), out)
        return out

    def oldest_needed(self) -> dict[str, object]:
        """Per stream, the lowest position a window not yet emitted still needs.

        Streams that need nothing are absent. The analyzer commits, per partition, the minimum
        over its streams (and its own in-flight windows); ``None`` positions are ignored.
        """
        needed = {}
        for stream_id, stream in self._streams.items():
            position = stream.oldest_needed()
            if position is not None:
                needed[stream_id] = position
        return needed

    def cursor(self, stream_id: str) -> Cursor | None:
        """The cursor of the stream's last emitted window (or of its restore), if any."""
        stream = self._streams.get(stream_id)
        return self._parked.get(stream_id) if stream is None else stream.cursor

    def restore(self, cursor: Cursor, now_s: float) -> list[Window]:
        """Before replaying: resume ``cursor.stream_id`` right after the window it names.

        Frames older than the cursor's anchor are dropped as duplicates; the anchor frame
        continues the segment on the same grid, so windows up to ``cursor.window_index`` are
        never emitted again. Call it before the stream's first replayed frame; the cursor is
        parked until that frame comes. Returns the windows of the stream if it was held (it is
        flushed first), like ``push``.
        """
        out: list[Window] = []
        held = self._streams.get(cursor.stream_id)
        if held is not None:
            self._evict(held, out)
        self._parked[cursor.stream_id] = cursor
        return out

    def forget(self, stream_id: str) -> bool:
        """Drop a stream's state (held and parked) without emitting anything; True if held.

        For a partition revoked or a transaction aborted: the stream's frames will be replayed
        from the committed offset (here or by another consumer), starting from its cursor.
        """
        self._parked.pop(stream_id, None)
        return self._streams.pop(stream_id, None) is not None

    def held_bytes(self) -> int:
        """Bytes of audio held for all streams (rings and jitter buffers)."""
        return sum(stream.held_bytes() for stream in self._streams.values())

    def _open(self, stream_id: str, now_s: float, out: list[Window]) -> Stream:
        """A stream not held: make room under max_streams, continue it from its parked cursor."""
        while len(self._streams) >= self.settings.max_streams:
            victim = min(self._streams.values(), key=lambda stream: stream.last_seen_s)
            logger.info("evicting stream %s to stay under max_streams", victim.id)
            self._evict(victim, out)
            self.stats.streams_evicted_lru += 1
        stream = self._streams[stream_id] = Stream(stream_id, self.settings, self.stats, now_s)
        parked = self._parked.pop(stream_id, None)
        if parked is not None:
            stream.restore(parked)
        return stream

    def _evict(self, stream: Stream, out: list[Window]) -> None:
        stream.flush(out)
        del self._streams[stream.id]
        if stream.cursor is not None:
            self._parked[stream.id] = stream.cursor
