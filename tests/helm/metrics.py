"""What the services really export, and the metric names PromQL expressions use.

``exported`` builds each service's own metrics object (the one its process serves on
``/metrics``) and lists every series name it can produce, with the label names each takes;
``label_values`` reads, from the service's source, the literal label values it passes to
``.labels(...)`` (``outcome="shed"``); ``selectors`` parses a PromQL expression with
``promql-parser`` (the Rust parser behind GreptimeDB, Prometheus's grammar) and returns every
vector selector in it, so a test can check each name, label and value against the code. A
typo'd or renamed metric in an alert or a dashboard fails here, not silently in production
(an unknown series is just empty).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import promql_parser
from prometheus_client import CollectorRegistry

from console.metrics import ConsoleMetrics
from ingest.metrics import IngestMetrics
from sinks.metrics import AlertMetrics
from stream.metrics import AnalyzerMetrics

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
TARGET_LABELS = frozenset({"namespace", "service", "pod", "job", "instance", "container",
                           "endpoint", "le"})  # fmt: skip
"""Labels Prometheus (the Operator's ServiceMonitor relabelling) adds, and histograms' ``le``."""


REPO = Path(__file__).resolve().parents[2]
SERVICES = {
    "analyzer": (AnalyzerMetrics, "stream"),
    "alerts": (AlertMetrics, "sinks"),
    "ingest": (IngestMetrics, "ingest"),
    "console": (ConsoleMetrics, "console"),
}
"""Each service's metrics class and the package whose code labels them."""
Found = dict[tuple[str, str], set[str] | None]


@dataclass(frozen=True)
class Series:
    """One series name a service exports: its family (the name ``.labels`` values are keyed
    by) and its label names."""

    family: str
    labels: frozenset[str]


@functools.cache
def exported() -> dict[str, dict[str, Series]]:
    """Per service, series name → its family and labels, from the registries it serves."""
    return {name: _series(cls().registry) for name, (cls, _) in SERVICES.items()}


@functools.cache
def label_values(service: str) -> dict[tuple[str, str], frozenset[str] | None]:
    """``(family, label)`` → the literal values the service's code gives it (None: some call
    passes a computed value, so any value may occur)."""
    cls, package = SERVICES[service]
    metrics = cls()
    families = {
        attr: (value._name, tuple(value._labelnames))
        for attr, value in vars(metrics).items()
        if hasattr(value, "_labelnames") and hasattr(value, "_name")
    }
    found: Found = {}
    for path in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value
            if node.func.attr != "labels" or not isinstance(owner, ast.Attribute):
                continue
            if owner.attr not in families:
                continue
            name, labels = families[owner.attr]
            for label, arg in zip(labels, node.args, strict=False):
                _add(found, (name, label), arg)
            for keyword in node.keywords:
                _add(found, (name, keyword.arg or ""), keyword.value)
    return {key: None if values is None else frozenset(values) for key, values in found.items()}


def _add(found: Found, key: tuple[str, str], arg: ast.expr) -> None:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        values = found.setdefault(key, set())
        if values is not None:
            values.add(arg.value)
    else:
        found[key] = None


def _series(registry: CollectorRegistry) -> dict[str, Series]:
    labels = _label_names(registry)
    out: dict[str, Series] = {}
    for family in registry.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            out[family.name + suffix] = Series(family.name, labels.get(family.name, frozenset()))
    return out


def _label_names(registry: CollectorRegistry) -> dict[str, frozenset[str]]:
    """Label names of each family. prometheus_client lists labelled families only once they
    have a child, so read the declared names (``_labelnames``, stable across its releases)."""
    names: dict[str, frozenset[str]] = {}
    for collector in list(registry._collector_to_names):  # no public listing of collectors
        declared = getattr(collector, "_labelnames", None)
        name = getattr(collector, "_name", None)
        if declared is not None and name is not None:
            names[name] = frozenset(declared)
    return names


@dataclass(frozen=True)
class Selector:
    """One ``name{label="..."}`` in an expression: its name, label names, and the values
    matched with ``=`` (``outcome="shed"`` → ``{"outcome": "shed"}``)."""

    name: str
    labels: frozenset[str]
    equals: dict[str, str]


def selectors(expr: str) -> list[Selector]:
    """Every vector selector of ``expr`` (raises ``ValueError`` if it does not parse)."""
    return list(_walk(promql_parser.parse(expr)))


def _walk(node: object) -> Iterator[Selector]:
    if isinstance(node, promql_parser.VectorSelector):
        matchers = [*node.matchers.matchers, *_or_matchers(node.matchers)]
        labels = frozenset(m.name for m in matchers) - {"__name__"}
        equals = {m.name: m.value for m in matchers if m.op == promql_parser.MatchOp.Equal}
        yield Selector(node.name or "", labels, equals)
        return
    for attr in ("expr", "lhs", "rhs", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield from _walk(child)
    for arg in getattr(node, "args", None) or []:
        yield from _walk(arg)


def _or_matchers(matchers: object) -> list:
    return [m for group in getattr(matchers, "or_matchers", None) or [] for m in group]
