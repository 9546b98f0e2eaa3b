"""``<component>.metricsToken``: the chart mounts the Secret's key as a file, the settings'
``metrics_token_file`` names it, the ServiceMonitor sends it, and the real server then lets
only that token read ``/metrics`` (the probes stay open)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from earwitness.config import load_settings
from earwitness.health import HealthServer, LoopHealth
from sinks import cli as alerts_cli
from sinks.config import AlertsSettings
from sinks.metrics import AlertMetrics
from stream import cli as analyzer_cli
from stream.config import AnalyzerSettings
from stream.metrics import AnalyzerMetrics
from stream.probes import Health
from tests.helm.chart import config_file, container, one, render, validate
from tests.support.http import http_status

pytestmark = pytest.mark.slow

SETS = (
    "serviceMonitor.enabled=true",
    "analyzer.metricsToken.existingSecret=analyzer-metrics",
    "analyzer.metricsToken.key=bearer",
    "alerts.metricsToken.existingSecret=alerts-metrics",
)
WORKLOADS = {"analyzer": "StatefulSet", "alerts": "Deployment"}


def _mounted_token(workload: dict[str, Any]) -> tuple[str, str, str]:
    """(file in the pod, Secret, key) of the metrics-token volume."""
    mount = next(m for m in container(workload)["volumeMounts"] if m["name"] == "metrics-token")
    volumes = workload["spec"]["template"]["spec"]["volumes"]
    secret = next(v for v in volumes if v["name"] == "metrics-token")["secret"]
    (item,) = secret["items"]
    return f"{mount['mountPath']}/{item['path']}", secret["secretName"], item["key"]


def _serve(component: str, config: Path) -> HealthServer:
    """The component's own server, from the settings file the chart rendered; started."""
    if component == "analyzer":
        http = load_settings(AnalyzerSettings, config).http
        local = http.model_copy(update={"host": "127.0.0.1", "port": 0})
        server = analyzer_cli.http_server(local, Health(stall_s=60), AnalyzerMetrics().registry)
        server.start()
        return server
    settings = load_settings(AlertsSettings, config).model_copy(
        update={"metrics_host": "127.0.0.1", "metrics_port": 0}
    )
    started = alerts_cli._http_server(settings, AlertMetrics(), LoopHealth(60.0))
    assert started is not None
    return started


@pytest.mark.parametrize("component", ["analyzer", "alerts"])
def test_the_mounted_token_guards_metrics_and_the_service_monitor_sends_it(
    component: str, tmp_path: Path
) -> None:
    docs = render(None, *SETS)
    for doc in docs:
        validate(doc)
    in_pod, secret, key = _mounted_token(one(docs, WORKLOADS[component], component))
    monitor = one(docs, "ServiceMonitor", component)["spec"]["endpoints"][0]
    assert monitor["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": secret, "key": key},
    }
    assert (secret, key) == (
        ("analyzer-metrics", "bearer") if component == "analyzer" else ("alerts-metrics", "token")
    )
    data = config_file(docs, component, f"{component}.yaml")
    section = data["http"] if component == "analyzer" else data
    assert section["metrics_token_file"] == in_pod
    assert "metrics_token" not in section  # never the value in a ConfigMap
    (tmp_path / "token").write_text("t0ken-from-the-secret\n")  # the kubelet's copy of the key
    section["metrics_token_file"] = str(tmp_path / "token")
    if component == "alerts":
        data["rules_path"] = str(tmp_path / "rules.yaml")
    config = tmp_path / f"{component}.yaml"
    config.write_text(yaml.safe_dump(data))
    server = _serve(component, config)
    try:
        assert http_status(server.port, "/metrics") == 401
        assert http_status(server.port, "/metrics", "t0ken-from-the-secret") == 200
    finally:
        server.stop()


def test_no_token_by_default() -> None:
    docs = render(None, "serviceMonitor.enabled=true")
    for component, kind in WORKLOADS.items():
        workload = one(docs, kind, component)
        assert "metrics-token" not in {m["name"] for m in container(workload)["volumeMounts"]}
        assert "authorization" not in one(docs, "ServiceMonitor", component)["spec"]["endpoints"][0]
