"""``earwitness console --config FILE``: the live web console.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 2 for invalid configuration or a cluster it
cannot reach at start, 1 when the reader stopped on a fatal error.

Owners (:func:`serve`): it owns the :class:`~console.store.Store` (handed to the reader thread,
its only user), the reader thread ``ew-console-reader``, the metrics server ``ew-http``, the
ack producer, and uvicorn's event loop in the main thread (which owns the live-update hub and
the HTTP connections). Shutdown order: uvicorn stops (live streams end), then the reader, then
the producer is flushed, then the database closes.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from earwitness.errors import ConfigError

if TYPE_CHECKING:
    import uvicorn

    from console.config import ConsoleSettings

logger = logging.getLogger(__name__)

CHATTY_LOGGERS = ("sse_starlette",)
"""Libraries that log response bodies (live updates carry caption text) at DEBUG: kept at INFO
whatever ``--log-level`` says, so caption text never reaches the log."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="console settings (YAML/TOML)")
    parser.add_argument("--check", action="store_true", help="validate the settings, then exit")


def run(args: argparse.Namespace) -> int:
    from console.config import ConsoleSettings
    from earwitness.config import load_settings
    from earwitness.errors import FatalError, TransientError

    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))
    try:
        settings = load_settings(ConsoleSettings, args.config)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    if args.check:
        return 0
    try:
        return serve(settings)
    except (ConfigError, TransientError) as exc:
        logger.error("cannot start: %s", exc)
        return 2
    except FatalError as exc:
        logger.error("fatal: %s", exc)
        return 1


def serve(settings: ConsoleSettings) -> int:
    """Run the console until SIGTERM/SIGINT."""
    import uvicorn

    from console.acks import AckWriter, ensure_acks_topic
    from console.live import Hub
    from console.metrics import ConsoleMetrics
    from console.queries import Queries
    from console.reader import ConsoleHealth, TopicReader
    from console.render import templates
    from console.store import Store
    from console.web import App, create_app
    from earwitness.health import HealthServer

    ensure_acks_topic(settings.kafka)
    store = Store(settings.store.path, settings.store.retention_days, settings.store.journal_rows)
    metrics, health = ConsoleMetrics(), ConsoleHealth(settings.health_stall_s)
    queries = Queries(settings.store.path)
    hub = Hub(store.epoch, queries, metrics)
    acks = AckWriter(settings.kafka)
    app = App(settings, queries, hub, acks, metrics, templates())
    reader = TopicReader(
        kafka=settings.kafka, store_settings=settings.store, store=store, publish=hub.publish,
        metrics=metrics, health=health,
    )  # fmt: skip
    probes = None
    if settings.metrics_port is not None:
        probes = HealthServer(
            settings.metrics_host, settings.metrics_port, health, metrics.registry
        )
    server = uvicorn.Server(_uvicorn_config(settings, create_app(app)))
    _after_uvicorn_signals()
    sock = _listen(settings)
    try:
        reader.start()
        if probes is not None:
            probes.start()
        server.run(sockets=[sock])
    finally:
        sock.close()
        reader.stop()
        if probes is not None:
            probes.stop()
        acks.close()
        store.close()
    return 1 if reader.error is not None else 0


def _after_uvicorn_signals() -> None:
    """uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to the handler it found:
    make that a no-op, so the shutdown order above runs and the exit code is ours."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: None)


def _uvicorn_config(settings: ConsoleSettings, asgi: object) -> uvicorn.Config:
    import uvicorn

    return uvicorn.Config(
        asgi,  # type: ignore[arg-type]
        host=settings.http.host,
        port=settings.http.port,
        log_config=None,  # logging is configured once, in earwitness.cli.main
        access_log=False,  # console.security.Guard logs requests without their query strings
        proxy_headers=False,  # the peer address is what auth.trusted_proxies is checked on
        timeout_graceful_shutdown=5,
        lifespan="on",
    )


def _listen(settings: ConsoleSettings) -> socket.socket:
    """The web page's socket, bound before uvicorn starts, so the URL is known and logged."""
    family = socket.AF_INET6 if ":" in settings.http.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.http.host, settings.http.port))
        sock.listen(2048)  # from now on connections wait in the backlog, none is refused
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {settings.http.host}:{settings.http.port}: {exc}"
        ) from exc
    host, port = sock.getsockname()[:2]
    logger.info(
        "console at http://%s:%d/", f"[{host}]" if family == socket.AF_INET6 else host, port
    )
    return sock
