"""Rendering the chart with helm and checking what it renders, offline.

``render`` runs ``helm template`` (cached per values); ``validate`` checks one manifest against
the Kubernetes OpenAPI schemas that the ``kubernetes-validate`` package ships (strict: unknown
fields fail), or, for the CRDs the chart uses, against the subsets in ``crd_schemas``;
``unknown_keys`` walks a settings mapping through a pydantic model (``__`` nesting for env).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
import types
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, SecretStr

from tests.helm.crd_schemas import CRD_SCHEMAS

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "earwitness"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.33.0"
"""Rendered for (``--kube-version``) and validated against; the chart's floor is 1.27."""
RELEASE = "ew"


class HelmError(Exception):
    """helm exited non-zero; the message is its stderr."""


@functools.cache
def helm_path() -> str | None:
    """$HELM, else the pinned helm of scripts/install-helm, else helm on PATH."""
    if os.environ.get("HELM"):
        return os.environ["HELM"] if os.access(os.environ["HELM"], os.X_OK) else None
    pinned = subprocess.run(
        [str(REPO / "scripts" / "install-helm"), "--path"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if os.access(pinned, os.X_OK):
        return pinned
    return shutil.which("helm")


def require_helm() -> str:
    """The helm binary; skip without one, unless in CI (``CI`` set), where that is a failure."""
    helm = helm_path()
    if helm is None:
        message = "helm is not installed: run scripts/install-helm"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so this is an error)")
        pytest.skip(message)
    return helm


def helm(*args: str) -> str:
    proc = subprocess.run([require_helm(), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip() or proc.stdout.strip())
    return proc.stdout


@functools.cache
def _render_text(values: Path | None, sets: tuple[str, ...]) -> str:
    args = ["template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["-f", str(values)]
    for item in sets:
        args += ["--set", item]
    return helm(*args)


def render(values: Path | None = None, *sets: str) -> list[dict[str, Any]]:
    """The manifests of ``helm template`` (a fresh copy: callers may mutate)."""
    text = _render_text(values, sets)
    return copy.deepcopy([doc for doc in yaml.safe_load_all(text) if doc])


def merged_values(values: Path | None = None) -> dict[str, Any]:
    """values.yaml overlaid by ``values`` the way helm merges maps (enough for the CI files)."""
    merged = yaml.safe_load((CHART / "values.yaml").read_text())
    if values is not None:
        _overlay(merged, yaml.safe_load(values.read_text()) or {})
    return merged


def _overlay(base: dict[str, Any], top: dict[str, Any]) -> None:
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _overlay(base[key], value)
        else:
            base[key] = value


def find(docs: list[dict[str, Any]], kind: str, component: str | None = None) -> list[dict]:
    return [
        doc
        for doc in docs
        if doc["kind"] == kind
        and (
            component is None
            or doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        )
    ]


def one(docs: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    found = find(docs, kind, component)
    assert len(found) == 1, f"expected one {kind} {component or ''}, got {len(found)}"
    return found[0]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def config_file(docs: list[dict[str, Any]], component: str, name: str) -> dict[str, Any]:
    return yaml.safe_load(one(docs, "ConfigMap", component)["data"][name]) or {}


# --- schema validation ---------------------------------------------------------------------


@functools.cache
def _k8s_validator(kind: str, api_version: str) -> jsonschema.Validator | None:
    """A strict validator from kubernetes-validate's bundled schemas (no network)."""
    from kubernetes_validate import utils

    version = utils.major_minor(KUBE_VERSION)
    group, _, version_part = api_version.rpartition("/")
    api = f"{group.partition('.')[0]}-{version_part}" if group else api_version
    folder = f"kubernetes-json-schema/v{version}.0-local-strict"
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{api}.json", version)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
    from referencing import Registry, Resource

    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` is not a valid object of its kind."""
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        jsonschema.Draft202012Validator(CRD_SCHEMAS[key]).validate(doc)
        return
    validator = _k8s_validator(doc["kind"], doc["apiVersion"])
    if validator is None:
        raise AssertionError(f"no schema for {key}: add one to tests/helm/crd_schemas.py")
    validator.validate(doc)


# --- settings models -----------------------------------------------------------------------


def _unwrap(annotation: Any) -> list[Any]:
    """Members of a union (``X | None``, discriminated ``Annotated[A | B, ...]``)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _unwrap(arg)]
    return [annotation]


def _model_for(members: list[Any], data: dict[str, Any]) -> type[BaseModel] | None:
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    if len(models) <= 1:
        return models[0] if models else None
    for model in models:  # discriminated by a Literal ``type`` field
        literal = model.model_fields["type"].annotation
        if data.get("type") in typing.get_args(literal):
            return model
    return None


def unknown_keys(model: type[BaseModel], data: dict[str, Any], path: str = "") -> list[str]:
    """Dotted paths in ``data`` that are no field of ``model`` (recursively)."""
    bad = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            bad.append(f"{path}{key}")
            continue
        bad += _unknown_in(field.annotation, value, f"{path}{key}.")
    return bad


def _unknown_in(annotation: Any, value: Any, path: str) -> list[str]:
    members = _unwrap(annotation)
    dicts = [m for m in members if typing.get_origin(m) is dict]
    if isinstance(value, dict) and dicts:
        item = typing.get_args(dicts[0])[1]
        return [bad for k, v in value.items() for bad in _unknown_in(item, v, f"{path}{k}.")]
    if isinstance(value, dict) and (model := _model_for(members, value)) is not None:
        return unknown_keys(model, value, path)
    if isinstance(value, dict):
        return [path.rstrip(".") + " (a mapping where the setting is not one)"]
    return []


def secret_keys(model: type[BaseModel], data: dict[str, Any], path: str = "") -> list[str]:
    """Paths in ``data`` that set a ``SecretStr`` field (secrets belong in env or files)."""
    found = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            continue
        members = _unwrap(field.annotation)
        if SecretStr in members and value is not None:
            found.append(f"{path}{key}")
        dicts = [m for m in members if typing.get_origin(m) is dict]
        if isinstance(value, dict) and dicts:
            item_members = _unwrap(typing.get_args(dicts[0])[1])
            for name, item in value.items():
                sub = _model_for(item_members, item) if isinstance(item, dict) else None
                if sub is not None:
                    found += secret_keys(sub, item, f"{path}{key}.{name}.")
        elif isinstance(value, dict) and (sub := _model_for(members, value)) is not None:
            found += secret_keys(sub, value, f"{path}{key}.")
    return found


SERVICE_PREFIXES = {
    "analyzer": "EARWITNESS_ANALYZER_",
    "alerts": "EARWITNESS_ALERTS_",
    "ingest": "EARWITNESS_INGEST_",
    "console": "EARWITNESS_CONSOLE_",
}


def env_to_settings(name: str, value: str = "x") -> dict[str, Any]:
    """``EARWITNESS_ANALYZER_KAFKA__CLIENT__SASL.USERNAME`` → ``{"kafka": {"client": ...}}``.

    As earwitness/environment.py reads it: the service prefix stripped, ``__`` nests, names
    case-insensitive.
    """
    prefix = next((p for p in SERVICE_PREFIXES.values() if name.startswith(p)), None)
    assert prefix is not None, f"{name}: not a service's settings variable"
    parts = name.removeprefix(prefix).lower().split("__")
    nested: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    return nested


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True, default=str)
