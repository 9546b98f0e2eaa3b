"""Fixtures for sinks tests; the helpers live in ``sinkutil`` and ``tests/support/delivery.py``."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from tests.sinks.sinkutil import Receiver, serving


@pytest.fixture
def http_receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 in its own thread, shut down after the test."""
    with serving() as receiver:
        yield receiver


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {
        "captions": new_topic(partitions=2),
        "state": new_topic(config={"cleanup.policy": "compact"}),
        "dlq": new_topic(),
    }


@pytest.fixture
def udp_socket() -> Iterator[socket.socket]:
    """A UDP socket bound to 127.0.0.1 (a syslog collector), 5 s receive timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock
