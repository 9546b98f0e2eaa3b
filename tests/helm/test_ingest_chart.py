"""The chart's ingest Deployment, rendered offline, checked against the code: its settings file
loads as ``IngestSettings`` (with the pod's env and the mounted password files), its probes
are served by the real ``earwitness ingest`` HTTP server, its secrets are only references, and
a sources change does not roll the pod (the process reloads the mounted file itself)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from earwitness.config import load_settings
from earwitness.health import HealthServer
from ingest.config import IngestSettings, SourceSettings
from ingest.metrics import IngestMetrics
from ingest.service import Health
from tests.helm.chart import (
    CHART,
    CI_VALUES,
    HelmError,
    config_file,
    container,
    env_to_settings,
    find,
    one,
    render,
    secret_keys,
    unknown_keys,
)
from tests.helm.test_chart import _get

pytestmark = pytest.mark.slow

INGEST_VALUES = CHART / "ci" / "ingest-values.yaml"
VALUES = pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name.removesuffix(".yaml"))


def _ingest_docs() -> list[dict]:
    return render(INGEST_VALUES)


def test_off_by_default_and_on_in_its_values_file() -> None:
    for values in CI_VALUES:
        docs = render(values)
        enabled = bool(find(docs, "Deployment", "ingest"))
        assert enabled == (values == INGEST_VALUES), values.name


def test_settings_file_and_env_are_ingest_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = _ingest_docs()
    data = config_file(docs, "ingest", "ingest.yaml")
    assert unknown_keys(IngestSettings, data) == []
    assert secret_keys(IngestSettings, data) == []
    dep = one(docs, "Deployment", "ingest")
    for name in list(os.environ):
        if name.upper().startswith("EARWITNESS_"):
            monkeypatch.delenv(name)
    for env in container(dep).get("env", []):
        assert env["name"].startswith("EARWITNESS_")
        assert unknown_keys(IngestSettings, env_to_settings(env["name"])) == [], env["name"]
        assert "secretKeyRef" in env["valueFrom"]
        monkeypatch.setenv(env["name"], "from-a-secret")
    mounted = _mounted_files(dep)
    for source in data["sources"]:
        if "password_file" in source:
            assert source["password_file"] in mounted, source["stream_id"]
            local = tmp_path / source["stream_id"]
            local.write_text("camera-password")
            source["password_file"] = str(local)
    (tmp_path / "ingest.yaml").write_text(yaml.safe_dump(data))
    settings = load_settings(IngestSettings, tmp_path / "ingest.yaml")
    assert [s.stream_id for s in settings.sources] == ["lobby", "dock-3", "gate", "radio-1"]
    assert settings.sources[0].password().get_secret_value() == "camera-password"  # type: ignore[union-attr]
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.frames_topic == "earwitness.frames"
    assert settings.http.host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container(dep)["ports"]}
    assert settings.http.port == ports["metrics"] == 9510
    (svc_port,) = one(docs, "Service", "ingest")["spec"]["ports"]
    assert svc_port["port"] == 9510 and svc_port["targetPort"] == "metrics"
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.stop_timeout_s


def _mounted_files(dep: dict) -> set[str]:
    spec = dep["spec"]["template"]["spec"]
    files = set()
    for mount in container(dep)["volumeMounts"]:
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        for source in volume.get("projected", {}).get("sources", []):
            for item in source["secret"]["items"]:
                files.add(f"{mount['mountPath']}/{item['path']}")
    return files


def test_the_config_folder_is_mounted_whole_so_edits_reach_the_pod() -> None:
    dep = one(_ingest_docs(), "Deployment", "ingest")
    mount = next(m for m in container(dep)["volumeMounts"] if m["name"] == "config")
    assert "subPath" not in mount and mount["mountPath"] == "/etc/earwitness"
    assert container(dep)["args"][-2:] == ["--config", "/etc/earwitness/ingest.yaml"]


def test_a_sources_change_does_not_roll_the_pod_a_settings_change_does() -> None:
    def checksum(*sets: str) -> str:
        dep = one(render(INGEST_VALUES, *sets), "Deployment", "ingest")
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = checksum()
    assert checksum("ingest.sources[0].stall_s=30") == base
    assert checksum("ingest.settings.reload_poll_s=3") != base


def test_probes_and_metrics_are_served_by_the_ingest_server() -> None:
    docs = _ingest_docs()
    c = container(one(docs, "Deployment", "ingest"))
    paths = {c["livenessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["path"]}
    for monitor in find(docs, "ServiceMonitor", "ingest"):
        paths |= {e["path"] for e in monitor["spec"]["endpoints"]}
    assert paths == {"/healthz", "/readyz", "/metrics"}
    health = Health(stall_s=60)
    server = HealthServer("127.0.0.1", 0, health, IngestMetrics().registry)
    server.start()
    try:
        assert _get(server.port, "/readyz") == 503, "not ready before Kafka answered"
        health.publisher = _Reachable()  # type: ignore[assignment]
        for path in sorted(paths):
            assert _get(server.port, path) == 200, path
        assert _get(server.port, "/nope") == 404
    finally:
        server.stop()


class _Reachable:
    """What the probes read of the publisher, in its ready state (a seam, not a fake Kafka)."""

    reachable = True

    def alive(self) -> bool:
        return True


def test_no_secrets_inline_and_locked_down() -> None:
    docs = _ingest_docs()
    assert find(docs, "Secret") == []
    dep = one(docs, "Deployment", "ingest")
    spec, c = dep["spec"]["template"]["spec"], container(dep)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    text = json.dumps(config_file(docs, "ingest", "ingest.yaml"))
    assert 'password"' not in text.replace("password_file", "")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("ingest.credentials.nobody.existingSecret=s", "ingest.credentials.nobody.key=k"),
         "no source with stream_id"),
        (("ingest.sources[0].url=rtsp://u:pw@cam/s",), "values don't meet the specifications"),
        (("ingest.sources[0].password_env=CAM_PW",), "values don't meet the specifications"),
        (("ingest.terminationGracePeriodSeconds=5",), "stop_timeout_s"),
    ],
    ids=["credentials-for-unknown-source", "password-in-url", "password-env", "grace"],
)  # fmt: skip
def test_bad_values_fail_to_render(sets: tuple[str, ...], message: str) -> None:
    with pytest.raises(HelmError, match=message):
        render(INGEST_VALUES, *sets)


def test_values_schema_names_real_settings() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    ingest = schema["properties"]["ingest"]["properties"]
    assert set(ingest["settings"]["properties"]) <= set(IngestSettings.model_fields)
    items = ingest["sources"]["items"]["properties"]
    assert set(items) <= set(SourceSettings.model_fields)
