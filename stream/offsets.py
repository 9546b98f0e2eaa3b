"""What may be committed: per partition, the lowest offset that unfinished work still needs.

::

    partition p  offsets ─────────────────────────────────────────────────────►
                 [done]│ frames held by the windower for windows not yet out │
                       │    windows in the engine, not yet published │        │
                       ▲                                                      ▲
                 commit = min(oldest needed)                  consumed (next offset)

A frame is needed until every window that uses it is published; a restart replays from the
committed offset, so at most the audio of one window per stream is read twice and nothing
acknowledged is lost. Positions are ``(partition, offset)`` tuples. The holds come from the
windower (``Windower.oldest_needed``) and from the windows not yet published
(``stream/pending.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Position = tuple[int, int]
WindowKey = tuple[str, int, int]


class OffsetTracker:
    """Owned by the poll loop; not thread-safe."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}
        self._committed: dict[int, int] = {}

    def consumed(self, partition: int, offset: int) -> None:
        """A record was read; without other holds, everything up to it may be committed."""
        if offset >= self._next.get(partition, 0):
            self._next[partition] = offset + 1

    def position(self, partition: int) -> int:
        """The next offset to read on ``partition`` (0 before any record)."""
        return self._next.get(partition, 0)

    def committable(self, holds: Iterable[object]) -> dict[int, int]:
        """Per partition, the offset to commit now, where it moved since the last commit.

        ``holds`` are the positions unfinished work still needs; anything else (``None``) is
        ignored.
        """
        floor = dict(self._next)
        for partition, offset in _positions(holds):
            if partition in floor and offset < floor[partition]:
                floor[partition] = offset
        return {p: o for p, o in floor.items() if self._committed.get(p) != o}

    def committed(self, offsets: Mapping[int, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: their positions are no longer this process's to commit."""
        gone = set(partitions)
        for partition in gone:
            self._next.pop(partition, None)
            self._committed.pop(partition, None)


def _positions(holds: Iterable[object]) -> Iterable[Position]:
    for position in holds:
        if isinstance(position, tuple):
            yield position
