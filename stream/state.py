"""The poll loop's bookkeeping, apart from its Kafka clients: what is held, pending, committed.

::

    AnalyzerState                       owner: the poll loop (stream/analyzer.py); not thread-safe
    ├── windower: Windower              streams being cut into windows (windowing/)
    ├── pending: PendingWindows         windows out of the windower, events not published yet
    ├── offsets: OffsetTracker          per partition: next to read, last committed
    ├── cursors: StreamCursors          per stream: partition, published cursor, last frame
    └── dead_letters: DeadLetters       per partition: dead-letter marks

Pure (no clients, no clocks of its own): the analyzer feeds it records, window outcomes and
times, and asks it what to commit, what to forget on a revocation, which idle streams to
retire, and how far behind real time it is. ``tests/stream/test_replay.py`` drives it through
every crash point.
"""

from __future__ import annotations

from stream.changelog import Restored
from stream.config import AnalyzerSettings
from stream.cursors import StreamCursors
from stream.deadletter import DeadLetters
from stream.offsets import OffsetTracker
from stream.pending import Pending, PendingWindows
from windowing import Windower
from windowing.window import Window


class AnalyzerState:
    """See the module docstring."""

    def __init__(self, settings: AnalyzerSettings) -> None:
        self.settings = settings
        self.windower = Windower(settings.windowing)
        self.pending = PendingWindows()
        self.offsets = OffsetTracker()
        self.cursors = StreamCursors()
        self.dead_letters = DeadLetters()
        self.committed: dict[int, int] = {}
        self.newest_ts_ns: dict[int, int] = {}
        """Per partition, the newest ew-ts read (for the behind-real-time signal)."""
        self.log_end: dict[int, int] = {}
        """Per partition, the log end (last stable offset) as librdkafka last reported it."""

    def seen(self, stream_id: str, partition: int, offset: int, ts_ns: int, now_s: float) -> None:
        """A decodable frame was read."""
        self.cursors.seen(stream_id, partition, offset, now_s)
        if ts_ns > self.newest_ts_ns.get(partition, 0):
            self.newest_ts_ns[partition] = ts_ns

    def committable(self) -> dict[int, int]:
        """Per partition, the offset a checkpoint may commit now (where it moved)."""
        holds = [*self.windower.oldest_needed().values(), *self.pending.holds()]
        return self.offsets.committable(holds)

    def checkpointed(self, offsets: dict[int, int]) -> None:
        """The checkpoint that wrote the cursors, tombstones, marks and ``offsets`` committed."""
        self.offsets.committed(offsets)
        self.committed.update(offsets)
        self.cursors.checkpointed()
        self.dead_letters.checkpointed()

    def restored(self, restored: Restored, partitions: list[int], now_s: float) -> list[Window]:
        """Cursors and marks of ``partitions`` read from the changelog; returns the windows of
        streams the windower had to flush to take them (``Windower.restore``)."""
        self.cursors.restored(restored.cursors, restored.partition_of, now_s)
        out: list[Window] = []
        for cursor in restored.cursors.values():
            out += self.windower.restore(cursor, now_s)
        for partition in partitions:
            self.dead_letters.restored(partition, restored.dead_lettered_below.get(partition, 0))
        return out

    def forget(self, partitions: list[int]) -> list[Pending]:
        """Drop all state of the partitions' streams; returns their pending windows (the
        unfinished ones are still in the engine, which should drop them)."""
        streams = self.cursors.streams_in(partitions)
        for stream_id in streams:
            self.windower.forget(stream_id)
        dropped = self.pending.forget(streams)
        self.cursors.forget(streams)
        self.offsets.forget(partitions)
        self.dead_letters.forget(partitions)
        for partition in partitions:
            self.committed.pop(partition, None)
            self.newest_ts_ns.pop(partition, None)
            self.log_end.pop(partition, None)
        return dropped

    def retire_idle(self, now_s: float) -> int:
        """Forget streams idle for ``cursor_retention_s`` whose frames are all committed
        (``stream/cursors.py``); their cursors are tombstoned at the next checkpoint."""
        busy = {s for s in self.cursors.partition_of if s in self.windower or s in self.pending}
        retired = self.cursors.retirable(
            self.committed, self.settings.kafka.cursor_retention_s, now_s, busy
        )
        for stream_id in retired:
            self.windower.forget(stream_id)
        self.cursors.retire(retired)
        return len(retired)

    def behind_s(self, now_ns: int) -> float:
        """How far behind real time: the age of the oldest window not yet published, or of
        the newest frame read on a partition that has unread frames, whichever is more."""
        ends = [self.pending.oldest_end_ns()]
        ends += [
            ts
            for p, ts in self.newest_ts_ns.items()
            if self.log_end.get(p, 0) > self.offsets.position(p)
        ]
        present = [end for end in ends if end is not None]
        return max(0.0, (now_ns - min(present)) / 1e9) if present else 0.0
