"""The chart, rendered offline for every values file in helm/earwitness/ci/, against the code.

Each check reads the truth from the code rather than restating it: settings keys and env vars
are walked through ``AnalyzerSettings``/``AlertsSettings``, probes are sent to the real
``HealthServer`` of each component, the effective settings are loaded the way the
processes load them (config file + the pod's env).
"""

from __future__ import annotations

import base64
import json
import os
import re
import typing
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from earwitness.config import load_settings
from earwitness.health import LoopHealth
from sinks import cli as alerts_cli
from sinks.config import AlertsSettings
from sinks.metrics import AlertMetrics
from sinks.rules import load_rules
from stream.config import AnalyzerSettings, KafkaSettings
from stream.probes import Health, HealthServer
from tests.helm.chart import (
    CHART,
    CI_VALUES,
    KUBE_VERSION,
    HelmError,
    config_file,
    container,
    env_to_settings,
    find,
    helm,
    merged_values,
    one,
    render,
    secret_keys,
    unknown_keys,
    validate,
)

pytestmark = pytest.mark.slow

VALUES = pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name.removesuffix(".yaml"))
COMPONENTS = {"analyzer": ("StatefulSet", AnalyzerSettings, "analyzer.yaml"),
              "alerts": ("Deployment", AlertsSettings, "alerts.yaml")}  # fmt: skip
NON_SETTINGS_ENV = {
    "HOME": "writable home for vLLM / torch.compile / Triton caches",
    "HF_HOME": "huggingface_hub cache on the model volume",
    "HF_TOKEN": "huggingface_hub token, from a Secret",
}
"""Env the chart sets that is not an earwitness setting, and who reads it."""


def test_ci_values_cover_the_issue() -> None:
    names = {p.name for p in CI_VALUES}
    assert {"default-values.yaml", "keda-values.yaml", "servicemonitor-values.yaml",
            "tp2-values.yaml", "external-secrets-values.yaml"} <= names  # fmt: skip


@VALUES
def test_lint(values: Path) -> None:
    out = helm("lint", str(CHART), "-f", str(values), "--strict", "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in out


@VALUES
def test_manifests_validate(values: Path) -> None:
    try:
        import kubernetes_validate  # noqa: F401 - the bundled schemas
    except ModuleNotFoundError:
        if os.environ.get("CI"):
            raise
        pytest.skip("kubernetes-validate is not installed (pyproject.toml's dev extra)")
    docs = render(values)
    assert docs
    for doc in docs:
        try:
            validate(doc)
        except jsonschema.ValidationError as exc:
            path = ".".join(map(str, exc.absolute_path))
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")


# --- settings: config files and env -------------------------------------------------------


def _env_settings(workload: dict[str, Any]) -> list[str]:
    return [e["name"] for e in container(workload).get("env", [])]


@VALUES
@pytest.mark.parametrize("component", COMPONENTS)
def test_config_keys_are_settings(values: Path, component: str) -> None:
    _, model, name = COMPONENTS[component]
    data = config_file(render(values), component, name)
    assert unknown_keys(model, data) == []


@VALUES
@pytest.mark.parametrize("component", COMPONENTS)
def test_env_vars_are_settings(values: Path, component: str) -> None:
    kind, model, _ = COMPONENTS[component]
    for name in _env_settings(one(render(values), kind, component)):
        if name.startswith("EARWITNESS_"):
            assert unknown_keys(model, env_to_settings(name)) == [], name
        else:
            assert name in NON_SETTINGS_ENV, f"{name}: neither a setting nor known runtime env"


@VALUES
def test_effective_analyzer_settings(values: Path, tmp_path: Path, clean_env: None) -> None:
    """The analyzer's config + env load; ids, port and GPUs come out as the chart intends."""
    docs = render(values)
    sts = one(docs, "StatefulSet", "analyzer")
    pod = f"{sts['metadata']['name']}-0"
    settings = _load(AnalyzerSettings, docs, "analyzer", pod, tmp_path)
    assert settings.kafka.group_instance_id == pod
    port = _named_port(sts, "metrics")
    assert settings.http.port == port
    assert settings.http.host in ("0.0.0.0", "::")
    gpu = merged_values(values)["analyzer"]["gpuResource"]
    resources = container(sts)["resources"]
    assert resources["requests"][gpu] == resources["limits"][gpu]
    assert resources["limits"][gpu] == settings.engine.tensor_parallel_size
    grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.batch.drain_timeout_s
    analyzer = merged_values(values)["analyzer"]
    if "new_topic_partitions" not in analyzer["settings"].get("kafka", {}):
        # a frames topic the analyzer creates has a partition for every replica the chart allows
        assert settings.kafka.new_topic_partitions == analyzer["inputTopicPartitions"]


@VALUES
def test_effective_alerts_settings(values: Path, tmp_path: Path, clean_env: None) -> None:
    """The runner's config + env + mounted credential files + rules load and agree."""
    docs = render(values)
    dep = one(docs, "Deployment", "alerts")
    pod = f"{dep['metadata']['name']}-5d8f7-abcde"
    settings = _load(AlertsSettings, docs, "alerts", pod, tmp_path)
    assert settings.kafka.transactional_id == pod
    assert settings.metrics_port == _named_port(dep, "metrics")
    assert settings.metrics_host in ("0.0.0.0", "::")
    rules = load_rules(tmp_path / settings.rules_path)
    rules.check_receivers(set(settings.receivers))
    analyzer = config_file(docs, "analyzer", "analyzer.yaml")
    assert settings.kafka.captions_topic == analyzer["kafka"]["captions_topic"]
    grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.drain_timeout_s


@VALUES
def test_analyzer_transactional_id_is_stable_per_pod(
    values: Path, tmp_path: Path, clean_env: None
) -> None:
    """Exactly-once needs one transactional id per pod that survives restarts. The chart sets
    only group_instance_id (the StatefulSet pod name) and the analyzer derives the id from it;
    it must not pin kafka.transactional_id itself (one id for all pods would fence them)."""
    if "transactional_id" not in KafkaSettings.model_fields:
        pytest.skip("AnalyzerSettings has no kafka.transactional_id yet")
    docs = render(values)
    assert "transactional_id" not in config_file(docs, "analyzer", "analyzer.yaml")["kafka"]
    sts = one(docs, "StatefulSet", "analyzer")
    ids = set()
    for ordinal in (0, 1):
        pod = f"{sts['metadata']['name']}-{ordinal}"
        kafka = _load(AnalyzerSettings, docs, "analyzer", pod, tmp_path).kafka
        txn_id = kafka.txn_id() if hasattr(kafka, "txn_id") else kafka.transactional_id
        assert txn_id is not None
        assert pod in txn_id, "derived from the pod name"
        assert txn_id == (kafka.txn_id() if hasattr(kafka, "txn_id") else txn_id), "stable"
        ids.add(txn_id)
    assert len(ids) == 2


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("EARWITNESS_"):
            monkeypatch.delenv(name)


def _load(model, docs, component, pod, tmp_path):
    """Write the ConfigMap's files to ``tmp_path``, set the pod's env, load the settings."""
    workload = one(docs, COMPONENTS[component][0], component)
    configmap = one(docs, "ConfigMap", component)
    for name, text in configmap["data"].items():
        data = yaml.safe_load(text)
        if component == "alerts" and name == "alerts.yaml":
            _point_credentials_at_files(data, workload, tmp_path)
        (tmp_path / name).write_text(yaml.safe_dump(data))
    mp = pytest.MonkeyPatch()
    try:
        for env in container(workload).get("env", []):
            mp.setenv(env["name"], _env_value(env, pod))
        return load_settings(model, tmp_path / f"{component}.yaml")
    finally:
        mp.undo()


def _env_value(env: dict[str, Any], pod: str) -> str:
    if "value" in env:
        return str(env["value"])
    source = env["valueFrom"]
    if "fieldRef" in source:
        assert source["fieldRef"]["fieldPath"] == "metadata.name"
        return pod
    assert "secretKeyRef" in source, env
    return "from-a-secret"


_CREDENTIALS = {
    "secret_file": "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode(),
    "url_file": "https://hooks.slack.com/services/T000/B000/XXXX",
    "token_file": "bearer-token",
}


def _point_credentials_at_files(data: dict, workload: dict, tmp_path: Path) -> None:
    """Each ``*_file`` must be a file the pod mounts from a Secret; swap in a local copy."""
    mounted = _secret_files(workload)
    for name, receiver in (data.get("receivers") or {}).items():
        for field in [k for k in receiver if k.endswith("_file")]:
            assert receiver[field] in mounted, f"receivers.{name}.{field} is not mounted"
            local = tmp_path / f"{name}.{field}"
            local.write_text(_CREDENTIALS[field] + "\n")
            receiver[field] = str(local)


def _secret_files(workload: dict) -> set[str]:
    spec = workload["spec"]["template"]["spec"]
    paths = set()
    for mount in container(workload).get("volumeMounts", []):
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        for source in volume.get("projected", {}).get("sources", []):
            for item in source.get("secret", {}).get("items", []):
                paths.add(f"{mount['mountPath']}/{item['path']}")
    return paths


def _named_port(workload: dict, name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container(workload)["ports"]}
    return ports[name]


# --- probes and metrics endpoints ---------------------------------------------------------


@contextmanager
def _analyzer_http() -> Iterator[int]:
    """stream/probes.py's server, healthy and ready."""
    health = Health(stall_s=60.0)
    health.engine_warm = health.assigned = True
    server = HealthServer("127.0.0.1", 0, health, CollectorRegistry())
    server.start()
    try:
        yield server.port
    finally:
        server.stop()


@contextmanager
def _alerts_http() -> Iterator[int]:
    """The alert runner's server (sinks/cli.py), healthy and ready."""
    settings = AlertsSettings(rules_path="rules.yaml", metrics_host="127.0.0.1", metrics_port=0)
    health = LoopHealth(settings.health_stall_s)
    health.assigned = True
    server = alerts_cli._http_server(settings, AlertMetrics(), health)
    assert server is not None
    try:
        yield server.port
    finally:
        server.stop()


SERVERS = {"analyzer": _analyzer_http, "alerts": _alerts_http}


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


@VALUES
@pytest.mark.parametrize("component", COMPONENTS)
def test_probes_hit_real_endpoints(values: Path, component: str) -> None:
    docs = render(values)
    kind, _, _ = COMPONENTS[component]
    workload = one(docs, kind, component)
    c = container(workload)
    probes = {k: c[k] for k in ("startupProbe", "livenessProbe", "readinessProbe") if k in c}
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    if component == "analyzer":
        startup = probes["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600, "model load"
    port_names = {p["name"] for p in c["ports"]}
    paths = set()
    for name, probe in probes.items():
        assert probe["httpGet"]["port"] in port_names, name
        paths.add(probe["httpGet"]["path"])
    for monitor in find(docs, "ServiceMonitor", component):
        for endpoint in monitor["spec"]["endpoints"]:
            paths.add(endpoint["path"])
    paths.add("/metrics")
    with SERVERS[component]() as port:
        for path in sorted(paths):
            assert _get(port, path) == 200, f"{component} does not serve {path}"
    service = one(docs, "Service", component)
    (svc_port,) = service["spec"]["ports"]
    assert svc_port["targetPort"] == "metrics"
    assert svc_port["port"] == _named_port(workload, "metrics")


@pytest.mark.parametrize("component", COMPONENTS)
def test_servers_serve_nothing_else(component: str) -> None:
    """The 200s above are not a catch-all: unknown paths are 404."""
    with SERVERS[component]() as port:
        assert _get(port, "/nope") == 404


# --- KEDA, GPUs, secrets, security --------------------------------------------------------


@VALUES
def test_keda_follows_the_consumer_group(values: Path) -> None:
    docs = render(values)
    objects = find(docs, "ScaledObject")
    values_ = merged_values(values)["analyzer"]
    sts = one(docs, "StatefulSet", "analyzer")
    if not values_["keda"]["enabled"]:
        assert objects == []
        assert sts["spec"]["replicas"] <= values_["inputTopicPartitions"]
        return
    (scaled,) = objects
    assert "replicas" not in sts["spec"], "KEDA owns the replica count"
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": sts["metadata"]["name"]
    }  # fmt: skip
    assert scaled["spec"]["maxReplicaCount"] <= values_["inputTopicPartitions"]
    (trigger,) = scaled["spec"]["triggers"]
    if values_["keda"]["trigger"] == "behindRealtime":
        assert trigger["type"] == "prometheus"  # tests/helm/test_scaling.py: what it asks
        assert find(docs, "TriggerAuthentication") == []
        return
    kafka = config_file(docs, "analyzer", "analyzer.yaml")["kafka"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == kafka["group_id"]
    assert trigger["metadata"]["topic"] == kafka["frames_topic"]
    assert trigger["metadata"]["bootstrapServers"] == kafka["bootstrap_servers"]
    if "authenticationRef" in trigger:
        auth = one(docs, "TriggerAuthentication")
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("analyzer.keda.enabled=true", "analyzer.inputTopicPartitions=4",
          "analyzer.keda.maxReplicaCount=5"), "exceeds analyzer.inputTopicPartitions"),
        (("analyzer.replicaCount=3", "analyzer.inputTopicPartitions=2"),
         "exceeds analyzer.inputTopicPartitions"),
        (("analyzer.resources.limits.nvidia\\.com/gpu=2",), "tensor_parallel_size"),
        (("kafka.sasl.enabled=true",), "existingSecret"),
        (("kafka.client.sasl\\.password=hunter2",), "values don't meet the specifications"),
        (("analyzer.settings.http.port=0",), "values don't meet the specifications"),
        (("alerts.receiverSecrets.nobody.existingSecret=s", "alerts.receiverSecrets.nobody.key=k"),
         "no receiver"),
        (("analyzer.terminationGracePeriodSeconds=20",), "drain_timeout_s"),
        (("analyzer.keda.enabled=true",), "needs analyzer.keda.behindRealtime.serverAddress"),
        (("analyzer.keda.enabled=true", "analyzer.keda.behindRealtime.serverAddress=http://p",
          "analyzer.settings.batch.max_lag_s=20"), "must be below settings.batch.max_lag_s"),
        (("analyzer.keda.enabled=true", "analyzer.keda.trigger=cpu"),
         "values don't meet the specifications"),
    ],
    ids=["keda-max-over-partitions", "replicas-over-partitions", "gpu-in-resources",
         "sasl-without-secret", "secret-in-values", "port-zero", "secret-for-unknown-receiver",
         "grace-shorter-than-drain", "keda-without-prometheus", "keda-threshold-over-max-lag",
         "keda-unknown-trigger"],
)  # fmt: skip
def test_bad_values_fail_to_render(sets: tuple[str, ...], message: str) -> None:
    with pytest.raises(HelmError, match=message):
        render(None, *sets)


@VALUES
def test_no_secret_values_inline(values: Path) -> None:
    docs = render(values)
    assert find(docs, "Secret") == []
    for kind, component in (("StatefulSet", "analyzer"), ("Deployment", "alerts")):
        for env in container(one(docs, kind, component)).get("env", []):
            name = env["name"].upper()
            if any(word in name for word in ("PASSWORD", "SECRET", "TOKEN", "USERNAME")):
                assert "secretKeyRef" in env.get("valueFrom", {}), env["name"]
    for component, (_, model, name) in COMPONENTS.items():
        data = config_file(docs, component, name)
        assert secret_keys(model, data) == [], component
        kafka = data.get("kafka", {})
        client = kafka.get("client", {})
        assert not {k for k in client if "password" in k or "secret" in k}, component


@VALUES
def test_pods_are_locked_down(values: Path) -> None:
    docs = render(values)
    for kind, component in (("StatefulSet", "analyzer"), ("Deployment", "alerts")):
        spec = one(docs, kind, component)["spec"]["template"]["spec"]
        c = container(one(docs, kind, component))
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
        assert "/tmp" in writable, component
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        for var in ("HOME", "HF_HOME"):
            if env.get(var):
                assert (
                    any(env[var].startswith(p) for p in writable)
                    or (merged_values(values)["analyzer"]["modelCache"]["readOnly"])
                ), f"{component}: {var}={env[var]} is not writable"
    analyzer = one(docs, "StatefulSet", "analyzer")["spec"]["template"]["spec"]
    shm = next(v for v in analyzer["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container(
        one(docs, "StatefulSet", "analyzer")
    )["volumeMounts"]


@VALUES
def test_model_cache_volume(values: Path) -> None:
    docs = render(values)
    sts = one(docs, "StatefulSet", "analyzer")
    cache = merged_values(values)["analyzer"]["modelCache"]
    mounts = {m["name"]: m for m in container(sts)["volumeMounts"]}
    assert mounts["model-cache"]["mountPath"] == cache["mountPath"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    if cache["existingClaim"]:
        claim = volumes["model-cache"]["persistentVolumeClaim"]
        assert claim["claimName"] == cache["existingClaim"]
        assert "volumeClaimTemplates" not in sts["spec"]
    else:
        assert "model-cache" not in volumes
        (template,) = sts["spec"]["volumeClaimTemplates"]
        assert template["metadata"]["name"] == "model-cache"


def test_config_changes_roll_only_their_pods() -> None:
    """checksum/config follows each component's own ConfigMap."""

    def checksums(*sets: str) -> dict[str, str]:
        docs = render(None, *sets)
        return {
            component: one(docs, kind, component)["spec"]["template"]["metadata"]["annotations"][
                "checksum/config"
            ]
            for kind, component in (("StatefulSet", "analyzer"), ("Deployment", "alerts"))
        }

    base = checksums()
    alerts_changed = checksums("alerts.settings.tick_interval_s=2")
    analyzer_changed = checksums("analyzer.settings.batch.max_batch=8")
    assert alerts_changed["analyzer"] == base["analyzer"]
    assert alerts_changed["alerts"] != base["alerts"]
    assert analyzer_changed["analyzer"] != base["analyzer"]
    assert analyzer_changed["alerts"] == base["alerts"]


def test_values_schema_names_real_settings() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    for component, (_, model, _) in COMPONENTS.items():
        settings = schema["properties"][component]["properties"]["settings"]
        assert set(settings["properties"]) <= set(model.model_fields), component
        for section, sub in settings["properties"].items():
            annotation = model.model_fields[section].annotation
            if isinstance(annotation, type) and sub.get("properties"):
                assert set(sub["properties"]) <= set(annotation.model_fields), section


@pytest.mark.parametrize(
    ("component", "model", "set_by_chart"),
    [
        ("analyzer", AnalyzerSettings, {"failpoints"}),
        # metrics_token is a secret: not in a ConfigMap; metrics_token_file points at a Secret
        ("alerts", AlertsSettings, {"rules_path", "metrics_token"}),
    ],
)
def test_the_values_schema_takes_every_setting_key_for_key(
    component: str, model: type, set_by_chart: set[str]
) -> None:
    """docs/deploy.md: settings pass to the service key for key; the schema must not refuse
    one (it refused stale_grace_s and health_stall_s)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    allowed = schema["properties"][component]["properties"]["settings"]["properties"]
    assert set(model.model_fields) - set_by_chart <= set(allowed)


def test_settings_ids_are_not_overridden_by_the_pod_name() -> None:
    """Set under settings.kafka, group_instance_id / transactional_id are used as they are."""
    docs = render(
        None,
        "analyzer.settings.kafka.group_instance_id=cam-site-a",
        "alerts.settings.kafka.transactional_id=alerts-site-a",
    )
    analyzer_env = {e["name"] for e in container(one(docs, "StatefulSet", "analyzer"))["env"] or []}
    alerts_env = {e["name"] for e in container(one(docs, "Deployment", "alerts"))["env"] or []}
    assert "EARWITNESS_ANALYZER_KAFKA__GROUP_INSTANCE_ID" not in analyzer_env
    assert "EARWITNESS_ALERTS_KAFKA__TRANSACTIONAL_ID" not in alerts_env
    assert config_file(docs, "analyzer", "analyzer.yaml")["kafka"]["group_instance_id"] == (
        "cam-site-a"
    )
    default = render(None)
    assert "EARWITNESS_ANALYZER_KAFKA__GROUP_INSTANCE_ID" in {
        e["name"] for e in container(one(default, "StatefulSet", "analyzer"))["env"]
    }


# --- the values docs/deploy.md shows ------------------------------------------------------

DEPLOY_DOC = CHART.parents[1] / "docs" / "deploy.md"
YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def _documented_values() -> list[str]:
    return YAML_BLOCK.findall(DEPLOY_DOC.read_text(encoding="utf-8"))


def test_deploy_md_shows_values() -> None:
    assert len(_documented_values()) >= 2, "docs/deploy.md: my-values.yaml and the ingest block"


@pytest.mark.parametrize("index", range(len(_documented_values())))
def test_every_values_example_of_deploy_md_renders_and_validates(
    index: int, tmp_path: Path
) -> None:
    """docs/deploy.md's values blocks, as a user would pass them: lint, render, every manifest
    valid, every rendered settings key a setting, and the images they name are the ones run."""
    text = _documented_values()[index]
    values = tmp_path / "values.yaml"
    values.write_text(text)
    out = helm("lint", str(CHART), "-f", str(values), "--strict", "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in out
    docs = render(values)
    for doc in docs:
        try:
            validate(doc)
        except jsonschema.ValidationError as exc:
            pytest.fail(f"block {index}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    for component, (kind, model, name) in COMPONENTS.items():
        if find(docs, kind, component):
            assert unknown_keys(model, config_file(docs, component, name)) == []
    given = yaml.safe_load(text)
    for component, kind in (("analyzer", "StatefulSet"), ("alerts", "Deployment")):
        image = given.get(component, {}).get("image")
        if image:
            expected = f"{image['repository']}:{image['tag']}"
            assert container(one(docs, kind, component))["image"] == expected


SET_BY_CHART = {
    "analyzer.settings": {"failpoints"},  # never in production
    # rules_path: always alerts.rules, rendered beside the settings; metrics_token: a secret,
    # never in a ConfigMap (metrics_token_file, from a Secret, is the setting to use)
    "alerts.settings": {"rules_path", "metrics_token"},
    "ingest.settings": {"sources"},  # ingest.sources, a ConfigMap of its own
    "console.settings.store": {"path"},  # on the database's claim
}


def _refused_settings(path: str, schema: dict[str, Any], model: type[BaseModel]) -> list[str]:
    """Setting paths below ``model`` that ``schema`` refuses (a closed object without them)."""
    props = schema.get("properties")
    if props is None:
        return []
    refused = []
    if schema.get("additionalProperties") is False:
        missing = set(model.model_fields) - set(props) - SET_BY_CHART.get(path, set())
        refused += [f"{path}.{name}" for name in sorted(missing)]
    for name, sub in props.items():
        assert name in model.model_fields, f"{path}.{name}: the schema names no setting"
        annotation = model.model_fields[name].annotation
        for part in (annotation, *typing.get_args(annotation)):
            if isinstance(part, type) and issubclass(part, BaseModel):
                refused += _refused_settings(f"{path}.{name}", sub, part)
    return refused


def test_the_values_schema_refuses_no_setting_at_any_depth() -> None:
    """Every section of every component's settings, key for key (docs/deploy.md)."""
    from console.config import ConsoleSettings
    from ingest.config import IngestSettings

    schema = json.loads((CHART / "values.schema.json").read_text())
    models = {"analyzer": AnalyzerSettings, "alerts": AlertsSettings,
              "ingest": IngestSettings, "console": ConsoleSettings}  # fmt: skip
    refused = [
        path
        for component, model in models.items()
        for path in _refused_settings(
            f"{component}.settings",
            schema["properties"][component]["properties"]["settings"],
            model,
        )
    ]
    assert not refused, refused


def test_the_plumbing_defaults_deploy_md_states_are_the_charts() -> None:
    """docs/deploy.md's "Highlights of the plumbing": a row whose default is one value states
    what values.yaml holds (the others are prose, e.g. "off", "200Gi PVC per pod")."""
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    table = text[text.index("| value | default | notes |") :].split("\n\n", 1)[0]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    compared = 0
    for row in table.splitlines()[2:]:
        key, default = (cell.strip() for cell in row.strip("|").split("|")[:2])
        path = key.strip("`")
        if not re.fullmatch(r"[\w.]+", path) or not re.fullmatch(r"[\w.]+", default):
            continue
        node: Any = values
        for part in path.split("."):
            node = node[part]
        assert node == yaml.safe_load(default), f"{path}: docs say {default}, values.yaml {node}"
        compared += 1
    assert compared >= 6


def test_the_alert_runner_takes_connections_on_its_metrics_port_only() -> None:
    """A NetworkPolicy by default: ingress to the metrics port only, from metricsFrom when set."""
    policy = one(render(None), "NetworkPolicy", "alerts")
    validate(policy)
    deployment = one(render(None), "Deployment", "alerts")
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["podSelector"]["matchLabels"] == labels
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule == {"ports": [{"port": "metrics", "protocol": "TCP"}]}
    ports = {p["name"] for p in container(deployment)["ports"]}
    assert "metrics" in ports

    peers = render(
        None, "alerts.networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=obs"
    )
    (rule,) = one(peers, "NetworkPolicy", "alerts")["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]
    off = render(None, "alerts.networkPolicy.enabled=false")
    assert not [d for d in off if d["kind"] == "NetworkPolicy"]
