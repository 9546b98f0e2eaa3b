"""Fixtures for sinks tests; the helpers live in ``sinkutil``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.sinks.sinkutil import Receiver, handler


@pytest.fixture
def http_receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 in its own thread, shut down after the test."""
    ref: list[Receiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(ref))
    server.daemon_threads = True
    receiver = Receiver(server)
    ref.append(receiver)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="test-http-receiver", daemon=True
    )
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {
        "captions": new_topic(partitions=2),
        "state": new_topic(config={"cleanup.policy": "compact"}),
        "dlq": new_topic(),
    }
