"""Live updates: committed changes fanned out to Server-Sent Events clients, resumable.

The SSE event id is ``<epoch>-<change id>``: the change id is the ``changes`` journal's row id
(console.schema), so it survives a console restart, and the epoch names the database file, so
a client of a rebuilt file is told to reload instead of being handed the wrong rows::

    reader thread ── Store.apply ── COMMIT ── Hub.publish(changes) ─┐ (call_soon_threadsafe)
                                                                   ▼
    event loop      Hub._fan_out: one message per view per batch ─► each client's queue ─► SSE

    client connects with Last-Event-ID (a blip: EventSource sends it) or ?since= (the id the
    page was rendered at) ─► subscribe first, then replay the journal after that id, then
    live; ids ≤ the last one sent are skipped, so nothing is lost or sent twice

A client whose queue overflows (a stalled tab) is dropped from fan-out and replays from the
journal; one further behind than ``sse_catch_up_rows`` (or than the journal keeps) gets a
``reset`` event and reloads the page. Owner: the web app (``console.web``); ``publish`` is the
one method other threads call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool

from console.metrics import ConsoleMetrics
from console.queries import Queries
from console.store import Change

logger = logging.getLogger(__name__)

CLOSE = (-1, "")
"""Put in a client's queue at shutdown: its stream ends cleanly (a complete HTTP response)."""
QUEUE_BATCHES = 1_000
"""Batches one client may fall behind before it replays from the journal instead."""
VIEWS = ("streams", "alerts", "stream")


@dataclass(frozen=True, slots=True)
class View:
    """What a page listens to: ``streams`` (every tile), ``alerts``, or one ``stream``."""

    name: str
    stream_id: str = ""

    def wants(self, kind: str, stream_id: str) -> bool:
        if self.name == "alerts":
            return kind != "window"
        if self.name == "stream":
            return stream_id == self.stream_id
        return True


@dataclass(eq=False)
class Subscriber:
    view: View
    queue: asyncio.Queue[tuple[int, str] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_BATCHES)
    )

    def offer(self, last_id: int, message: str) -> bool:
        """Queue one message; False (and a replay marker) when the client fell behind."""
        try:
            self.queue.put_nowait((last_id, message))
            return True
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return False

    def close(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(CLOSE)


def message(changes: Iterable[tuple[str, str, str]], view: View) -> str | None:
    """The JSON array of ``view``'s changes (``(kind, stream_id, data)``), None if none."""
    parts = [data for kind, stream_id, data in changes if view.wants(kind, stream_id)]
    return f"[{','.join(parts)}]" if parts else None


class Hub:
    """Fan-out to subscribers, on the event loop it is bound to."""

    def __init__(self, epoch: str, queries: Queries, metrics: ConsoleMetrics) -> None:
        self.epoch = epoch
        self._queries, self._metrics = queries, metrics
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[Subscriber] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, changes: Sequence[Change]) -> None:
        """Hand committed changes to the clients; thread-safe, never blocks."""
        if changes and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fan_out, changes)

    def _fan_out(self, changes: Sequence[Change]) -> None:
        last_id = changes[-1].id
        rows = [(c.kind, c.stream_id, c.data) for c in changes]
        rendered: dict[View, str | None] = {}
        for subscriber in list(self._subscribers):
            view = subscriber.view
            if view not in rendered:
                rendered[view] = message(rows, view)
            text = rendered[view]
            if text is not None and not subscriber.offer(last_id, text):
                logger.info("a live client fell behind; it replays from the journal")

    def event_id(self, change_id: int) -> str:
        return f"{self.epoch}-{change_id}"

    def parse_event_id(self, raw: str | None) -> int | None:
        """The change id in ``raw`` if it is of this database's epoch, else None."""
        epoch, _, number = (raw or "").rpartition("-")
        if epoch != self.epoch or not number.isdigit():
            return None
        return int(number)

    async def stream(
        self,
        view: View,
        last_event_id: str | None,
        catch_up_rows: int,
        shutdown: anyio.Event | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The SSE events of one client, from just after ``last_event_id``, until the client
        goes or ``shutdown`` is set (the server stops: the stream then ends cleanly)."""
        subscriber = Subscriber(view)
        self._subscribers.add(subscriber)
        self._metrics.live_clients.inc()
        closer = asyncio.create_task(_close_on(shutdown, subscriber), name="ew-sse-closer")
        try:
            after = self.parse_event_id(last_event_id)
            if after is None and last_event_id:
                yield self._reset("the database was rebuilt")
                return
            if after is None:
                after = await run_in_threadpool(self._queries.last_change_id)
            yield {"event": "ready", "id": self.event_id(after), "retry": 1000, "data": ""}
            async for event in self._follow(subscriber, after, catch_up_rows):
                yield event
        finally:
            closer.cancel()
            self._subscribers.discard(subscriber)
            self._metrics.live_clients.dec()

    async def _follow(
        self, subscriber: Subscriber, after: int, catch_up_rows: int
    ) -> AsyncIterator[dict[str, Any]]:
        sent = after
        while True:
            replay = await self._replay(subscriber.view, sent, catch_up_rows)
            if replay is None:
                yield self._reset("too far behind")
                return
            for event, last_id in replay:
                sent = last_id
                yield event
            while (item := await subscriber.queue.get()) is not None:
                if item is CLOSE:
                    return
                last_id, text = item
                if last_id > sent:
                    sent = last_id
                    self._metrics.live_messages.labels(subscriber.view.name).inc()
                    yield {"event": "changes", "id": self.event_id(last_id), "data": text}

    async def _replay(
        self, view: View, after: int, limit: int
    ) -> list[tuple[dict[str, Any], int]] | None:
        """Journal rows after ``after`` as events; None when they are no longer all there."""
        first = await run_in_threadpool(self._queries.first_change_id)
        rows = await run_in_threadpool(self._queries.changes_after, after, limit)
        if len(rows) >= limit or first > after + 1:  # trimmed: rows after ``after`` are gone
            return None
        if not rows:
            return []
        text = message(((r["kind"], r["stream_id"], r["data"]) for r in rows), view)
        last_id = int(rows[-1]["id"])
        if text is None:
            return [({"event": "ready", "id": self.event_id(last_id), "data": ""}, last_id)]
        return [({"event": "changes", "id": self.event_id(last_id), "data": text}, last_id)]

    def _reset(self, why: str) -> dict[str, Any]:
        self._metrics.live_resets.inc()
        return {"event": "reset", "data": why}


async def _close_on(shutdown: anyio.Event | None, subscriber: Subscriber) -> None:
    """Task ``ew-sse-closer`` (one per client, owned by its stream): waits for shutdown."""
    if shutdown is not None:
        await shutdown.wait()
        subscriber.close()
