"""What the services really export, and the metric names PromQL expressions use.

``exported`` builds each service's own metrics object (the one its process serves on
``/metrics``) and lists every series name it can produce, with the label names each takes;
``selectors`` parses a PromQL expression with ``promql-parser`` (the Rust parser behind
GreptimeDB, the same grammar as Prometheus) and returns every vector selector in it, so a test
can check each name and label against ``exported``. A typo'd or renamed metric in an alert or
a dashboard fails here, not silently in production (an unknown series is just empty).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

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


@functools.cache
def exported() -> dict[str, dict[str, frozenset[str]]]:
    """Per service, series name → label names, from the registries the processes serve."""
    return {
        "analyzer": _series(AnalyzerMetrics().registry),
        "alerts": _series(AlertMetrics().registry),
        "ingest": _series(IngestMetrics().registry),
        "console": _series(ConsoleMetrics().registry),
    }


def _series(registry: CollectorRegistry) -> dict[str, frozenset[str]]:
    labels = _label_names(registry)
    out: dict[str, frozenset[str]] = {}
    for family in registry.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            out[family.name + suffix] = labels.get(family.name, frozenset())
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
    """One ``name{label="..."}`` in an expression."""

    name: str
    labels: frozenset[str]


def selectors(expr: str) -> list[Selector]:
    """Every vector selector of ``expr`` (raises ``ValueError`` if it does not parse)."""
    return list(_walk(promql_parser.parse(expr)))


def _walk(node: object) -> Iterator[Selector]:
    if isinstance(node, promql_parser.VectorSelector):
        matchers = node.matchers
        labels = frozenset(m.name for m in [*matchers.matchers, *_or_matchers(matchers)])
        yield Selector(node.name or "", labels - {"__name__"})
        return
    for attr in ("expr", "lhs", "rhs", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield from _walk(child)
    for arg in getattr(node, "args", None) or []:
        yield from _walk(arg)


def _or_matchers(matchers: object) -> list:
    return [m for group in getattr(matchers, "or_matchers", None) or [] for m in group]
