"""``earwitness publish``: recordings → frames in the wire format (v1), one stream per file.

    earwitness publish calls/*.wav --stream '{stem}'          # as fast as the broker takes them
    earwitness publish 'archive/**/*.mp4' --realtime          # a quoted glob; paced like live
    earwitness publish talk.flac --stream cam-12 --start-time 2026-11-30T08:00:00Z

Everything PyAV reads (``ingest/recording.py``): audio files and the audio track of video
files. ``--stream`` is a template (``{stem}``, ``{name}``, ``{n}``: the file's 1-based place)
and must give each file its own id. ``ew-ts`` starts at ``--start-time``, else at the file's
``creation_time``, else now. Files go ``--jobs`` at a time (with ``--realtime``: all at once,
as live streams do, up to 256). One progress bar with an ETA covers the job. A file that
cannot be read gets one error line and the others go on.

Exit codes: 0 when every file was published and delivered, 1 when a file failed or frames were
not delivered, 2 for bad arguments or settings.
"""

from __future__ import annotations

import argparse
import glob
import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from earwitness.errors import ConfigError
from earwitness.kafka import ToolSettings, load_tool_settings
from ingest.media import SourceError
from ingest.progress import Progress
from ingest.recording import FileStats, PublishPlan, read_frames

logger = logging.getLogger(__name__)

__all__ = ["PublishPlan", "add_arguments", "publish", "run"]
MAX_REALTIME_JOBS = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or quoted globs")
    parser.add_argument(
        "--stream", default="{stem}", help="stream id template: {stem}, {name}, {n} ({stem})"
    )
    parser.add_argument("--config", type=Path, help="any service's settings (broker and topic)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: from settings)")
    parser.add_argument("--topic", help="frames topic (default: the analyzer's input topic)")
    parser.add_argument("--frame-ms", type=int, default=20, help="frame length, ms (default 20)")
    parser.add_argument("--format", choices=["s16le", "f32le"], default="s16le")
    parser.add_argument("--rate-hz", type=int, help="resample to this rate (default: the file's)")
    parser.add_argument("--channels", type=int, help="mix to this many channels (the file's)")
    parser.add_argument("--track", type=int, help="audio track (0 = the first; default: best)")
    parser.add_argument("--start-time", help="ew-ts of the first sample, ISO 8601")
    parser.add_argument("--realtime", action="store_true", help="pace frames in real time")
    parser.add_argument("--loop", action="store_true", help="repeat the files until interrupted")
    parser.add_argument("--jobs", type=int, help="files at once (1; with --realtime: all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_tool_settings(args.config)
        plans = _plans(args, args.topic or settings.kafka.frames_topic)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    failures = _Failures()
    failures.missing = [p for p in args.paths if not _expand(p)]
    for pattern in failures.missing:
        logger.error("publish: %s: no such file", pattern)
    producer = Producer(_producer_config(settings, args.bootstrap, failures))
    progress = Progress({str(p.path): _size(p.path) for p in plans}, enabled=not args.no_progress)
    stop = _stop_on_signals()
    jobs = args.jobs or (min(len(plans), MAX_REALTIME_JOBS) if args.realtime else 1)
    try:
        _publish_all(producer, plans, stop, progress, failures, jobs=max(1, jobs))
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    finally:
        progress.close()
        remaining = producer.flush(60)
    return _summary(plans, failures, remaining)


def publish(
    producer: Producer, plan: PublishPlan, *, stop: threading.Event, progress: bool | Progress
) -> int:
    """Produce one file's frames (blocking while librdkafka's queue is full); returns how many
    were produced. Raises :class:`SourceError` if the file cannot be read (after ew-eos for
    what it gave)."""
    bar = progress if isinstance(progress, Progress) else Progress({}, enabled=progress)
    name = str(plan.path)
    stats = FileStats()
    started_mono, sent_ns = time.monotonic(), 0
    for frame in read_frames(plan, stop, lambda pos: bar.update(name, pos), stats):
        if plan.realtime:
            _sleep_until(started_mono + sent_ns / 1e9, stop)
        _produce(producer, plan.topic, frame.key, frame.value, frame.headers)
        sent_ns += frame.duration_ns
        stats.frames += 1
    bar.done(name)
    logger.info(
        "published %s as stream %r: %d frames, %.1f s of audio, ew-ts from %s%s",
        plan.path,
        plan.stream_id,
        stats.frames,
        sent_ns / 1e9,
        stats.clock,
        f", {stats.decode_errors} undecodable packets skipped" if stats.decode_errors else "",
    )
    return stats.frames


class _Failures:
    """What went wrong in a job, for the summary (deliveries are counted by librdkafka's thread)."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.missing: list[str] = []
        self.undelivered = 0
        self._lock = threading.Lock()

    def file(self, name: str, why: str) -> None:
        with self._lock:
            self.files[name] = why

    def delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            with self._lock:
                if not self.undelivered:
                    logger.error("publish: a frame was not delivered: %s", err.str())
                self.undelivered += 1


def _publish_all(
    producer: Producer,
    plans: list[PublishPlan],
    stop: threading.Event,
    progress: Progress,
    failures: _Failures,
    *,
    jobs: int,
) -> None:
    def one(plan: PublishPlan) -> None:
        try:
            publish(producer, plan, stop=stop, progress=progress)
        except SourceError as exc:
            progress.done(str(plan.path))
            failures.file(str(plan.path), exc.detail)
            logger.error("publish: cannot read %s (%s): %s", plan.path, exc.reason, exc.detail)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="publish") as pool:
        for _ in pool.map(one, plans):
            pass


def _summary(plans: list[PublishPlan], failures: _Failures, remaining: int) -> int:
    bad = len(failures.files) + len(failures.missing)
    if remaining:
        logger.error("publish: %d frames were not delivered in 60 s", remaining)
    logger.info(
        "publish: %d of %d file(s) published to %s",
        len(plans) - len(failures.files),
        len(plans) + len(failures.missing),
        plans[0].topic if plans else "-",
    )
    return 1 if bad or remaining or failures.undelivered else 0


def _plans(args: argparse.Namespace, topic: str) -> list[PublishPlan]:
    paths = [path for pattern in args.paths for path in _expand(pattern)]
    if not paths:
        raise ConfigError("publish: no files to publish")
    start_ns = _start_time(args.start_time)
    plans = [
        PublishPlan(
            path=path,
            stream_id=_stream_id(args.stream, path, n),
            topic=topic,
            frame_ms=args.frame_ms,
            fmt=args.format,
            realtime=args.realtime,
            loop=args.loop,
            start_ns=start_ns,
            track=args.track,
            rate_hz=args.rate_hz,
            channels=args.channels,
        )
        for n, path in enumerate(paths, start=1)
    ]
    ids = [p.stream_id for p in plans]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(
            f"publish: several files get stream id {twice[0]!r}: give --stream a {{stem}} or {{n}}"
        )
    return plans


def _expand(pattern: str) -> list[Path]:
    """A file as it is; a pattern (``*``, ``?``, ``[``, ``**``) to the files it matches, sorted."""
    path = Path(pattern)
    if path.exists() or not any(c in pattern for c in "*?["):
        return [path] if path.is_file() else []
    return [Path(p) for p in sorted(glob.glob(pattern, recursive=True)) if Path(p).is_file()]


def _stream_id(template: str, path: Path, n: int) -> str:
    try:
        value = template.format(stem=path.stem, name=path.name, n=n)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"publish: bad --stream template {template!r}: {exc}") from exc
    if not value or len(value.encode()) > 256:
        raise ConfigError(f"publish: stream id {value!r} for {path} is not 1-256 bytes")
    return value


def _start_time(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"publish: --start-time {text!r} is not ISO 8601") from exc
    if when.tzinfo is None:
        raise ConfigError(f"publish: --start-time {text!r} needs a time zone (Z or +hh:mm)")
    return int(when.timestamp() * 1e9)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, headers: list) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value, headers=headers)
            producer.poll(0)
            return
        except BufferError:
            producer.poll(0.1)  # local queue full: let deliveries drain
        except KafkaException as exc:
            raise ConfigError(f"cannot publish to {topic}: {exc}") from exc


def _producer_config(
    settings: ToolSettings, bootstrap: str | None, failures: _Failures
) -> dict[str, object]:
    return {
        **settings.kafka.client_config(),
        "bootstrap.servers": bootstrap or settings.kafka.bootstrap_servers,
        "enable.idempotence": True,
        "linger.ms": 5,
        "on_delivery": failures.delivery,
    }


def _sleep_until(deadline_mono: float, stop: threading.Event) -> None:
    delay = deadline_mono - time.monotonic()
    if delay > 0:
        stop.wait(delay)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop
