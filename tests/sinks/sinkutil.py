"""Helpers for sinks tests: caption events on a window grid, sample alerts, loopback HTTP."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from earwitness.events import AudioStats, CaptionEvent, EventKind, Timings, event_id, rfc3339
from sinks.alerts import Alert, AlertState
from sinks.rules import Severity

T0_NS = 1_763_700_000_000_000_000
WINDOW_S = 30
HOP_S = 10


def caption_event(
    index: int,
    caption: str | None,
    *,
    stream_id: str = "cam-12",
    kind: EventKind = EventKind.CAPTION,
    segment_id: int = T0_NS,
) -> CaptionEvent:
    """Window ``index`` on a 30 s / 10 s grid starting at ``segment_id``."""
    start = segment_id + index * HOP_S * 1_000_000_000
    end = start + WINDOW_S * 1_000_000_000
    return CaptionEvent(
        event_id=event_id(stream_id, segment_id, index, "main"),
        kind=kind,
        stream_id=stream_id,
        segment_id=segment_id,
        window_index=index,
        window_start_ns=start,
        window_end_ns=end,
        window_start=rfc3339(start),
        window_end=rfc3339(end),
        caption=caption if kind is EventKind.CAPTION else None,
        model="tiny",
        model_revision="main",
        audio=AudioStats(rms_dbfs=-30.0, peak_dbfs=-3.0, gap_fraction=0.0),
        skipped="load" if kind is EventKind.SHED else None,
        error="engine" if kind is EventKind.ERROR else None,
        timings=Timings(window_closed_ns=end, caption_produced_ns=end + 1_000_000),
    )


def sample_alert(state: AlertState = AlertState.FIRING, n: int = 0, **update: object) -> Alert:
    alert = Alert(
        alert_id=f"00000000-0000-5000-8000-{n:012d}",
        state=state,
        rule_id="glass-breaking",
        description="Glass breaking | \\ = test",
        severity=Severity.CRITICAL,
        stream_id="cam-12",
        labels={"team": "security"},
        started_ns=T0_NS,
        last_match_ns=T0_NS + 30_000_000_000,
        ended_ns=T0_NS + 90_000_000_000 if state is AlertState.RESOLVED else None,
        windows=3,
        matched=("glass breaking",),
        caption='A window shatters; "glass breaking" =\nthen silence | end \\',
        first_segment_id=T0_NS,
        first_window_index=0,
        last_event_id="e0",
    )
    return alert.model_copy(update=update) if update else alert


@dataclass
class Received:
    """One request a loopback receiver accepted."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1; ``status`` decides the reply (503 = outage)."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    status: int = 200
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    check: Callable[[Received], int | None] | None = None
    reply: Callable[[int], tuple[dict[str, str], bytes]] | None = None
    """Headers and body of the reply to call number n (1-based); default: no header, ``ok``."""

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def accepted(self) -> list[Received]:
        with self.lock:
            return list(self.received)


def handler(receiver_ref: list[Receiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = receiver_ref[0]
            length = int(self.headers.get("content-length", "0"))
            request = Received(
                self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
            )
            with receiver.lock:
                receiver.calls += 1
                status = receiver.status
                if status == 200 and receiver.check is not None:
                    status = receiver.check(request) or 200
                if status < 300:
                    receiver.received.append(request)
                headers, body = receiver.reply(receiver.calls) if receiver.reply else ({}, b"ok")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@contextlib.contextmanager
def serving() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 in its own thread, shut down on leaving."""
    ref: list[Receiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(ref))
    server.daemon_threads = True
    receiver = Receiver(server)
    ref.append(receiver)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="test-http-receiver", daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
