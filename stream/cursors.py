"""Which streams live on which input partition, and each one's last *published* window.

The published cursor is what the changelog records at each checkpoint (in the changelog
partition equal to the stream's input partition); after a restart the replay picks up right
after it. Where a stream stands in the windower (its last *emitted* window) is the windower's
own business (``Windower.cursor``). Owned by the poll loop; not thread-safe.

Memory stays bounded by the streams that are alive: a stream idle for ``cursor_retention_s``
whose every frame is below the committed offset is *retired* (:meth:`retire`): no replay can
read its frames again, so its state is dropped and its changelog cursor tombstoned. Should it
come back, its next frame starts a new segment, as after any idle close.
"""

from __future__ import annotations

from collections.abc import Container, Iterable

from windowing.window import Cursor


class StreamCursors:
    def __init__(self) -> None:
        self.partition_of: dict[str, int] = {}
        self.published: dict[str, Cursor] = {}
        self.last_offset: dict[str, int] = {}
        """Offset of each stream's newest frame read (-1: none since its cursor was restored)."""
        self.last_seen_s: dict[str, float] = {}
        self._dirty: set[str] = set()
        self._retired: dict[str, int] = {}

    def seen(self, stream_id: str, partition: int, offset: int, now_s: float) -> None:
        self.partition_of[stream_id] = partition
        self.last_offset[stream_id] = offset
        self.last_seen_s[stream_id] = now_s

    def restored(
        self, cursors: dict[str, Cursor], partition_of: dict[str, int], now_s: float = 0.0
    ) -> None:
        """Cursors read from the changelog, with the partition each was read from (= the
        stream's input partition)."""
        for stream_id, cursor in cursors.items():
            self.partition_of[stream_id] = partition_of[stream_id]
            self.published[stream_id] = cursor
            self.last_offset.setdefault(stream_id, -1)
            self.last_seen_s.setdefault(stream_id, now_s)

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
            self.last_offset.pop(stream_id, None)
            self.last_seen_s.pop(stream_id, None)
            self._dirty.discard(stream_id)
            self._retired.pop(stream_id, None)

    def retirable(
        self, committed: dict[int, int], idle_s: float, now_s: float, busy: Container[str]
    ) -> list[str]:
        """Streams idle for ``idle_s`` whose frames are all below the committed offsets, and
        not in ``busy`` (held by the windower, or with windows not yet published)."""
        return [
            stream_id
            for stream_id, offset in self.last_offset.items()
            if now_s - self.last_seen_s[stream_id] >= idle_s
            and offset < committed.get(self.partition_of[stream_id], -1)
            and stream_id not in busy
            and stream_id not in self._dirty
        ]

    def retire(self, stream_ids: Iterable[str]) -> None:
        """Forget the streams; their changelog cursors are tombstoned at the next checkpoint."""
        for stream_id in list(stream_ids):
            partition = self.partition_of.get(stream_id)
            self.forget([stream_id])
            if partition is not None:
                self._retired[stream_id] = partition

    def tombstones(self) -> list[tuple[str, int]]:
        """(stream id, partition) of the cursors to delete from the changelog."""
        return sorted(self._retired.items())

    def changed(self) -> list[tuple[Cursor, int]]:
        """(cursor, partition) of each stream published since the last checkpoint."""
        return [
            (self.published[s], self.partition_of[s])
            for s in sorted(self._dirty)
            if s in self.published
        ]

    def checkpointed(self) -> None:
        self._dirty.clear()
        self._retired.clear()
