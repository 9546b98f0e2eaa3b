"""The console's part of the chart, rendered offline, checked against the code.

As in test_chart.py: keys and env are walked through ``ConsoleSettings``, the effective settings
are loaded the way the pod loads them, and the probe paths are sent to the console's real
probe server (earwitness/health.py with the reader's ``ConsoleHealth``).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from console.config import ConsoleSettings
from console.reader import ConsoleHealth
from earwitness.config import load_settings
from earwitness.health import HealthServer
from tests.helm.chart import (
    CHART,
    HelmError,
    config_file,
    container,
    env_to_settings,
    find,
    merged_values,
    one,
    render,
    secret_keys,
    unknown_keys,
)

pytestmark = pytest.mark.slow

VALUES = CHART / "ci" / "console-values.yaml"
BEARER = (
    "console.settings.auth.mode=bearer",
    "console.authSecret.existingSecret=console-auth",
    "console.authSecret.key=token",
)


def _docs(*sets: str) -> list[dict[str, Any]]:
    return render(VALUES, *sets)


def test_off_by_default() -> None:
    assert find(render(), "Deployment", "console") == []


def test_on_it_renders_every_object() -> None:
    docs = _docs()
    kinds = sorted(d["kind"] for d in docs if _component(d) == "console")
    assert kinds == ["ConfigMap", "Deployment", "Ingress", "PersistentVolumeClaim", "Service"]


def _component(doc: dict[str, Any]) -> str | None:
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")


@pytest.mark.parametrize("sets", [(), BEARER], ids=["proxy", "bearer"])
def test_config_and_env_are_settings(sets: tuple[str, ...]) -> None:
    docs = _docs(*sets)
    data = config_file(docs, "console", "console.yaml")
    assert unknown_keys(ConsoleSettings, data) == []
    assert secret_keys(ConsoleSettings, data) == []
    for env in container(one(docs, "Deployment", "console")).get("env", []):
        assert unknown_keys(ConsoleSettings, env_to_settings(env["name"])) == [], env["name"]


def _load(docs: list[dict[str, Any]], tmp_path: Path) -> ConsoleSettings:
    """The ConfigMap's file with the mounted credential swapped for a local copy."""
    data = config_file(docs, "console", "console.yaml")
    auth = data.get("auth", {})
    for field in ("token_file", "users_file"):
        if field in auth:
            assert auth[field].startswith(_mount(docs, "credential")), "the secret is mounted"
            local = tmp_path / field
            local.write_text("token-from-the-secret\n" if field == "token_file" else "ana:pw\n")
            auth[field] = str(local)
    (tmp_path / "console.yaml").write_text(yaml.safe_dump(data))
    mp = pytest.MonkeyPatch()
    try:
        for name in [n for n in os.environ if n.startswith("EARWITNESS_")]:
            mp.delenv(name)
        return load_settings(ConsoleSettings, tmp_path / "console.yaml")
    finally:
        mp.undo()


def _mount(docs: list[dict[str, Any]], volume: str) -> str:
    mounts = container(one(docs, "Deployment", "console"))["volumeMounts"]
    return next(m["mountPath"] for m in mounts if m["name"] == volume)


@pytest.mark.parametrize("sets", [(), BEARER], ids=["proxy", "bearer"])
def test_effective_settings(sets: tuple[str, ...], tmp_path: Path) -> None:
    docs = _docs(*sets)
    settings = _load(docs, tmp_path)
    dep = one(docs, "Deployment", "console")
    ports = {p["name"]: p["containerPort"] for p in container(dep)["ports"]}
    assert (settings.http.port, settings.metrics_port) == (ports["http"], ports["metrics"])
    assert settings.http.host == "0.0.0.0" and settings.auth.mode != "none"
    assert str(settings.store.path).startswith(_mount(docs, "data") + "/")
    analyzer = config_file(docs, "analyzer", "analyzer.yaml")
    assert settings.kafka.captions_topic == analyzer["kafka"]["captions_topic"]
    assert settings.kafka.frames_topic == analyzer["kafka"]["frames_topic"]
    windowing = analyzer["windowing"]
    assert settings.listen.windowing.model_dump(include=set(windowing)) == windowing
    kafka_receivers = [r for r in config_file(docs, "alerts", "alerts.yaml")["receivers"].values()
                       if r["type"] == "kafka"]  # fmt: skip
    assert settings.kafka.alerts_topic in {r["topic"] for r in kafka_receivers}


def test_the_bearer_token_is_a_mounted_secret(tmp_path: Path) -> None:
    settings = _load(_docs(*BEARER), tmp_path)
    assert settings.auth.token is not None
    assert settings.auth.token.get_secret_value() == "token-from-the-secret"


def test_probes_hit_the_real_endpoints() -> None:
    docs = _docs()
    c = container(one(docs, "Deployment", "console"))
    probes = [c[k] for k in ("startupProbe", "livenessProbe", "readinessProbe")]
    assert {p["httpGet"]["port"] for p in probes} == {"metrics"}
    health = ConsoleHealth(stall_s=60)
    health.assigned = health.caught_up = True
    server = HealthServer("127.0.0.1", 0, health, CollectorRegistry())
    server.start()
    try:
        for path in {p["httpGet"]["path"] for p in probes} | {"/metrics"}:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
                assert r.status == 200, path
        health.caught_up = False  # a rebuild in progress is not ready
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz", timeout=5)
    finally:
        server.stop()


def test_service_and_ingress_reach_the_page() -> None:
    docs = _docs()
    service = one(docs, "Service", "console")
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        "http": "http", "metrics": "metrics"
    }  # fmt: skip
    ingress = one(docs, "Ingress", "console")
    (rule,) = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}


def test_the_database_lives_on_the_claim() -> None:
    docs = _docs()
    dep = one(docs, "Deployment", "console")
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    claim = one(docs, "PersistentVolumeClaim", "console")
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    ephemeral = _docs("console.persistence.enabled=false", "console.replicaCount=3")
    dep = one(ephemeral, "Deployment", "console")
    assert find(ephemeral, "PersistentVolumeClaim", "console") == []
    assert "emptyDir" in {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}["data"]
    assert "strategy" not in dep["spec"]


def test_the_pod_is_locked_down() -> None:
    dep = one(_docs(), "Deployment", "console")
    spec, c = dep["spec"]["template"]["spec"], container(dep)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp", merged_values(VALUES)["console"]["persistence"]["mountPath"]}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("console.settings.auth.mode=none",), "values don't meet the specifications"),
        (("console.settings.auth=null",), "needs proxy, bearer or basic"),
        (("console.settings.auth.mode=basic",), "needs console.authSecret"),
        (("console.replicaCount=2",), "needs console.persistence.enabled=false"),
        (("console.settings.auth.token=hunter2",), "values don't meet the specifications"),
        (("console.settings.store.path=/x.db",), "values don't meet the specifications"),
    ],
    ids=["auth-none", "no-auth", "basic-without-secret", "replicas-on-one-volume",
         "secret-in-values", "path-set-by-chart"],
)  # fmt: skip
def test_bad_values_fail_to_render(sets: tuple[str, ...], message: str) -> None:
    with pytest.raises(HelmError, match=message):
        _docs(*sets)


def test_values_schema_names_real_settings() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    settings = schema["properties"]["console"]["properties"]["settings"]["properties"]
    assert set(settings) <= set(ConsoleSettings.model_fields)
    for section, sub in settings.items():
        annotation = ConsoleSettings.model_fields[section].annotation
        if isinstance(annotation, type) and sub.get("properties"):
            assert set(sub["properties"]) <= set(annotation.model_fields), section
