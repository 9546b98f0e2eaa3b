"""Windows between the windower and their published event: one entry each, all state in it.

A window enters when the windower emits it (:meth:`PendingWindows.add`), is *finished* when
its fate is known (silent, or the engine's outcome), and leaves when it is published. Events
of a stream go out in window order, so a finished window waits for the windows before it::

    emitted   #4 #5 #6 #7            (windower order, per stream)
    finished     #5    #7 #4 #6      (engine order, any)
    published          #4 #5 #6 #7   (released by finish(): #4 frees #5; #6 frees #7)

Publishing in order makes "the last published window" of a stream well defined: its cursor is
what the changelog records, and everything before it is out. Silent and shed windows take
their place in the order like any other.

Each :class:`Pending` entry holds the window (with its key and Kafka positions), the wall-clock
time it closed at, and its outcome, so :meth:`PendingWindows.forget` (a revoked partition, an
aborted transaction) drops everything about a window at once, and what it returns says what
the engine should stop working on. The lowest Kafka position of every entry holds the commit
back (``stream/offsets.py``). Owned by the poll loop; not thread-safe.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from stream.engine import Outcome
from stream.offsets import Position, WindowKey
from windowing.window import Window


@dataclass(slots=True, eq=False)
class Pending:
    """One window out of the windower whose event is not published yet."""

    window: Window
    closed_ns: int
    """Wall clock (Unix ns) when the windower emitted it: the start of end-to-end latency."""
    lowest: Position | None
    """The lowest Kafka position of its frames: commits stay below it until it is out."""
    outcome: Outcome | None = None
    """The engine's outcome; None for a window the engine never saw (silent, inactive)."""
    skipped: str = "silence"
    """Why a window the engine never saw skipped it (its silence event says so)."""
    finished: bool = False

    @property
    def key(self) -> WindowKey:
        return self.window.key


class PendingWindows:
    """Every pending window, per stream in emission order; see the module docstring."""

    def __init__(self) -> None:
        self._streams: dict[str, OrderedDict[WindowKey, Pending]] = {}

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._streams.values())

    def __contains__(self, stream_id: object) -> bool:
        """Whether the stream has windows not published yet."""
        return stream_id in self._streams

    def oldest_end_ns(self) -> int | None:
        """Stream time of the end of the oldest window not published yet (None: none)."""
        ends = [next(iter(queue.values())).window.end_ns for queue in self._streams.values()]
        return min(ends) if ends else None

    def add(self, window: Window, closed_ns: int) -> Pending:
        """A window left the windower; its event must wait for the windows before it."""
        positions = [p for p in window.positions if isinstance(p, tuple)]
        entry = Pending(window, closed_ns, min(positions) if positions else None)
        self._streams.setdefault(window.stream_id, OrderedDict())[entry.key] = entry
        return entry

    def finish(self, key: WindowKey, outcome: Outcome | None = None) -> list[Pending]:
        """Record a window's fate; return the stream's windows now publishable, in order.

        A window nobody expects (revoked, rewound, already out, finished twice) gives [].
        """
        queue = self._streams.get(key[0])
        entry = queue.get(key) if queue is not None else None
        if queue is None or entry is None or entry.finished:
            return []
        entry.outcome, entry.finished = outcome, True
        ready: list[Pending] = []
        while queue and next(iter(queue.values())).finished:
            ready.append(queue.popitem(last=False)[1])
        if not queue:
            del self._streams[key[0]]
        return ready

    def forget(self, stream_ids: Iterable[str]) -> list[Pending]:
        """Drop the streams' pending windows; returns them (unfinished ones are still in the
        engine, which should drop them too)."""
        return [entry for s in stream_ids for entry in self._streams.pop(s, {}).values()]

    def holds(self) -> Iterator[Position]:
        """The lowest position of each pending window (what the commit must stay below)."""
        for queue in self._streams.values():
            for entry in queue.values():
                if entry.lowest is not None:
                    yield entry.lowest
