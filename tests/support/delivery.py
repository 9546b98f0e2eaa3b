"""Alert delivery in tests: receiver settings, a running dispatcher, and the receiving side of
each protocol written independently of ``sinks`` (Standard Webhooks verification, octet-counted
syslog frames; the TLS syslog collector is in ``tests.support.tls``)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sinks.alerts import Alert
from sinks.config import AlertsSettings
from sinks.delivery import Dispatcher
from sinks.jobs import DeadLetter, Job, Ticket
from sinks.metrics import AlertMetrics
from sinks.receivers import Receiver
from sinks.rules import parse_rules
from sinks.senders import build_sender
from tests.sinks.sinkutil import Received

KEY = b"k" * 32
SECRET = "whsec_" + base64.b64encode(KEY).decode()
FAST = {"timeout_s": 2.0, "max_attempts": 50, "backoff_initial_s": 0.02, "backoff_max_s": 0.2}
"""Retries fast enough for a test: 20-200 ms apart, 50 attempts."""
RULES = parse_rules({"rules": [{"id": "glass-breaking", "match": {"any": ["glass"]}}]})


def secret_of(key: bytes) -> str:
    """A ``whsec_`` signing secret for ``key``."""
    return "whsec_" + base64.b64encode(key).decode()


def receivers_of(**raw: dict[str, Any]) -> dict[str, Receiver]:
    """Receiver settings, validated as the alert runner's settings file would be."""
    return AlertsSettings(rules_path=Path("x"), receivers=raw).receivers


def webhook(url: str, **extra: Any) -> dict[str, Receiver]:
    """One signed webhook receiver, ``ops``, with the fast retry policy unless ``extra`` says."""
    hook = {"type": "webhook", "url": url, "secret": SECRET, "retry": FAST}
    return receivers_of(ops=hook | extra)


def start_dispatcher(receivers: dict[str, Receiver]) -> tuple[Dispatcher, AlertMetrics]:
    """A started dispatcher with a real sender per receiver; the caller stops it."""
    metrics = AlertMetrics()
    senders = {n: build_sender(r, "localhost:1") for n, r in receivers.items()}
    dispatcher = Dispatcher(receivers, senders, RULES, metrics)
    dispatcher.start()
    return dispatcher, metrics


@contextlib.contextmanager
def dispatching(receivers: dict[str, Receiver]) -> Iterator[tuple[Dispatcher, AlertMetrics]]:
    """``start_dispatcher``, stopped on leaving."""
    dispatcher, metrics = start_dispatcher(receivers)
    try:
        yield dispatcher, metrics
    finally:
        dispatcher.stop()


def deliver(receivers: dict[str, Receiver], alerts: list[Alert], wait_s: float = 10) -> Ticket:
    """Every alert to every receiver its rule routes it to; the settled ticket."""
    with dispatching(receivers) as (dispatcher, _):
        ticket = dispatcher.dispatch([(a, n) for a in alerts for n in dispatcher.route(a)])
        assert ticket.wait(wait_s)
        return ticket


def settle(
    dispatcher: Dispatcher, count: int, timeout_s: float = 30
) -> list[tuple[Job, DeadLetter | None]]:
    """Parked jobs as they settle, until ``count`` of them or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    settled: list[tuple[Job, DeadLetter | None]] = []
    while len(settled) < count and time.monotonic() < deadline:
        settled += dispatcher.take_settled()
        time.sleep(0.05)
    return settled


def wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def verify_webhook(request: Received) -> int | None:
    """The receiver's side of Standard Webhooks, written independently of sinks.formats:
    None (accept) for a fresh request signed with KEY, else 401."""
    headers = request.headers
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request.body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    offered = [s.removeprefix("v1,") for s in headers["webhook-signature"].split()]
    ok = any(hmac.compare_digest(expected, s) for s in offered)
    fresh = abs(time.time() - int(headers["webhook-timestamp"])) < 300
    return None if ok and fresh else 401


def octet_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """RFC 6587 octet counting (``LEN SP MSG``): the whole frames of ``buffer``, and the rest."""
    frames = []
    while b" " in buffer:
        length_text, rest = buffer.split(b" ", 1)
        length = int(length_text)
        if len(rest) < length:
            break
        frames.append(rest[:length])
        buffer = rest[length:]
    return frames, buffer


def read_octet_frames(conn: socket.socket, count: int) -> list[bytes]:
    """``count`` octet-counted frames from ``conn``."""
    buffer, frames = b"", []
    while len(frames) < count:
        chunk = conn.recv(65535)
        assert chunk, "connection closed early"
        found, buffer = octet_frames(buffer + chunk)
        frames += found
    return frames


def tls_syslog(port: int, ca: Path, **extra: Any) -> dict[str, Receiver]:
    """One syslog-over-TLS receiver, ``siem``, on 127.0.0.1:``port`` trusting ``ca``."""
    hook = {"type": "syslog", "host": "127.0.0.1", "port": port, "transport": "tls"}
    return receivers_of(siem={**hook, "ca_file": str(ca), "retry": FAST, **extra})
