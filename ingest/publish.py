"""``earwitness publish``: any file soundfile reads → live frames in the wire format (v1).

Frames are ``--frame-ms`` long, keyed by ``--stream``, stamped with capture times that start now
and advance by the audio sent; ``--realtime`` paces them at the audio's own speed, ``--loop``
repeats the file with continuing ``ew-seq``/``ew-ts``. The last frame carries ``ew-eos`` unless
looping. Samples go out as ``s16le`` (default) or ``f32le`` with the file's own rate and channels.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from confluent_kafka import KafkaException, Producer

from earwitness.errors import ConfigError
from earwitness.kafka import ToolSettings, load_tool_settings
from windowing.wire import encode_frame

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="audio file (WAV, FLAC, OGG, ...)")
    parser.add_argument("--stream", required=True, help="stream id (the Kafka key)")
    parser.add_argument("--config", type=Path, help="analyzer settings (for broker and topic)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: from settings)")
    parser.add_argument("--topic", help="frames topic (default: the analyzer's input topic)")
    parser.add_argument("--frame-ms", type=int, default=20, help="frame length, ms (default 20)")
    parser.add_argument("--format", choices=["s16le", "f32le"], default="s16le")
    parser.add_argument("--realtime", action="store_true", help="pace frames in real time")
    parser.add_argument("--loop", action="store_true", help="repeat the file until interrupted")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


@dataclass(frozen=True)
class PublishPlan:
    """What to publish and how fast."""

    path: Path
    stream_id: str
    topic: str
    frame_ms: int
    fmt: str
    realtime: bool
    loop: bool


def run(args: argparse.Namespace) -> int:
    settings = load_tool_settings(args.config)
    plan = PublishPlan(
        path=args.path,
        stream_id=args.stream,
        topic=args.topic or settings.kafka.frames_topic,
        frame_ms=args.frame_ms,
        fmt=args.format,
        realtime=args.realtime,
        loop=args.loop,
    )
    producer = Producer(_producer_config(settings, args.bootstrap))
    stop = _stop_on_signals()
    try:
        sent = publish(producer, plan, stop=stop, progress=not args.no_progress)
    except (sf.LibsndfileError, OSError) as exc:
        raise ConfigError(f"cannot read {plan.path}: {exc}") from exc
    finally:
        remaining = producer.flush(30)
    if remaining:
        logger.error("%d frames were not delivered", remaining)
        return 1
    logger.info(
        "published %d frames of %s as stream %r to %s", sent, plan.path, plan.stream_id, plan.topic
    )
    return 0


def publish(producer: Producer, plan: PublishPlan, *, stop: threading.Event, progress: bool) -> int:
    """Produce the file's frames; returns how many were sent."""
    with sf.SoundFile(plan.path) as audio:
        rate, channels, total = audio.samplerate, audio.channels, audio.frames
    frame_len = max(1, rate * plan.frame_ms // 1000)
    start_ns, start_mono = time.time_ns(), time.monotonic()
    seq = 0
    bar = _Progress(total, enabled=progress)
    for block, last in _blocks(plan.path, frame_len, plan.loop, stop):
        ts_ns = start_ns + seq * frame_len * 1_000_000_000 // rate
        if plan.realtime:
            _sleep_until(start_mono + seq * frame_len / rate)
        key, value, headers = encode_frame(
            plan.stream_id,
            seq,
            ts_ns,
            rate,
            channels,
            plan.fmt,
            _pcm(block, plan.fmt),
            eos=last and not plan.loop,
        )
        _produce(producer, plan.topic, key, value, headers)
        seq += 1
        bar.update(seq * frame_len)
    bar.close()
    return seq


def _blocks(
    path: Path, frame_len: int, loop: bool, stop: threading.Event
) -> Iterator[tuple[np.ndarray, bool]]:
    """Frames of ``frame_len`` samples (2-D, float32); the flag marks the file's last one."""
    while not stop.is_set():
        with sf.SoundFile(path) as audio:
            blocks = audio.blocks(blocksize=frame_len, dtype="float32", always_2d=True)
            pending = next(blocks, None)
            if pending is None:
                return  # an empty file has no frames, looping or not
            for block in blocks:
                if stop.is_set():
                    return
                yield pending, False
                pending = block
            yield pending, True
        if not loop:
            return


def _pcm(block: np.ndarray, fmt: str) -> bytes:
    if fmt == "f32le":
        return block.astype("<f4").tobytes()
    return (np.clip(block, -1.0, 1.0 - 1 / 32768) * 32768).astype("<i2").tobytes()


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


def _producer_config(settings: ToolSettings, bootstrap: str | None) -> dict[str, object]:
    return {
        **settings.kafka.client_config(),
        "bootstrap.servers": bootstrap or settings.kafka.bootstrap_servers,
        "enable.idempotence": True,
        "linger.ms": 5,
    }


def _sleep_until(deadline_mono: float) -> None:
    delay = deadline_mono - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop


class _Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal, or forced)."""

    def __init__(self, total_samples: int, *, enabled: bool) -> None:
        self.total = max(total_samples, 1)
        self.enabled = enabled and sys.stderr.isatty()
        self.last_shown = 0.0

    def update(self, done_samples: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last_shown < 0.2:
            return
        self.last_shown = now
        share = (done_samples % self.total) / self.total
        filled = int(share * 30)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {share:6.1%}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
