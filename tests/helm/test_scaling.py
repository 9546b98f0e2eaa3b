"""What the chart's ScaledObject asks KEDA, checked against the code (docs/deploy.md, Autoscaling).

behindRealtime: the Prometheus query names a gauge the analyzer really exports, on the labels
of the Service the chart's ServiceMonitor scrapes. kafkaLag: the threshold the chart derives,
fed the lag that the analyzer's own bookkeeping leaves behind while it keeps up
(``tests/support/lag.py``), asks for streams / streamsPerReplica replicas, no more.
"""

from __future__ import annotations

import math

import pytest

from stream.config import AnalyzerSettings
from tests.helm.chart import CHART, find, one, render
from tests.helm.metrics import TARGET_LABELS, exported, selectors
from tests.support.lag import keeping_up

pytestmark = pytest.mark.slow

PROMETHEUS = "analyzer.keda.behindRealtime.serverAddress=http://prometheus.monitoring:9090"
KEDA = ("analyzer.keda.enabled=true", "analyzer.inputTopicPartitions=8",
        "analyzer.keda.maxReplicaCount=8")  # fmt: skip


def _trigger(*sets: str) -> dict:
    (scaled,) = find(render(None, *KEDA, *sets), "ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    return trigger


def test_behind_realtime_is_asked_of_the_scraped_analyzer() -> None:
    docs = render(None, *KEDA, PROMETHEUS, "serviceMonitor.enabled=true")
    (trigger,) = one(docs, "ScaledObject")["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metricType"] == "Value", "a max over pods: replicas x behind / threshold"
    meta = trigger["metadata"]
    assert meta["serverAddress"] == "http://prometheus.monitoring:9090"
    assert float(meta["threshold"]) < AnalyzerSettings().batch.max_lag_s
    (selector,) = selectors(meta["query"])
    assert selector.name == "earwitness_behind_realtime_seconds"
    assert selector.name in exported()["analyzer"]
    assert selector.labels <= TARGET_LABELS
    service = one(docs, "Service", "analyzer")["metadata"]["name"]
    assert f'service="{service}"' in meta["query"]
    monitor = one(docs, "ServiceMonitor", "analyzer")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        one(docs, "Service", "analyzer")["metadata"]["labels"].items()
    )
    custom = _trigger(PROMETHEUS, "analyzer.keda.behindRealtime.query=max(my_own)")
    assert custom["metadata"]["query"] == "max(my_own)"


def test_the_chart_defaults_for_the_arithmetic_are_the_code_defaults() -> None:
    """The template falls back to window_s, commit_interval_ms and max_lag_s when they are
    not set: the code's defaults, or the threshold is wrong."""
    settings = AnalyzerSettings()
    lag = _trigger("analyzer.keda.trigger=kafkaLag", "analyzer.keda.kafkaLag.streamsPerReplica=10",
                   "analyzer.keda.kafkaLag.frameMs=20")  # fmt: skip
    held_ms = settings.windowing.window_s * 1000 + settings.kafka.commit_interval_ms
    assert int(lag["metadata"]["lagThreshold"]) == math.ceil(10 * held_ms / 20)
    max_lag = settings.batch.max_lag_s
    template = (CHART / "templates" / "_helpers.tpl").read_text()
    assert f"max_lag_s | default {max_lag}" in template


@pytest.mark.parametrize("streams", [12, 24])
def test_kafka_lag_threshold_asks_for_streams_per_replica(streams: int) -> None:
    """6 streams per replica; 12 (24) keeping-up streams on a partition must ask for 2 (4)
    replicas at most, and no fewer than the HPA's 10% tolerance below that; a backlog of one
    window per stream asks for about twice as many."""
    per_replica, frame_ms = 6, 100
    trigger = _trigger(
        "analyzer.keda.trigger=kafkaLag",
        f"analyzer.keda.kafkaLag.streamsPerReplica={per_replica}",
        f"analyzer.keda.kafkaLag.frameMs={frame_ms}",
    )
    assert trigger["type"] == "kafka"
    threshold = int(trigger["metadata"]["lagThreshold"])
    settings = AnalyzerSettings()
    run = [s for s in keeping_up(settings, streams, frame_ms, 75.0) if s.now_s >= 40.0]
    wanted = streams / per_replica
    asked = [s.lag_frames / threshold for s in run]  # KEDA: total lag / lagThreshold
    assert max(asked) <= wanted
    assert sum(asked) / len(asked) >= 0.9 * wanted
    one_window = streams * settings.windowing.window_s * 1000 / frame_ms  # frames unread
    backlog = [(s.lag_frames + one_window) / threshold for s in run]
    assert min(backlog) >= 1.6 * wanted
