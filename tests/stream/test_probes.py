"""The analyzer's probes (``stream/probes.py``): a stuck engine fails readiness, then liveness;
``/metrics`` behind ``http.metrics_token`` on the real HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from earwitness.config import load_settings
from earwitness.errors import ConfigError
from stream.cli import http_server
from stream.config import AnalyzerSettings, HttpSettings
from stream.metrics import AnalyzerMetrics
from stream.probes import Health
from tests.support.http import http_status


def test_a_stuck_engine_fails_readiness_then_liveness() -> None:
    health = Health(stall_s=60, engine_unready_s=120, engine_unhealthy_s=300)
    health.engine_warm, health.assigned = True, True
    stalled = [0.0]
    health.engine_stalled_s = lambda: stalled[0]
    assert health.ready() == (True, "ok") and health.healthy() == (True, "ok")
    stalled[0] = 121.0
    assert health.ready() == (False, "engine stalled: no caption for 121 s")
    assert health.healthy() == (True, "ok")
    stalled[0] = 301.0
    assert health.healthy() == (False, "engine stuck: no caption for 301 s")


def test_a_warming_engine_is_alive_but_not_ready() -> None:
    health = Health(stall_s=60, engine_unready_s=1, engine_unhealthy_s=1)
    health.engine_stalled_s = lambda: 1000.0  # ignored until warm
    assert health.healthy() == (True, "engine warming up")
    assert health.ready() == (False, "engine warming up")


# --- /metrics behind a bearer token (http.metrics_token), on the real HTTP server ----------


@contextmanager
def _served(settings: AnalyzerSettings) -> Iterator[int]:
    server = http_server(settings.http, Health(stall_s=60), AnalyzerMetrics().registry)
    server.start()
    try:
        yield server.port
    finally:
        server.stop()


def test_metrics_need_the_token_from_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "metrics-token").write_text("an4lyzer-metrics-token\n")
    config = tmp_path / "analyzer.yaml"
    config.write_text("http: {host: 127.0.0.1, port: 0, metrics_token_file: metrics-token}\n")
    settings = load_settings(AnalyzerSettings, config)  # the file's path is relative to it
    assert "an4lyzer" not in repr(settings)
    with _served(settings) as port:
        assert http_status(port, "/metrics") == 401
        assert http_status(port, "/metrics", "wrong") == 401
        assert http_status(port, "/metrics", "an4lyzer-metrics-token") == 200
        assert http_status(port, "/healthz") == 200  # the kubelet sends no token
        assert http_status(port, "/readyz") == 503  # open too: not ready, not 401


def test_the_environment_sets_the_token_and_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "metrics-token").write_text("from-the-file")
    config = tmp_path / "analyzer.yaml"
    config.write_text("http: {host: 127.0.0.1, port: 0, metrics_token_file: metrics-token}\n")
    monkeypatch.setenv("EARWITNESS_ANALYZER_HTTP__METRICS_TOKEN", "from-the-env")
    with _served(load_settings(AnalyzerSettings, config)) as port:
        assert http_status(port, "/metrics", "from-the-file") == 401
        assert http_status(port, "/metrics", "from-the-env") == 200


def test_no_token_no_auth_and_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with _served(AnalyzerSettings(http=HttpSettings(host="127.0.0.1", port=0))) as port:
        assert http_status(port, "/metrics") == 200
    config = tmp_path / "analyzer.yaml"
    config.write_text("http: {metrics_token_file: missing}\n")
    with pytest.raises(ConfigError, match="metrics_token_file: cannot read"):
        load_settings(AnalyzerSettings, config)
