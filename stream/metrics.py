"""The analyzer's Prometheus metrics, on a registry of its own (tests make as many as they like)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from windowing import Windower
from windowing.window import WindowStats

LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


@dataclass
class AnalyzerMetrics:
    """Every metric the analyzer exports, created on ``registry``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.frames_in = Counter("earwitness_frames_total", "Frames consumed.", registry=r)
        self.bad_frames = Counter(
            "earwitness_bad_frames_total",
            "Frames dead-lettered, by reason.",
            ["reason"],
            registry=r,
        )
        self.windows = Counter(
            "earwitness_windows_total", "Windows by what became of them.", ["outcome"], registry=r
        )
        self.batch_size = Histogram(
            "earwitness_batch_windows",
            "Windows per micro-batch.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.engine_latency = Histogram(
            "earwitness_engine_latency_seconds",
            "Time a window spent in the engine.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.end_to_end = Histogram(
            "earwitness_end_to_end_latency_seconds",
            "Window closed (wall clock) → its event committed.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.inflight = Gauge(
            "earwitness_windows_pending",
            "Windows handed to the engine, not yet published.",
            registry=r,
        )
        self.paused = Gauge(
            "earwitness_partitions_paused", "Input partitions paused by backpressure.", registry=r
        )
        self.lag = Gauge(
            "earwitness_consumer_lag_frames",
            "Frames not read yet, per partition: the log end (last stable offset) minus the "
            "analyzer's position (librdkafka statistics, every 5 s). Not the committed offset: "
            "a keeping-up analyzer commits up to a window of audio per stream behind.",
            ["partition"],
            registry=r,
        )
        self.commits = Counter("earwitness_commits_total", "Offset commits.", registry=r)
        self.behind = Gauge(
            "earwitness_behind_realtime_seconds",
            "How far the analyzer is behind real time: the age (wall clock against ew-ts) of "
            "the oldest window not yet published, or of the newest frame read on a partition "
            "with unread frames, whichever is more. The autoscaling signal.",
            registry=r,
        )
        self.engine_stalled = Gauge(
            "earwitness_engine_stalled_seconds",
            "How long windows have been in the engine with no caption coming out (0: none in "
            "it, or captions flowing). Past engine.stall_unready_s /readyz fails, past "
            "engine.stall_unhealthy_s /healthz.",
            registry=r,
        )
        ProcessCollector(registry=r)  # process_start_time_seconds: restarts, memory, CPU
        self.streams_retired = Counter(
            "earwitness_streams_retired_total",
            "Idle streams forgotten (state dropped, changelog cursor tombstoned).",
            registry=r,
        )
        self.windower = WindowerSnapshot()
        r.register(WindowerCollector(self.windower))

    def observe_windower(self, windower: Windower) -> None:
        """Copy the windower's figures for the HTTP thread (the poll loop calls this)."""
        self.windower.stats = replace(windower.stats)
        self.windower.streams = len(windower)
        self.windower.held_bytes = windower.held_bytes()


@dataclass
class WindowerSnapshot:
    """The windower's figures as of the poll loop's last copy: the HTTP thread reads only this,
    never the windower itself (whose dicts the poll loop changes meanwhile)."""

    stats: WindowStats = field(default_factory=WindowStats)
    streams: int = 0
    held_bytes: int = 0


class WindowerCollector(Collector):
    """``earwitness_windower_<stat>_total`` for every field of ``WindowStats``, plus gauges."""

    def __init__(self, snapshot: WindowerSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        stats = snapshot.stats
        for stat in fields(WindowStats):
            name = f"earwitness_windower_{stat.name}"
            yield CounterMetricFamily(
                name, stat.metadata.get("doc", stat.name), value=getattr(stats, stat.name)
            )
        yield GaugeMetricFamily(
            "earwitness_streams", "Streams held by the windower.", value=snapshot.streams
        )
        yield GaugeMetricFamily(
            "earwitness_held_audio_bytes",
            "Audio bytes the windower holds.",
            value=snapshot.held_bytes,
        )
