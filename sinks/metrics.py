"""Prometheus metrics of the alert runner, in a registry of their own.

================================================  =========================================
``earwitness_alerts_captions_total{kind}``        caption events consumed (``invalid`` = bad)
``earwitness_alerts_rule_matches_total{rule}``    captions a rule matched
``earwitness_alerts_incidents_open{rule}``        firing incidents now
``earwitness_alerts_stale_resolutions_total``     firing incidents resolved because their
                                                  stream sent nothing (``rule``)
``earwitness_alerts_alerts_total{rule,state}``    alerts produced (before fan-out)
``earwitness_alerts_deliveries_total``            per ``receiver`` and ``outcome``: ``ok``,
                                                  ``failed`` (an attempt), ``retried``,
                                                  ``dead_lettered``
``earwitness_alerts_delivery_latency_seconds``    hand-off to delivered, retries included
``earwitness_alerts_parked_deliveries{receiver}`` deliveries parked (receiver down): in the
                                                  state topic, retried by that receiver alone
``earwitness_alerts_checkpoints_total{result}``   transactions committed / aborted
================================================  =========================================

They are served with ``/healthz`` and ``/readyz`` by :class:`earwitness.health.HealthServer`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class AlertMetrics:
    """All metrics; one instance per runner (tests make many, hence the own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.captions = Counter(
            "earwitness_alerts_captions", "Caption events.", ["kind"], registry=r
        )
        self.matches = Counter(
            "earwitness_alerts_rule_matches", "Rule matches.", ["rule"], registry=r
        )
        self.incidents_open = Gauge(
            "earwitness_alerts_incidents_open", "Firing incidents.", ["rule"], registry=r
        )
        self.stale = Counter(
            "earwitness_alerts_stale_resolutions",
            "Firing incidents resolved because their stream sent no event (wall clock).",
            ["rule"],
            registry=r,
        )
        self.alerts = Counter("earwitness_alerts_alerts", "Alerts.", ["rule", "state"], registry=r)
        self.deliveries = Counter(
            "earwitness_alerts_deliveries",
            "Delivery outcomes.",
            ["receiver", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "earwitness_alerts_delivery_latency_seconds",
            "Seconds from hand-off to delivery.",
            ["receiver"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.parked = Gauge(
            "earwitness_alerts_parked_deliveries",
            "Deliveries parked in the state topic, still being retried.",
            ["receiver"],
            registry=r,
        )
        self.checkpoints = Counter(
            "earwitness_alerts_checkpoints", "Checkpoints.", ["result"], registry=r
        )
