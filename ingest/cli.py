"""``earwitness ingest``: live sources → frames on Kafka, until SIGTERM.

    earwitness ingest --config sources.yaml               # many sources, one process
    earwitness ingest URL --stream ID [--config FILE]     # one source, no sources file

``--bootstrap`` and ``--topic`` override the file, as for ``earwitness publish``. The sources
file is re-read on SIGHUP and whenever its content changes (checked every ``reload_poll_s``):
added sources start, removed ones stop (``ew-eos`` first), changed ones restart, the others
are not touched. A file that no longer loads is reported and ignored; the running sources
stay. Kafka and HTTP settings take effect at the next start.

Exit codes: 0 after SIGTERM/SIGINT with every frame delivered, 1 when frames were left
undelivered at the stop timeout, 2 for invalid settings.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from earwitness.health import HealthServer
    from ingest.config import IngestSettings
    from ingest.metrics import IngestMetrics
    from ingest.service import Health, Ingest

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", nargs="?", help="one source (a URL or device FFmpeg opens)")
    parser.add_argument("--stream", help="stream id of URL (the Kafka key)")
    parser.add_argument("--config", type=Path, help="ingest settings: kafka, http, sources")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: from settings)")
    parser.add_argument("--topic", help="frames topic (default: from settings)")
    one = parser.add_argument_group("with URL: the source's settings (docs/sources.md)")
    one.add_argument("--transport", choices=["tcp", "udp"], help="RTSP transport")
    one.add_argument("--track", type=int, help="audio track (0 = the first audio stream)")
    one.add_argument("--input-format", help="FFmpeg input format (alsa, mpegts, ...)")
    one.add_argument("--username", help="user name for the URL")
    one.add_argument("--password-env", help="environment variable holding the password")
    one.add_argument("--password-file", type=Path, help="file holding the password")
    one.add_argument("--frame-ms", type=int, help="frame length, ms (default 20)")
    one.add_argument("--format", choices=["s16le", "f32le"], help="sample format (s16le)")
    parser.add_argument("--check", action="store_true", help="validate the settings, then exit")


def run(args: argparse.Namespace) -> int:
    from earwitness.errors import ConfigError

    try:
        settings = _settings(args)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    logger.info("%d source(s): %s", len(settings.sources), _names(settings))
    if args.check:
        return 0
    reload_from = args.config if args.url is None else None
    return _serve(settings, reload_from, args.bootstrap, args.topic)


def _settings(args: argparse.Namespace) -> IngestSettings:
    """The settings file (optional with URL), the URL's source, the flags over both."""
    from pydantic import ValidationError

    from earwitness.errors import ConfigError
    from ingest.config import SourceSettings, load_ingest_settings

    settings = load_ingest_settings(args.config)
    if args.url is not None:
        if not args.stream:
            raise ConfigError("a URL needs --stream ID (the Kafka key)")
        try:
            source = SourceSettings(stream_id=args.stream, url=args.url, **_source_flags(args))
        except ValidationError as exc:
            raise ConfigError(f"invalid source:\n{exc}") from exc
        settings = settings.model_copy(update={"sources": (source,)})
    elif args.config is None:
        raise ConfigError("give --config sources.yaml, or a URL and --stream ID")
    return _with_topic(settings, args.topic)


def _with_topic(settings: IngestSettings, topic: str | None) -> IngestSettings:
    if not topic:
        return settings
    kafka = settings.kafka.model_copy(update={"frames_topic": topic})
    return settings.model_copy(update={"kafka": kafka})


def _source_flags(args: argparse.Namespace) -> dict[str, object]:
    flags = {
        "transport": args.transport,
        "track": args.track,
        "input_format": args.input_format,
        "username": args.username,
        "password_env": args.password_env,
        "password_file": args.password_file,
        "frame_ms": args.frame_ms,
        "sample_format": args.format,
    }
    return {name: value for name, value in flags.items() if value is not None}


def _names(settings: IngestSettings) -> str:
    names = [s.stream_id for s in settings.sources]
    return ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")


def _serve(
    settings: IngestSettings, path: Path | None, bootstrap: str | None, topic: str | None
) -> int:
    """Owners: this function owns the supervisor and the HTTP server (thread ``ew-http``)."""
    from ingest.metrics import IngestMetrics
    from ingest.service import Health, Ingest

    metrics = IngestMetrics()
    health = Health(settings.http.health_stall_s)
    ingest = Ingest(settings, metrics, health, bootstrap=bootstrap)
    server = _http_server(settings, metrics, health)
    stop, reload = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    ingest.start()
    try:
        _loop(ingest, path, topic, stop, reload)
    finally:
        left = ingest.stop()
        if server is not None:
            server.stop()
    logger.info("ingest stopped; %d frame(s) undelivered", left)
    return 1 if left else 0


def _loop(
    ingest: Ingest,
    path: Path | None,
    topic: str | None,
    stop: threading.Event,
    reload: threading.Event,
) -> None:
    poll_s = ingest.settings.reload_poll_s
    digest = _digest(path)
    next_poll = time.monotonic() + poll_s
    while not stop.wait(1.0):
        ingest.tick()
        if path is None:
            continue
        due = poll_s > 0 and time.monotonic() >= next_poll
        if not (reload.is_set() or due):
            continue
        next_poll = time.monotonic() + poll_s
        now_digest = _digest(path)
        if reload.is_set() or now_digest != digest:
            reload.clear()
            digest = now_digest
            _reload(ingest, path, topic)


def _digest(path: Path | None) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else ""
    except OSError:
        return ""


def _reload(ingest: Ingest, path: Path, topic: str | None) -> None:
    from earwitness.errors import ConfigError
    from ingest.config import load_ingest_settings

    try:
        fresh = _with_topic(load_ingest_settings(path), topic)
    except ConfigError as exc:
        logger.error("sources file not reloaded, the running sources stay: %s", exc)
        return
    unchanged = {"sources": ingest.settings.sources}
    if fresh.model_copy(update=unchanged) != ingest.settings:
        logger.warning("settings other than sources changed in %s: they apply at restart", path)
    changes = ingest.apply(fresh.sources)
    logger.info(
        "sources reloaded: %d added, %d removed, %d restarted, %d running",
        len(changes.added),
        len(changes.removed),
        len(changes.restarted),
        len(ingest.sources),
    )


def _http_server(
    settings: IngestSettings, metrics: IngestMetrics, health: Health
) -> HealthServer | None:
    from earwitness.health import HealthServer

    if settings.http.port is None:
        return None
    server = HealthServer(settings.http.host, settings.http.port, health, metrics.registry)
    server.start()
    return server
