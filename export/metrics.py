"""Prometheus metrics of the exporter, in a registry of their own.

================================================  =========================================
``earwitness_export_records_total{table}``        records exported as rows
``earwitness_export_rejected_total{table,reason}`` records that are not events (``_rejects/``)
``earwitness_export_files_total{table}``          data files published
``earwitness_export_bytes_total{table}``          bytes of data files published
``earwitness_export_flushes_total{table,result}`` flushes: ``ok``, ``failed`` (retried later)
``earwitness_export_flush_seconds``               time of one flush (stage, manifest, publish)
``earwitness_export_buffered_rows``               rows waiting for their flush
``earwitness_export_expired_offsets_total{table}`` offsets the topic's retention deleted before
                                                  they were exported (an outage too long)
================================================  =========================================
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ExportMetrics:
    """All metrics; one instance per exporter (tests make many, hence the own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records = Counter("earwitness_export_records", "Rows.", ["table"], registry=r)
        self.rejected = Counter(
            "earwitness_export_rejected", "Rejected records.", ["table", "reason"], registry=r
        )
        self.files = Counter("earwitness_export_files", "Data files.", ["table"], registry=r)
        self.bytes = Counter("earwitness_export_bytes", "Data bytes.", ["table"], registry=r)
        self.flushes = Counter(
            "earwitness_export_flushes", "Flushes.", ["table", "result"], registry=r
        )
        self.flush_seconds = Histogram(
            "earwitness_export_flush_seconds", "Flush time.", buckets=_BUCKETS_S, registry=r
        )
        self.buffered = Gauge("earwitness_export_buffered_rows", "Buffered rows.", registry=r)
        self.expired = Counter(
            "earwitness_export_expired_offsets", "Offsets lost to retention.", ["table"], registry=r
        )
