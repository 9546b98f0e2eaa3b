"""The alert runner's ``/healthz`` and ``/readyz`` (real loopback HTTP; the clock is moved, not
slept through)."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from earwitness.health import HealthServer, LoopHealth
from sinks import cli
from sinks.config import AlertsSettings
from sinks.metrics import AlertMetrics
from tests.support.http import http_status


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


# --- the edge: loopback by default, a bearer token on /metrics, bounded and timed out ------


def test_loopback_by_default() -> None:
    assert AlertsSettings(rules_path="rules.yaml").metrics_host == "127.0.0.1"


def test_metrics_need_the_bearer_token_when_one_is_set(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-metrics-token\n")
    settings = AlertsSettings(
        rules_path="rules.yaml", metrics_port=0, metrics_token_file=tmp_path / "token"
    )
    server = cli._http_server(settings, AlertMetrics(), LoopHealth(60.0))
    assert server is not None
    try:
        assert http_status(server.port, "/metrics") == 401
        assert http_status(server.port, "/metrics", "wrong") == 401
        assert http_status(server.port, "/metrics", "s3cret-metrics-token") == 200
        assert http_status(server.port, "/healthz") == 200  # the kubelet sends no token
    finally:
        server.stop()


def _closed_by_server(sock: socket.socket) -> bool:
    """True when the server closed the connection (EOF) within 30 s."""
    sock.settimeout(30)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, ConnectionResetError):
        return False


def test_idle_connections_time_out() -> None:
    server = HealthServer("127.0.0.1", 0, LoopHealth(60.0), AlertMetrics().registry, timeout_s=1)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as idle:
            assert _closed_by_server(idle)  # before: one thread held forever per idle client
    finally:
        server.stop()


def test_connections_are_bounded() -> None:
    health = LoopHealth(60.0)
    server = HealthServer("127.0.0.1", 0, health, AlertMetrics().registry, max_connections=2)
    server.start()
    try:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
        with socket.create_connection(("127.0.0.1", server.port)) as third:
            assert _closed_by_server(third)
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 30
        while _request_or_none(server.port) != 200:  # slots free again once the threads end
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        server.stop()


def _request_or_none(port: int) -> int | None:
    try:
        return http_status(port, "/healthz")
    except (urllib.error.URLError, ConnectionError):
        return None
