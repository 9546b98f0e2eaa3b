"""JSON schemas for the custom resources the chart renders, which kubernetes-validate lacks.

Written from the KEDA 2.x and Prometheus Operator API references, for the fields this chart
uses; unknown fields fail (``additionalProperties: false``), like the strict core schemas.
"""

from __future__ import annotations

from typing import Any


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required or [],
        "additionalProperties": False,
    }


_STR = {"type": "string", "minLength": 1}
_INT = {"type": "integer", "minimum": 0}
_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = _obj({"name": _STR, "namespace": _STR, "labels": _MAP, "annotations": _MAP}, ["name"])

_SCALED_OBJECT = _obj(
    {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": _obj(
            {
                "scaleTargetRef": _obj(
                    {"apiVersion": _STR, "kind": _STR, "name": _STR},
                    ["name"],
                ),
                "minReplicaCount": _INT,
                "maxReplicaCount": _INT,
                "idleReplicaCount": _INT,
                "pollingInterval": _INT,
                "cooldownPeriod": _INT,
                "advanced": _obj(
                    {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": _obj(
                            {"name": _STR, "behavior": {"type": "object"}}
                        ),
                    }
                ),
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": _obj(
                        {
                            "type": _STR,
                            "name": _STR,
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "metadata": _MAP,
                            "authenticationRef": _obj({"name": _STR, "kind": _STR}, ["name"]),
                        },
                        ["type", "metadata"],
                    ),
                },
            },
            ["scaleTargetRef", "triggers"],
        ),
    },
    ["apiVersion", "kind", "metadata", "spec"],
)

_TRIGGER_AUTHENTICATION = _obj(
    {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": _METADATA,
        "spec": _obj(
            {
                "secretTargetRef": {
                    "type": "array",
                    "items": _obj(
                        {"parameter": _STR, "name": _STR, "key": _STR}, ["parameter", "name", "key"]
                    ),
                }
            }
        ),
    },
    ["apiVersion", "kind", "metadata", "spec"],
)

_SERVICE_MONITOR = _obj(
    {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": _obj(
            {
                "selector": _obj({"matchLabels": _MAP}, ["matchLabels"]),
                "namespaceSelector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": _obj(
                        {
                            "port": _STR,
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            # SafeAuthorization: a key of a Secret in the monitor's namespace
                            "authorization": _obj(
                                {
                                    "type": _STR,
                                    "credentials": _obj({"name": _STR, "key": _STR}, ["key"]),
                                },
                                [],
                            ),
                        },
                        ["port"],
                    ),
                },
            },
            ["selector", "endpoints"],
        ),
    },
    ["apiVersion", "kind", "metadata", "spec"],
)

_DURATION = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$"}
_RULE = {
    "oneOf": [
        _obj(
            {
                "alert": _STR,
                "expr": _STR,
                "for": _DURATION,
                "keep_firing_for": _DURATION,
                "labels": _MAP,
                "annotations": _MAP,
            },
            ["alert", "expr"],
        ),
        _obj({"record": _STR, "expr": _STR, "labels": _MAP}, ["record", "expr"]),
    ]
}
_PROMETHEUS_RULE = _obj(
    {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _METADATA,
        "spec": _obj(
            {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": _obj(
                        {
                            "name": _STR,
                            "interval": _DURATION,
                            "rules": {"type": "array", "minItems": 1, "items": _RULE},
                        },
                        ["name", "rules"],
                    ),
                }
            },
            ["groups"],
        ),
    },
    ["apiVersion", "kind", "metadata", "spec"],
)

CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): _SCALED_OBJECT,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _TRIGGER_AUTHENTICATION,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): _PROMETHEUS_RULE,
}
