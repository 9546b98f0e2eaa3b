"""Per-stream publication order: a window's event goes out only after its predecessors'.

::

    emitted   #4 #5 #6 #7            (windower order, per stream)
    finished     #5    #7 #4 #6      (engine order, any)
    published          #4 #5 #6 #7   (released by finish(): #4 frees #5; #6 frees #7)

Publishing in order makes "the last published window" of a stream well defined: its cursor is
what the changelog records, and everything before it is out. Silent and shed windows take
their place in the order like any other.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Generic, TypeVar

from stream.offsets import WindowKey

T = TypeVar("T")


class InOrder(Generic[T]):
    """Owned by the poll loop. ``T`` is whatever the caller publishes (an outcome)."""

    def __init__(self) -> None:
        self._queues: dict[str, OrderedDict[WindowKey, T | None]] = {}

    def expect(self, key: WindowKey) -> None:
        """A window left the windower; its result must wait for the windows before it."""
        self._queues.setdefault(key[0], OrderedDict())[key] = None

    def finish(self, key: WindowKey, item: T) -> list[T]:
        """Record a result; return the stream's results now publishable, in order.

        A result for a window nobody expects (revoked, rewound, already out) is dropped: [].
        """
        queue = self._queues.get(key[0])
        if queue is None or key not in queue or queue[key] is not None:
            return []
        queue[key] = item
        ready: list[T] = []
        while queue and next(iter(queue.values())) is not None:
            ready.append(queue.popitem(last=False)[1])  # type: ignore[arg-type]
        if not queue:
            del self._queues[key[0]]
        return ready

    def forget(self, stream_ids: Iterable[str]) -> int:
        """Drop the streams' waiting windows; returns how many were dropped."""
        return sum(len(self._queues.pop(s, ())) for s in stream_ids)

    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())
