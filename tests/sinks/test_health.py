"""The alert runner's ``/healthz`` and ``/readyz`` (real loopback HTTP; the clock is moved, not
slept through)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from earwitness.health import LoopHealth
from sinks import cli
from sinks.config import AlertsSettings
from sinks.metrics import AlertMetrics


@pytest.fixture
def served() -> Iterator[tuple[LoopHealth, int]]:
    settings = AlertsSettings(rules_path="rules.yaml", metrics_host="127.0.0.1", metrics_port=0)
    health = LoopHealth(settings.health_stall_s)
    server = cli._http_server(settings, AlertMetrics(), health)
    assert server is not None
    try:
        yield health, server.port
    finally:
        server.stop()


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().strip()


def test_ready_once_partitions_are_assigned(served: tuple[LoopHealth, int]) -> None:
    health, port = served
    assert _get(port, "/healthz") == (200, "ok")
    assert _get(port, "/readyz") == (503, "no partitions assigned")
    health.assigned = True  # what the runner sets once the state is restored
    assert _get(port, "/readyz") == (200, "ok")
    assert _get(port, "/metrics")[0] == 200
    assert _get(port, "/nope")[0] == 404


def test_a_stalled_poll_loop_fails_both_probes(served: tuple[LoopHealth, int]) -> None:
    health, port = served
    health.assigned = True
    health.heartbeat_s = time.monotonic() - health.stall_s - 5
    status, why = _get(port, "/healthz")
    assert status == 503 and why.startswith("poll loop stalled for")
    assert _get(port, "/readyz")[0] == 503
    health.beat()
    assert _get(port, "/healthz") == (200, "ok")


def test_no_port_no_server() -> None:
    settings = AlertsSettings(rules_path="rules.yaml", metrics_port=None)
    assert cli._http_server(settings, AlertMetrics(), LoopHealth(60.0)) is None
