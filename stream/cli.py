"""``earwitness analyze --config FILE``: wires settings, metrics, the engine and the poll loop.

Start-up order: HTTP probes up (not ready) → topics checked (``stream/topics.py``) → engine
warm (``EngineWorker.start``) → consumer joins the group → ready. SIGTERM/SIGINT ask the loop
to drain; exit 0 after a clean drain, 3 if the engine died, 2 for bad settings or unreachable
Kafka at start, 1 for a fatal Kafka error.
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from earwitness import failpoints
from earwitness.errors import ConfigError, EngineDeadError, KafkaFatalError, TransientError
from stream.analyzer import EXIT_ENGINE_DEAD, Analyzer
from stream.config import AnalyzerSettings, load_analyzer_settings
from stream.engine import EngineWorker
from stream.metrics import AnalyzerMetrics
from stream.probes import Health, HealthServer
from stream.topics import ensure_topics
from windowing.window import Window

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML or TOML settings (env overrides it)")


def run(args: argparse.Namespace) -> int:
    if not logger.isEnabledFor(logging.DEBUG):
        logging.getLogger("vllm").setLevel(logging.WARNING)
    try:
        settings = load_analyzer_settings(args.config)
        ensure_topics(settings.kafka)
    except (ConfigError, TransientError) as exc:
        logger.error("%s", exc)
        return 2
    return serve(settings)


def serve(settings: AnalyzerSettings) -> int:
    failpoints.arm(settings.failpoints)
    metrics = AnalyzerMetrics()
    health = Health(stall_s=max(60.0, settings.kafka.max_poll_interval_ms / 1000 / 2))
    server = HealthServer(settings.http.host, settings.http.port, health, metrics.registry)
    server.start()
    worker = EngineWorker(settings.engine, settings.batch, _request_id(settings))
    health.engine_alive = lambda: not worker.dead
    try:
        return _serve(settings, worker, metrics, health)
    finally:
        worker.stop(finish=False)
        server.stop()


def _serve(
    settings: AnalyzerSettings, worker: EngineWorker, metrics: AnalyzerMetrics, health: Health
) -> int:
    try:
        worker.start()
    except EngineDeadError as exc:
        logger.error("%s", exc)
        return EXIT_ENGINE_DEAD
    health.beat()
    health.engine_warm = True
    analyzer = Analyzer(settings, worker, metrics, health)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: analyzer.stop())
    try:
        code = analyzer.run()
    except KafkaFatalError as exc:
        logger.error("fatal Kafka error: %s", exc)
        return 1
    worker.stop(finish=code == 0)
    logger.info("analyzer stopped (exit %d)", code)
    return code


def _request_id(settings: AnalyzerSettings) -> Callable[[Window], str]:
    revision = settings.engine.revision or "main"

    def request_id(window: Window) -> str:
        stream_id, segment_id, index = window.key
        return f"{stream_id}/{segment_id}/{index}@{revision}"

    return request_id
