"""Fixtures for sinks tests; the helpers live in ``sinkutil``."""

from __future__ import annotations

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
