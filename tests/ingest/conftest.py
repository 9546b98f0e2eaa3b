"""Fixtures of the ingest tests: real servers (module scope), an in-process ``Ingest`` on a
thread of the test, and reading what it produced back through the real ``Windower``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingest.config import IngestKafka, IngestSettings, SourceSettings
from ingest.metrics import IngestMetrics
from ingest.service import Health, Ingest
from tests.ingest.servers import MediaHttpServer, RtspServer, require_gstreamer
from tests.support.kafka import consume
from windowing import Frame, Window, Windower, WindowSettings, decode_frame


@pytest.fixture(scope="module")
def rtsp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspServer]:
    require_gstreamer()
    server = RtspServer(tmp_path_factory.mktemp("rtsp")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def http(media_dir: Path) -> Iterator[MediaHttpServer]:
    server = MediaHttpServer(media_dir).start()
    yield server
    server.stop()


def ingest_settings(
    bootstrap: str, topic: str, *sources: SourceSettings, **kafka: object
) -> IngestSettings:
    return IngestSettings(
        kafka=IngestKafka(bootstrap_servers=bootstrap, frames_topic=topic, **kafka),  # type: ignore[arg-type]
        http={"port": None},  # type: ignore[arg-type]
        sources=sources,
    )


@contextmanager
def running(settings: IngestSettings) -> Iterator[Ingest]:
    """``Ingest`` started, its supervisor loop on thread ``ingest-test-loop``; stopped after."""
    ingest = Ingest(settings, IngestMetrics(), Health(60))
    ingest.start()
    done = threading.Event()

    def loop() -> None:
        while not done.wait(0.5):
            ingest.tick()

    thread = threading.Thread(target=loop, name="ingest-test-loop", daemon=True)
    thread.start()
    try:
        yield ingest
    finally:
        done.set()
        thread.join(10)
        ingest.stop()


def frames_on(bootstrap: str, topic: str, timeout_s: float = 15) -> dict[str, list[Frame]]:
    """Every frame on ``topic``, decoded (so valid v1), by stream id, in offset order."""
    by_stream: dict[str, list[Frame]] = {}
    for msg in consume(bootstrap, topic, timeout_s=timeout_s):
        frame = decode_frame(msg.key(), msg.value(), msg.headers(), (msg.partition(), msg.offset()))
        by_stream.setdefault(frame.stream_id, []).append(frame)
    return by_stream


def windows_of(frames: list[Frame], settings: WindowSettings) -> list[Window]:
    windower = Windower(settings)
    out: list[Window] = []
    for frame in frames:
        out += windower.push(frame, time.monotonic())
    return out + windower.flush_all()


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


def audio_s(frames: list[Frame]) -> float:
    return sum(f.n_samples / f.rate_hz for f in frames)


def delivered(ingest: Ingest, stream_id: str) -> float:
    """Frames delivered so far for a stream (its metric)."""
    return ingest.metrics.source(stream_id).frames._value.get()
