"""Prometheus metrics of the console, in a registry of their own.

==================================================  =======================================
``earwitness_console_records_total{topic}``         records applied to the database
``earwitness_console_bad_records_total``            records that could not be read
                                                    (``topic``, ``reason``); logged with
                                                    their position, never their text
``earwitness_console_batch_seconds``                one batch: parse + write + commit
``earwitness_console_caught_up``                    1 once every partition was read to the
                                                    end it had at start (rebuild finished)
``earwitness_console_purged_windows_total``         windows deleted by retention
``earwitness_console_live_clients``                 connected live-update (SSE) clients
``earwitness_console_live_messages_total``          SSE messages sent (``view``)
``earwitness_console_live_resets_total``            clients told to reload (too far behind,
                                                    or a rebuilt database)
``earwitness_console_listen_total{outcome}``        window audio requests
``earwitness_console_listen_seconds``               frames read + window rebuilt
``earwitness_console_acks_total{outcome}``          acknowledgements written
==================================================  =======================================
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ConsoleMetrics:
    """All metrics; one instance per console (tests make many, hence the own registry)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.records = Counter(
            "earwitness_console_records", "Records applied.", ["topic"], registry=r
        )
        self.bad_records = Counter(
            "earwitness_console_bad_records", "Unreadable records.", ["topic", "reason"], registry=r
        )
        self.batch_seconds = Histogram(
            "earwitness_console_batch_seconds", "Seconds per batch.", buckets=_SECONDS, registry=r
        )
        self.caught_up = Gauge(
            "earwitness_console_caught_up", "1 once the start-up backlog is read.", registry=r
        )
        self.purged = Counter(
            "earwitness_console_purged_windows", "Windows deleted by retention.", registry=r
        )
        self.live_clients = Gauge(
            "earwitness_console_live_clients", "Connected SSE clients.", registry=r
        )
        self.live_messages = Counter(
            "earwitness_console_live_messages", "SSE messages sent.", ["view"], registry=r
        )
        self.live_resets = Counter(
            "earwitness_console_live_resets", "Clients told to reload.", registry=r
        )
        self.listen = Counter(
            "earwitness_console_listen", "Window audio requests.", ["outcome"], registry=r
        )
        self.listen_seconds = Histogram(
            "earwitness_console_listen_seconds", "Seconds to rebuild a window.",
            buckets=_SECONDS, registry=r,
        )  # fmt: skip
        self.acks = Counter(
            "earwitness_console_acks", "Acknowledgements written.", ["outcome"], registry=r
        )
