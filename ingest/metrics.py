"""Prometheus metrics of ``earwitness ingest``, per source (label ``stream_id``), own registry.

======================================================  ======================================
``earwitness_ingest_source_state{stream_id,...}``       connecting / up / backoff / failed
                                                        (failed: it needs a person — wrong
                                                        credentials, no such path, no audio —
                                                        and is still retried)
``earwitness_ingest_reconnects_total``                  connection attempts after the first
``earwitness_ingest_source_errors_total{reason}``       failed attempts (``SourceError`` reasons)
``earwitness_ingest_frames_total``                      frames handed to librdkafka
``earwitness_ingest_bytes_total``                       PCM bytes handed to librdkafka
``earwitness_ingest_decode_errors_total``               packets the decoder refused (skipped)
``earwitness_ingest_segments_total``                    segments started (connects, PTS jumps)
``earwitness_ingest_capture_to_produce_seconds``        first audio of a frame read → handed to
                                                        librdkafka
``earwitness_ingest_delivery_errors_total``             frames Kafka did not take (after
                                                        librdkafka's retries)
``earwitness_ingest_dropped_frames_total``              oldest frames dropped: buffer full
``earwitness_ingest_watchdog_abandoned_total``          readers stuck in FFmpeg, left behind
``earwitness_ingest_buffer_bytes``                      bytes waiting for librdkafka (no label)
``earwitness_ingest_sources``                           sources configured (no label)
======================================================  ======================================

Labels carry the stream id only, never a URL. A removed source's series are removed too.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STATES = ["connecting", "up", "backoff", "failed", "stopped"]
LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10)
_PER_SOURCE = (
    "reconnects",
    "frames",
    "bytes",
    "decode_errors",
    "segments",
    "latency",
    "delivery_errors",
    "dropped",
    "abandoned",
)


@dataclass(frozen=True, slots=True)
class SourceMetrics:
    """One source's children of the labelled metrics (looked up once, not per frame)."""

    reconnects: Counter
    frames: Counter
    bytes: Counter
    decode_errors: Counter
    segments: Counter
    latency: Histogram
    delivery_errors: Counter
    dropped: Counter
    abandoned: Counter


class IngestMetrics:
    """Every metric of one ingest process (tests make many, hence the own registry)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        sid = ["stream_id"]
        self._state = Gauge(
            "earwitness_ingest_source_state",
            "1 for the source's state, 0 for the others.",
            ["stream_id", "state"],
            registry=r,
        )
        self.errors = Counter(
            "earwitness_ingest_source_errors",
            "Failed attempts.",
            ["stream_id", "reason"],
            registry=r,
        )
        self._families = {
            "reconnects": Counter("earwitness_ingest_reconnects", "Reconnects.", sid, registry=r),
            "frames": Counter("earwitness_ingest_frames", "Frames to Kafka.", sid, registry=r),
            "bytes": Counter("earwitness_ingest_bytes", "PCM bytes to Kafka.", sid, registry=r),
            "decode_errors": Counter(
                "earwitness_ingest_decode_errors", "Packets not decoded.", sid, registry=r
            ),
            "segments": Counter("earwitness_ingest_segments", "Segments started.", sid, registry=r),
            "latency": Histogram(
                "earwitness_ingest_capture_to_produce_seconds",
                "First audio of a frame read → frame handed to librdkafka.",
                sid,
                buckets=LATENCY_BUCKETS_S,
                registry=r,
            ),
            "delivery_errors": Counter(
                "earwitness_ingest_delivery_errors", "Frames not delivered.", sid, registry=r
            ),
            "dropped": Counter(
                "earwitness_ingest_dropped_frames", "Frames dropped: buffer full.", sid, registry=r
            ),
            "abandoned": Counter(
                "earwitness_ingest_watchdog_abandoned", "Stuck readers left.", sid, registry=r
            ),
        }
        self.buffer_bytes = Gauge(
            "earwitness_ingest_buffer_bytes", "Bytes waiting for librdkafka.", registry=r
        )
        self.sources = Gauge("earwitness_ingest_sources", "Sources configured.", registry=r)
        self._by_key: dict[bytes, SourceMetrics] = {}
        self._detached = _detached()

    def source(self, stream_id: str) -> SourceMetrics:
        """The children of ``stream_id`` (made on first use)."""
        key = stream_id.encode()
        found = self._by_key.get(key)
        if found is None:
            children: dict[str, Any] = {
                name: self._families[name].labels(stream_id) for name in _PER_SOURCE
            }
            found = SourceMetrics(**children)
            self._by_key[key] = found
        return found

    def set_state(self, stream_id: str, state: str) -> None:
        for name in STATES:
            self._state.labels(stream_id, name).set(1 if name == state else 0)

    def by_key(self, key: bytes) -> SourceMetrics:
        """As :meth:`source`, by the Kafka key (the stream id's bytes); a removed source's late
        deliveries count nowhere (its series are gone, and must stay gone)."""
        return self._by_key.get(key, self._detached)

    def forget(self, stream_id: str) -> None:
        """Remove a source's series (it was removed from the sources file)."""
        self._by_key.pop(stream_id.encode(), None)
        for family in self._families.values():
            with contextlib.suppress(KeyError):
                family.remove(stream_id)
        for name in STATES:
            with contextlib.suppress(KeyError):
                self._state.remove(stream_id, name)
        for labels in [s for s in self._error_labels() if s[0] == stream_id]:
            self.errors.remove(*labels)

    def _error_labels(self) -> list[tuple[str, str]]:
        return [
            (sample.labels["stream_id"], sample.labels["reason"])
            for metric in self.errors.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        ]


def _detached() -> SourceMetrics:
    """Children in no registry: what a removed source's stragglers count into."""
    own = CollectorRegistry()
    children: dict[str, Any] = {
        name: Counter(f"detached_{name}", name, registry=own)
        for name in _PER_SOURCE
        if name != "latency"
    }
    return SourceMetrics(latency=Histogram("detached_latency", "-", registry=own), **children)
