"""``earwitness export --config FILE``: captions (and alerts) from Kafka into Parquet files.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT: every buffer flushed), 2 for invalid
configuration, 1 for a fatal runtime error (fenced by another exporter, storage gone for good;
the orchestrator restarts the process, which resumes from the manifests).
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="export settings (YAML/TOML)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the settings (and the destination URL), then exit",
    )


def run(args: argparse.Namespace) -> int:
    from earwitness import failpoints
    from earwitness.config import load_settings
    from earwitness.errors import ConfigError, FatalError
    from export.config import ExportSettings

    try:
        settings = load_settings(ExportSettings, args.config)
        store = _store(settings)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    if args.check:
        logger.info("export settings are valid; destination %s", settings.destination.url)
        return 0
    failpoints.arm(settings.failpoints)
    try:
        return _serve(settings, store)
    except FatalError as exc:
        logger.error("fatal: %s", exc)
        return 1


def _store(settings):  # type: ignore[no-untyped-def]
    from export.store import Store, open_filesystem

    destination = settings.destination
    filesystem, root = open_filesystem(
        destination.url, destination.filesystem_options(), use_fsspec=destination.fsspec
    )
    return Store(filesystem, root, destination.compression)


def _serve(settings, store) -> int:  # type: ignore[no-untyped-def]
    """Owners: this function owns the exporter and the HTTP server (thread ``ew-http``)."""
    from earwitness.health import HealthServer, LoopHealth
    from export.exporter import Exporter
    from export.metrics import ExportMetrics

    metrics = ExportMetrics()
    health = LoopHealth(settings.health_stall_s)
    exporter = Exporter(settings, store, metrics, health)
    server = None
    if settings.metrics_port is not None:
        server = HealthServer(
            settings.metrics_host, settings.metrics_port, health, metrics.registry
        )
        server.start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: exporter.stop())
    try:
        return exporter.run()
    finally:
        if server is not None:
            server.stop()
