"""Which streams live on which input partition, and each one's last *published* window.

The published cursor is what the changelog records at each checkpoint (in the changelog
partition equal to the stream's input partition); after a restart the replay picks up right
after it. Where a stream stands in the windower (its last *emitted* window) is the windower's
own business (``Windower.cursor``). Owned by the poll loop; not thread-safe. Memory: one small
cursor per stream seen on an assigned partition (dropped when the partition goes).
"""

from __future__ import annotations

from collections.abc import Iterable

from windowing.window import Cursor


class StreamCursors:
    def __init__(self) -> None:
        self.partition_of: dict[str, int] = {}
        self.published: dict[str, Cursor] = {}
        self._dirty: set[str] = set()

    def seen(self, stream_id: str, partition: int) -> None:
        self.partition_of[stream_id] = partition

    def restored(self, cursors: dict[str, Cursor], partition: int) -> None:
        """Cursors read from changelog partition ``partition`` (= the input partition)."""
        for stream_id, cursor in cursors.items():
            self.partition_of[stream_id] = partition
            self.published[stream_id] = cursor

    def on_published(self, cursor: Cursor) -> None:
        self.published[cursor.stream_id] = cursor
        self._dirty.add(cursor.stream_id)

    def streams_in(self, partitions: Iterable[int]) -> list[str]:
        wanted = set(partitions)
        return [s for s, p in self.partition_of.items() if p in wanted]

    def forget(self, stream_ids: Iterable[str]) -> None:
        for stream_id in stream_ids:
            self.partition_of.pop(stream_id, None)
            self.published.pop(stream_id, None)
            self._dirty.discard(stream_id)

    def changed(self) -> list[tuple[Cursor, int]]:
        """(cursor, partition) of each stream published since the last checkpoint."""
        return [
            (self.published[s], self.partition_of[s])
            for s in sorted(self._dirty)
            if s in self.published
        ]

    def checkpointed(self) -> None:
        self._dirty.clear()
