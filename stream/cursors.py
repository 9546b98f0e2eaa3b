"""Which streams live on which input partition, and where each stands.

Two cursors per stream::

    emitted    the last window out of the windower    → restores the stream when it reopens
    published  the last window whose event is out     → written to the changelog at checkpoint

After a restart both start from the changelog (the published cursor), which is exactly where the
replay must pick up. Owned by the poll loop; not thread-safe. Memory: one small cursor per
stream ever seen on an assigned partition (dropped when the partition goes).
"""

from __future__ import annotations

from collections.abc import Iterable

from windowing.window import Cursor


class StreamCursors:
    def __init__(self) -> None:
        self.partition_of: dict[str, int] = {}
        self.emitted: dict[str, Cursor] = {}
        self.published: dict[str, Cursor] = {}
        self.dirty: set[str] = set()

    def seen(self, stream_id: str, partition: int) -> None:
        self.partition_of[stream_id] = partition

    def restored(self, cursors: dict[str, Cursor], partition: int) -> None:
        """Cursors read from changelog partition ``partition`` (= the input partition)."""
        for stream_id, cursor in cursors.items():
            self.partition_of[stream_id] = partition
            self.emitted[stream_id] = self.published[stream_id] = cursor

    def on_emitted(self, cursor: Cursor) -> None:
        self.emitted[cursor.stream_id] = cursor

    def on_published(self, cursor: Cursor) -> None:
        self.published[cursor.stream_id] = cursor
        self.dirty.add(cursor.stream_id)

    def streams_in(self, partitions: Iterable[int]) -> list[str]:
        wanted = set(partitions)
        return [s for s, p in self.partition_of.items() if p in wanted]

    def forget(self, stream_ids: Iterable[str]) -> None:
        for stream_id in stream_ids:
            self.partition_of.pop(stream_id, None)
            self.emitted.pop(stream_id, None)
            self.published.pop(stream_id, None)
            self.dirty.discard(stream_id)

    def take_dirty(self) -> list[Cursor]:
        """Published cursors changed since the last checkpoint (cleared by ``checkpointed``)."""
        return [self.published[s] for s in sorted(self.dirty) if s in self.published]

    def checkpointed(self) -> None:
        self.dirty.clear()
