"""``earwitness analyze --config FILE``: wires settings, metrics, the engine and the poll loop.

Start-up order: topics checked (``stream/topics.py``, and the audit's) → the guardian started
and signals handled → HTTP probes up (not ready) → engine warm (``EngineWorker.start``) → the
audit's ``start`` record → consumer joins the group → ready; the ``stop`` record on the way
out (``earwitness/audit_trail.py``). SIGTERM/SIGINT ask the loop to drain (or, during the
engine's start, stop at once); exit 0 after a clean stop, 3 if the engine died, 2 for bad
settings or unreachable Kafka at start, 1 for a fatal Kafka error.

Processes and threads, and who owns them::

    earwitness analyze (main thread: the poll loop, stream/analyzer.py)
    ├── process "guardian"          stream/engine/guardian.py: kills what is left if we die
    ├── thread "ew-http"            /metrics, /healthz, /readyz (earwitness/health.py)
    └── thread "ew-engine-loop"     the engine (stream/engine/), its VLLM::EngineCore process
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

from earwitness import failpoints
from earwitness.audit_trail import (
    Identity,
    check_audit_topics,
    ensure_audit_topics,
    start_audit,
    stop_audit,
)
from earwitness.config import settings_hash
from earwitness.errors import ConfigError, EngineDeadError, KafkaFatalError, TransientError
from stream.analyzer import EXIT_ENGINE_DEAD, Analyzer
from stream.config import AnalyzerSettings, HttpSettings, load_analyzer_settings
from stream.engine import EngineWorker
from stream.engine.processes import kill_descendants, start_guardian
from stream.engine.settings import check_model
from stream.engine.worker import StartInterrupted
from stream.metrics import AnalyzerMetrics
from stream.probes import Health, HealthServer
from stream.topics import check_topics, ensure_topics
from windowing.window import Window

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML or TOML settings (env overrides it)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the settings, the model directory and the topics (reachable, "
        "co-partitioned), print what was found, then exit without starting the engine",
    )


def run(args: argparse.Namespace) -> int:
    if not logger.isEnabledFor(logging.DEBUG):
        logging.getLogger("vllm").setLevel(logging.WARNING)
    try:
        settings = load_analyzer_settings(args.config)
        model = check_model(settings.engine)
        if args.check:
            return _check(settings, model)
        ensure_topics(settings.kafka)
        ensure_audit_topics(settings.audit, settings.kafka, create=settings.kafka.create_topics)
    except (ConfigError, TransientError) as exc:
        logger.error("%s", exc)
        return 2
    logger.info("model: %s", model)
    return serve(settings)


def _check(settings: AnalyzerSettings, model: str) -> int:
    """``--check``: what the analyzer would start with; 0 if it could start, 2 if not (the
    exit status a start would have)."""
    print(f"settings: valid (config hash {settings_hash(settings)[:12]})")
    print(f"model: {model}")
    lines, problems = check_topics(settings.kafka)
    audit_lines, audit_problems = check_audit_topics(
        settings.audit, settings.kafka, create=settings.kafka.create_topics
    )
    lines, problems = [*lines, *audit_lines], [*problems, *audit_problems]
    for line in lines:
        print(f"topic {line}")
    for problem in problems:
        logger.error("%s", problem)
    return 2 if problems else 0


ENGINE_STOP_S = 30.0
"""How long the engine may take to stop (vLLM's shutdown plus the reaping) on the way out."""


def serve(settings: AnalyzerSettings) -> int:
    """Run until SIGTERM/SIGINT (drain, exit 0), engine death (3) or a fatal Kafka error (1).

    No exit path leaves an engine process behind: signals are handled from the first moment
    (also while the engine starts), whatever is left is killed on the way out
    (``kill_descendants``), and the guardian process kills it if this one is SIGKILLed.
    Shutdown takes at most ``batch.drain_timeout_s`` + a checkpoint + :data:`ENGINE_STOP_S`.
    """
    failpoints.arm(settings.failpoints)
    guardian = start_guardian()
    stopping = _Stopping(keep=[guardian.pid])
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.request())
    metrics = AnalyzerMetrics()
    engine = settings.engine
    health = Health(
        stall_s=max(60.0, settings.kafka.max_poll_interval_ms / 1000 / 2),
        engine_unready_s=engine.stall_unready_s,
        engine_unhealthy_s=engine.stall_unhealthy_s,
    )
    server = http_server(settings.http, health, metrics.registry)
    server.start()
    worker = EngineWorker(settings.engine, settings.batch, _request_id(settings))
    health.engine_alive = lambda: not worker.dead
    health.engine_stalled_s = lambda: worker.stalled_s
    try:
        return _serve(settings, worker, metrics, health, stopping)
    finally:
        worker.stop(finish=False, timeout_s=ENGINE_STOP_S)
        kill_descendants(keep=stopping.keep)
        server.stop()


def http_server(http: HttpSettings, health: Health, registry: CollectorRegistry) -> HealthServer:
    """``/metrics`` (behind ``http.metrics_token`` when set), ``/healthz``, ``/readyz``; not
    started."""
    token = http.metrics_token.get_secret_value() if http.metrics_token else None
    return HealthServer(http.host, http.port, health, registry, token=token)


class _Stopping:
    """What the signal handlers set: a flag for the start-up, then the analyzer's stop()."""

    def __init__(self, keep: list[int]) -> None:
        self.requested = False
        self.analyzer: Analyzer | None = None
        self.keep = keep
        """Processes of ours that outlive a stop (the guardian)."""

    def request(self) -> None:
        self.requested = True
        if self.analyzer is not None:
            self.analyzer.stop()


def _serve(
    settings: AnalyzerSettings,
    worker: EngineWorker,
    metrics: AnalyzerMetrics,
    health: Health,
    stopping: _Stopping,
) -> int:
    try:
        worker.start(interrupted=lambda: stopping.requested)
    except StartInterrupted:
        logger.info("stopped while the engine was starting: killing its processes")
        kill_descendants(keep=stopping.keep)  # first, so vLLM's start-up fails fast
        return 0
    except EngineDeadError as exc:
        logger.error("%s", exc)
        return EXIT_ENGINE_DEAD
    health.beat()
    health.engine_warm = True
    analyzer = stopping.analyzer = Analyzer(settings, worker, metrics, health)
    if stopping.requested:
        analyzer.stop()
    try:
        trail = start_audit(settings.audit, settings.kafka, _identity(settings, analyzer))
    except (ConfigError, TransientError) as exc:
        logger.error("cannot start: %s", exc)
        return 2
    code = 1
    try:
        code = analyzer.run()
    except KafkaFatalError as exc:
        logger.error("fatal Kafka error: %s", exc)
        return 1
    finally:
        stop_audit(trail, code)
    logger.info("analyzer stopped (exit %d)", code)
    return code


def _identity(settings: AnalyzerSettings, analyzer: Analyzer) -> Identity:
    """The analyzer as its audit records name it: the same instance and hash as its events."""
    info = analyzer.context.analyzer
    return Identity(
        service="analyzer",
        instance=info.instance,
        config_hash=info.config_hash,
        model=settings.engine.model,
        model_revision=settings.engine.revision or "main",
    )


def _request_id(settings: AnalyzerSettings) -> Callable[[Window], str]:
    revision = settings.engine.revision or "main"

    def request_id(window: Window) -> str:
        stream_id, segment_id, index = window.key
        return f"{stream_id}/{segment_id}/{index}@{revision}"

    return request_id
