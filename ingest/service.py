"""The ingest process: many sources, one outbox, one Kafka producer, probes; sources change live.

::

    Source xN (thread ew-ingest-src-<id> each) ──► Publisher.put ──► librdkafka ──► Kafka
                                                      └─ backlog: Outbox, drained by
                                                         thread ew-ingest-kafka
          ▲ start / stop / check (watchdog)
    Ingest (the supervisor: the main thread's loop, ``tick()`` every second)
          └─ apply(sources): added start, removed stop (ew-eos first), changed restart;
             the others are not touched

Owners: :class:`Ingest` owns the sources, the outbox, the publisher and (in ``cli.py``) the
HTTP server. ``stop()`` stops every source (each sends its ``ew-eos``), then drains the
outbox and flushes the producer for ``stop_timeout_s``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from earwitness.health import LoopHealth
from ingest.config import IngestSettings, SourceSettings
from ingest.metrics import IngestMetrics
from ingest.producer import Outbox, Publisher, producer_config
from ingest.source import Source

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Changes:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()


class Health(LoopHealth):
    """``/healthz``: the supervisor loop turns and the producer thread lives. ``/readyz``: the
    cluster answered (metadata or a delivery) and no Kafka error came after."""

    def __init__(self, stall_s: float) -> None:
        super().__init__(stall_s)
        self.publisher: Publisher | None = None

    def healthy(self) -> tuple[bool, str]:
        if self.publisher is not None and not self.publisher.alive():
            return False, "the Kafka producer thread died"
        return super().healthy()

    def ready(self) -> tuple[bool, str]:
        if self.publisher is None or not self.publisher.reachable:
            return False, "Kafka is not reachable"
        return self.healthy()


class Ingest:
    """The supervisor. Not thread-safe: one thread (the main loop) calls it."""

    def __init__(
        self,
        settings: IngestSettings,
        metrics: IngestMetrics,
        health: Health,
        *,
        bootstrap: str | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.health = health
        self.outbox = Outbox(settings.kafka.buffer_max_bytes, metrics)
        self.publisher = Publisher(
            producer_config(settings.kafka, bootstrap), settings.kafka, self.outbox, metrics
        )
        health.publisher = self.publisher
        self.sources: dict[str, Source] = {}

    def start(self) -> None:
        self.publisher.start()
        self.apply(self.settings.sources)
        logger.info(
            "ingest: %d source(s) → %s", len(self.sources), self.settings.kafka.frames_topic
        )

    def apply(self, sources: tuple[SourceSettings, ...]) -> Changes:
        """Make the running sources ``sources``: start, stop, restart only what changed."""
        wanted = {s.stream_id: s for s in sources}
        removed = tuple(sid for sid in self.sources if sid not in wanted)
        restarted = tuple(
            sid
            for sid, s in wanted.items()
            if sid in self.sources and self.sources[sid].settings != s
        )
        added = tuple(sid for sid in wanted if sid not in self.sources)
        for sid in (*removed, *restarted):
            self.sources.pop(sid).stop()
            self.metrics.forget(sid)
        for sid in (*restarted, *added):
            self.sources[sid] = Source(wanted[sid], self.publisher, self.metrics)
            self.sources[sid].start()
        self.metrics.sources.set(len(self.sources))
        return Changes(added, removed, restarted)

    def tick(self) -> None:
        """Once a second from the main loop: the watchdog, and the liveness beat."""
        now = time.monotonic()
        for source in self.sources.values():
            source.check(now)
        self.health.beat()

    def stop(self) -> int:
        """Stop every source (``ew-eos`` each), then flush; returns frames left undelivered."""
        for source in self.sources.values():
            source.stop()
        deadline = time.monotonic() + 2.0
        for source in self.sources.values():
            source.join(deadline - time.monotonic())
        return self.publisher.stop(self.settings.stop_timeout_s)

    def states(self) -> dict[str, str]:
        return {sid: source.state for sid, source in self.sources.items()}
