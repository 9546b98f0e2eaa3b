"""Sources that fail: a camera that drops and comes back, one that never answers, wrong
credentials, a refused port, a reader stuck inside FFmpeg, and Kafka out of reach. Real
servers, real broker, the real Windower; nothing here is faked."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest.config import BackoffSettings, SourceSettings
from tests.ingest.conftest import (
    audio_s,
    delivered,
    frames_on,
    ingest_settings,
    running,
    wait_for,
    windows_of,
)
from tests.ingest.servers import RtspServer, SilentServer, require_gstreamer
from windowing import WindowSettings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FAST = BackoffSettings(initial_s=0.5, max_s=2.0, reset_after_s=2.0)
WINDOWS = WindowSettings(window_s=4, hop_s=2, min_window_s=0.5)


@pytest.fixture
def own_rtsp(tmp_path: Path) -> Iterator[RtspServer]:
    """A server of this test's own: it is stopped and restarted."""
    require_gstreamer()
    server = RtspServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer().start()
    yield server
    server.stop()


def _counter(ingest, name: str, stream_id: str) -> float:
    return getattr(ingest.metrics.source(stream_id), name)._value.get()


def test_a_camera_that_drops_and_comes_back(
    own_rtsp: RtspServer, kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    """
    server   ████████████ stopped ░░░░░░ restarted ████████████
    frames   seq 0 … n, ew-eos        │  seq 0 … m (ew-ts after the first segment's end)
    windows  #0 #1 #2 … (segment 1)   │  #0 #1 #2 … (segment 2)
    """
    topic = new_topic()
    source = SourceSettings(
        stream_id="cam", url=own_rtsp.url("/aac"), read_timeout_s=2, stall_s=3, backoff=FAST
    )
    with running(ingest_settings(kafka_bootstrap, topic, source)) as ingest:
        wait_for(lambda: delivered(ingest, "cam") >= 400, 40, "8 s of audio before the drop")
        own_rtsp.stop()
        wait_for(lambda: ingest.sources["cam"].state in ("backoff", "connecting"), 20, "the drop")
        time.sleep(3)
        own_rtsp.restart()
        before = delivered(ingest, "cam")
        wait_for(lambda: delivered(ingest, "cam") >= before + 400, 60, "8 s after the return")
        reconnects = _counter(ingest, "reconnects", "cam")
        segments = _counter(ingest, "segments", "cam")
    frames = frames_on(kafka_bootstrap, topic)["cam"]
    cut = next(i for i, f in enumerate(frames) if f.eos)
    first, second = frames[: cut + 1], frames[cut + 1 :]
    assert [f.seq for f in first] == list(range(len(first)))
    assert [f.seq for f in second] == list(range(len(second)))
    assert second[0].ts_ns >= first[-1].ts_ns + 3e9, "time forward across the gap"
    assert audio_s(first) > 7 and audio_s(second) > 7
    assert reconnects >= 1 and segments == 2
    windows = windows_of(frames, WINDOWS)
    by_segment: dict[int, list[int]] = {}
    for window in windows:
        by_segment.setdefault(window.segment_id, []).append(window.index)
    assert sorted(by_segment) == [first[0].ts_ns, second[0].ts_ns], "a new segment after the gap"
    assert all(len(indices) >= 3 for indices in by_segment.values()), "windows on both sides"


def test_bad_sources_never_slow_a_good_one(  # noqa: PLR0917 - fixtures
    rtsp: RtspServer,
    silent: SilentServer,
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A good camera next to: one that accepts and never answers, wrong credentials, a
    refused port. Each bad one fails clearly and backs off; the good one never notices."""
    topic = new_topic()
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password-42")
    bad = {"open_timeout_s": 2.0, "read_timeout_s": 2.0, "backoff": FAST}
    sources = [
        SourceSettings(stream_id="good", url=rtsp.url("/pcmu")),
        SourceSettings(stream_id="silent", url=f"rtsp://127.0.0.1:{silent.port}/x", **bad),
        SourceSettings(
            stream_id="wrong",
            url=rtsp.url("/private/aac"),
            username=rtsp.user,
            password_file=wrong,
            **bad,
        ),
        SourceSettings(stream_id="refused", url="rtsp://127.0.0.1:1/x", **bad),
    ]
    caplog.set_level(logging.INFO)
    with running(ingest_settings(kafka_bootstrap, topic, *sources)) as ingest:
        wait_for(lambda: ingest.sources["good"].state == "up", 30, "the good camera up")
        up_at = time.monotonic()
        time.sleep(12)
        up_for = time.monotonic() - up_at
        states = ingest.states()
        errors = {
            (s.labels["stream_id"], s.labels["reason"])
            for m in ingest.metrics.errors.collect()
            for s in m.samples
            if s.name.endswith("_total") and s.value > 0
        }
        attempts = {sid: _counter(ingest, "reconnects", sid) for sid in ("silent", "wrong")}
        last_errors = {sid: ingest.sources[sid].last_error for sid in states}
    got = frames_on(kafka_bootstrap, topic)
    assert set(got) == {"good"}, "nothing from the bad sources"
    good = got["good"]
    assert [f.seq for f in good] == list(range(len(good))), "one segment: never interrupted"
    assert audio_s(good) > up_for - 1
    assert states["good"] == "up"
    assert states["wrong"] == "failed" and states["silent"] in ("backoff", "connecting")
    assert {("wrong", "auth"), ("silent", "timeout"), ("refused", "refused")} <= errors
    assert attempts["silent"] >= 1 and attempts["wrong"] >= 2, "retried with backoff"
    assert "401" in last_errors["wrong"] and "Unauthorized" in last_errors["wrong"]
    log = caplog.text + " ".join(last_errors.values())
    assert "not-the-password-42" not in log and "retrying in" in log


def test_the_watchdog_leaves_a_reader_stuck_in_ffmpeg_behind(
    silent: SilentServer, kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    """A camera that accepts and never answers, with FFmpeg's timeouts too long to help: the
    watchdog (driven here with a clock past the reader's deadline) abandons the stuck thread
    and starts another; the stuck one is dropped, whatever it does later."""
    topic = new_topic()
    source = SourceSettings(
        stream_id="stuck",
        url=f"rtsp://127.0.0.1:{silent.port}/x",
        open_timeout_s=600,
        read_timeout_s=600,
        backoff=FAST,
    )
    with running(ingest_settings(kafka_bootstrap, topic, source)) as ingest:
        stuck = ingest.sources["stuck"]
        wait_for(lambda: len(silent._held) >= 1, 20, "the reader connected")
        first_thread = stuck._thread
        assert not stuck.check(time.monotonic()), "within its deadline: left alone"
        assert stuck.check(time.monotonic() + 700), "past it: abandoned"
        assert _counter(ingest, "abandoned", "stuck") == 1
        assert stuck._thread is not first_thread and stuck._thread.is_alive()
        assert first_thread in stuck.stuck_threads and first_thread.is_alive()
        wait_for(lambda: len(silent._held) >= 2, 20, "a fresh reader connected")


def test_kafka_out_of_reach_buffers_then_drops_the_oldest(
    rtsp: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens where Kafka should be: librdkafka's queue (1 MiB) fills, then the
    outbox (64 KiB), then the oldest frames go, counted and logged. The sources never block:
    they stay up and keep reading at real time."""
    caplog.set_level(logging.WARNING)
    sources = [
        SourceSettings(stream_id=f"cam-{n}", url=rtsp.url("/aac"), rate_hz=None, channels=None)
        for n in range(3)
    ]
    settings = ingest_settings(
        "127.0.0.1:1",
        "frames",
        *sources,
        buffer_max_bytes=64 * 1024,
        producer_queue_max_bytes=2**20,
    )
    settings = settings.model_copy(update={"stop_timeout_s": 1.0})
    with running(settings) as ingest:
        wait_for(lambda: all(s.state == "up" for s in ingest.sources.values()), 30, "all up")
        wait_for(
            lambda: _counter(ingest, "dropped", "cam-0") > 100, 30, "the oldest frames dropped"
        )
        time.sleep(2)
        assert ingest.outbox.bytes <= 64 * 1024
        assert not ingest.publisher.reachable
        assert ingest.states() == dict.fromkeys(ingest.states(), "up")
        dropped = [_counter(ingest, "dropped", f"cam-{n}") for n in range(3)]
    assert all(d > 0 for d in dropped), dropped
    assert "dropped the oldest" in caplog.text
