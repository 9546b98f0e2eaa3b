"""The chart's observability pack, offline: the PrometheusRule and the Grafana dashboard.

Every PromQL expression (alert rules, dashboard targets, dashboard variables) is parsed, and
each metric it names must be one the service really registers (``tests/helm/metrics.py``
builds the services' own metrics objects), each label one that metric has (or one Prometheus
adds), each ``label="value"`` a value the service's code gives it. The alerts the issue asks
for (behind real time, shedding, dead letters, engine errors, restarts, a stuck engine) must
each be there, on the series of this release's Services.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from stream.config import AnalyzerSettings
from tests.helm.chart import CHART, HelmError, find, one, render
from tests.helm.metrics import TARGET_LABELS, exported, label_values, selectors

pytestmark = pytest.mark.slow

ON = ("observability.prometheusRule.enabled=true", "observability.dashboard.enabled=true")
DASHBOARD = CHART / "dashboards" / "earwitness.json"
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
"""Grafana's built-ins, as Grafana fills them in before the query reaches Prometheus."""
GRAFANA_VARS_NAMES = {name.removeprefix("$") for name in GRAFANA_VARS}


@pytest.fixture(scope="module", autouse=True)
def _parser() -> None:
    try:
        import promql_parser  # noqa: F401
    except ModuleNotFoundError:
        if os.environ.get("CI"):
            raise
        pytest.skip("promql-parser is not installed (pyproject.toml's dev extra)")


def _check(expr: str, service: str) -> list[str]:
    """What in ``expr`` the service does not export (empty: all of it is real)."""
    series, values = exported()[service], label_values(service)
    problems = []
    for selector in selectors(expr):
        found = series.get(selector.name)
        if found is None:
            problems.append(f"{selector.name}: {service} exports no such series")
            continue
        unknown = selector.labels - found.labels - TARGET_LABELS
        problems += [f"{selector.name}: no label {label!r}" for label in sorted(unknown)]
        for label, value in selector.equals.items():
            known = values.get((found.family, label))
            if known is not None and value not in known:
                problems.append(f"{selector.name}{{{label}={value!r}}}: the code never sets it")
    return problems


def _rules(*sets: str) -> list[dict[str, Any]]:
    rule = one(render(None, *ON, *sets), "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def _service_of(expr: str, docs: list[dict[str, Any]]) -> str:
    """The component whose Service the expression selects (each rule names exactly one)."""
    names = set(re.findall(r'service="([^"]+)"', expr))
    services = {one(docs, "Service", c)["metadata"]["name"]: c for c in ("analyzer", "alerts")}
    assert len(names) == 1 and names <= services.keys(), f"{expr}: select one of {services}"
    return services[names.pop()]


def test_off_by_default() -> None:
    docs = render(None)
    assert find(docs, "PrometheusRule") == []
    labels = [d["metadata"]["labels"] for d in find(docs, "ConfigMap")]
    assert not [label for label in labels if "grafana_dashboard" in label]


def test_every_rule_names_real_metrics_of_this_release() -> None:
    docs = render(None, *ON)
    rules = _rules()
    assert rules
    for rule in rules:
        service = _service_of(rule["expr"], docs)
        assert _check(rule["expr"], service) == [], rule["alert"]
        assert 'namespace="default"' in rule["expr"], "helm template's release namespace"
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_alerts_the_issue_asks_for_are_there() -> None:
    """behind real time, shedding, DLQ growth, engine errors, restarts, a stuck engine."""
    wanted = {
        "earwitness_behind_realtime_seconds": None,
        "earwitness_windows_total": {"shed", "failed"},
        "earwitness_bad_frames_total": None,
        "process_start_time_seconds": None,
        "earwitness_engine_stalled_seconds": None,
    }
    seen: dict[str, set[str]] = {}
    for rule in _rules():
        for selector in selectors(rule["expr"]):
            seen.setdefault(selector.name, set()).update(selector.equals.values())
    for name, values in wanted.items():
        assert name in seen, f"no alert on {name}"
        assert values is None or values <= seen[name], f"{name}: alerts on {seen[name]}"


def test_thresholds_come_from_values_and_stay_reachable() -> None:
    rules = {r["alert"]: r["expr"] for r in _rules("observability.prometheusRule.deadLetters=50")}
    assert rules["EarwitnessDeadLetters"].endswith("> 50")
    settings = AnalyzerSettings()
    stuck = float(rules["EarwitnessEngineStuck"].rsplit(">", 1)[1])
    assert stuck < settings.engine.stall_unready_s, "fires before readiness fails"
    behind = float(rules["EarwitnessBehindRealtime"].rsplit(">", 1)[1])
    assert behind < settings.batch.max_lag_s, "an overloaded analyzer reaches it"
    with pytest.raises(HelmError, match=r"below settings\.batch\.max_lag_s"):
        _rules("observability.prometheusRule.behindRealtimeSeconds=120")
    with pytest.raises(HelmError, match=r"below settings\.engine\.stall_unready_s"):
        _rules("observability.prometheusRule.stuckEngineSeconds=120")
    template = (CHART / "templates" / "_helpers.tpl").read_text()
    assert f"stall_unready_s | default {settings.engine.stall_unready_s}" in template
    assert _rules("analyzer.settings.engine.stall_unready_s=600",
                  "observability.prometheusRule.stuckEngineSeconds=300")  # fmt: skip


def test_rules_follow_the_components_enabled() -> None:
    rule = one(render(None, *ON, "alerts.enabled=false"), "PrometheusRule")
    assert [g["name"] for g in rule["spec"]["groups"]] == ["earwitness-analyzer"]


# --- the dashboard ------------------------------------------------------------------------


def _dashboard_configmap(*sets: str) -> dict[str, Any]:
    (cm,) = [
        d
        for d in find(render(None, *ON, *sets), "ConfigMap")
        if "grafana_dashboard" in d["metadata"]["labels"]
    ]
    return cm


def _grafana_to_promql(query: str) -> str:
    """A dashboard query as Prometheus gets it: built-ins filled in, ``$var`` a value."""
    for name, value in GRAFANA_VARS.items():
        query = query.replace(name, value)
    return re.sub(r"\$\{?(\w+)\}?", r"x", query)


def _targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) of every panel target and every query variable."""
    out = []
    for panel in dashboard["panels"]:
        out += [(panel["title"], t["expr"]) for t in panel.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
            assert match, var["name"]
            out.append((f"${var['name']}", match.group(1)))
    return out


def test_the_dashboard_is_shipped_as_it_is() -> None:
    cm = _dashboard_configmap("observability.dashboard.annotations.grafana_folder=earwitness")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "earwitness"}
    assert json.loads(cm["data"]["earwitness.json"]) == json.loads(DASHBOARD.read_text())


def test_every_dashboard_query_names_real_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    targets = _targets(dashboard)
    assert len(targets) > 20
    services = {"$analyzer": "analyzer", "$alerts": "alerts"}
    for title, expr in targets:
        chosen = {s for var, s in services.items() if var in expr or var == title}
        service = chosen.pop() if len(chosen) == 1 else "analyzer"
        assert _check(_grafana_to_promql(expr), service) == [], title


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "earwitness-overview"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    names = {v["name"] for v in dashboard["templating"]["list"]}
    used = {m for _, e in _targets(dashboard) for m in re.findall(r"\$(\w+)", e)}
    assert used - GRAFANA_VARS_NAMES <= names


def test_every_metric_the_analyzer_alerts_on_is_on_the_dashboard() -> None:
    panels = {s.name for _, e in _targets(json.loads(DASHBOARD.read_text()))
              for s in selectors(_grafana_to_promql(e))}  # fmt: skip
    alerted = {s.name for r in _rules() for s in selectors(r["expr"])}
    assert alerted <= panels


def test_docs_name_the_pack() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()
    for rule in _rules():
        assert rule["alert"] in text, f"docs/deploy.md does not list {rule['alert']}"
