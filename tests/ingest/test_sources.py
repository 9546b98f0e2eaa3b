"""Live sources against real servers started here → frames on the real broker → the real
Windower. RTSP (GStreamer): 8 kHz G.711 µ-law over UDP, 48 kHz stereo AAC over TCP, Opus, a
camera with video; HTTP: HLS segments and a progressive stream; MPEG-TS over UDP."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ingest.config import SourceSettings
from tests.ingest.conftest import (
    audio_s,
    delivered,
    frames_on,
    ingest_settings,
    running,
    wait_for,
    windows_of,
)
from tests.ingest.media import ts_datagrams, write_hls, write_tone
from tests.ingest.servers import MediaHttpServer, RtspServer, UdpTsSender, free_udp_port
from windowing import WindowSettings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

WINDOWS = WindowSettings(window_s=4, hop_s=2, min_window_s=0.5)
RUN_S = 12.0


def _check_live(frames, run_s: float, *, rate: int = 16_000, channels: int = 1) -> None:
    assert [f.seq for f in frames] == list(range(len(frames))), "one segment, consecutive"
    assert {(f.rate_hz, f.channels, f.fmt) for f in frames} == {(rate, channels, "s16le")}
    assert frames[-1].eos and not any(f.eos for f in frames[:-1])
    assert RUN_S * 0.8 < audio_s(frames) < run_s + 1, "about real time"
    assert abs(frames[0].ts_ns / 1e9 - time.time()) < run_s + 30, "ew-ts is wall-clock time"
    steps = np.diff([f.ts_ns for f in frames[:-1]])
    assert set(steps.tolist()) <= {20_000_000, 19_999_999, 20_000_001}, "ew-ts from sample counts"
    pcm = np.frombuffer(b"".join(f.pcm for f in frames[5:-5]), dtype="<i2").astype(float)
    assert np.sqrt(np.mean(pcm**2)) > 1000, "the tone, not silence"


def test_rtsp_cameras_g711_aac_opus_and_video(
    rtsp: RtspServer, kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    sources = [
        SourceSettings(stream_id="g711", url=rtsp.url("/pcmu"), transport="udp"),
        SourceSettings(stream_id="alaw", url=rtsp.url("/pcma")),
        SourceSettings(stream_id="aac", url=rtsp.url("/aac"), transport="tcp"),
        SourceSettings(stream_id="opus", url=rtsp.url("/opus")),
        SourceSettings(stream_id="camera", url=rtsp.url("/camera")),
        SourceSettings(stream_id="aac-own", url=rtsp.url("/aac"), rate_hz=None, channels=None),
    ]
    started = time.monotonic()
    with running(ingest_settings(kafka_bootstrap, topic, *sources)) as ingest:
        wait_for(lambda: all(s.state == "up" for s in ingest.sources.values()), 30, "all up")
        time.sleep(RUN_S)
        states = ingest.states()
        metrics = {s.stream_id: ingest.metrics.source(s.stream_id) for s in sources}
    elapsed = time.monotonic() - started
    got = frames_on(kafka_bootstrap, topic)
    assert states == dict.fromkeys(states, "up")
    for sid in ("g711", "alaw", "aac", "opus", "camera"):
        _check_live(got[sid], elapsed)
        assert metrics[sid].decode_errors._value.get() == 0
        assert len(windows_of(got[sid], WINDOWS)) >= 3
    _check_live(got["aac-own"], elapsed, rate=48_000, channels=2)
    # RTSP: ew-ts on the camera's clock (RTCP), which is this machine's here: close to arrival.
    first = got["aac"][0]
    assert abs(first.ts_ns - got["aac-own"][0].ts_ns) < 0.1e9


def test_hls_progressive_http_and_mpegts_over_udp(
    http: MediaHttpServer, media_dir: Path, kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    hls_dir = media_dir / "hls"
    hls_dir.mkdir()
    write_hls(hls_dir, seconds=6)
    write_tone(media_dir / "tone-10s.aac", fmt="adts", seconds=10)
    grams, every_s = ts_datagrams(10)
    port = free_udp_port()
    sources = [
        SourceSettings(stream_id="hls", url=http.url("hls/index.m3u8")),
        SourceSettings(stream_id="icecast", url=http.url("live/tone-10s.aac")),
        SourceSettings(
            stream_id="udp", url=f"udp://127.0.0.1:{port}", input_format="mpegts", read_timeout_s=3
        ),
    ]
    with running(ingest_settings(kafka_bootstrap, topic, *sources)) as ingest:
        sender = UdpTsSender(grams, every_s, port)
        wait_for(lambda: ingest.sources["icecast"].state == "up", 20, "the HTTP stream up")
        sender.start()
        wait_for(lambda: sender.sent == len(grams), 30, "the UDP sender done")
        sender.stop()
        wait_for(lambda: delivered(ingest, "icecast") >= 450, 20, "the HTTP stream's audio")
    got = frames_on(kafka_bootstrap, topic)
    hls = got["hls"]
    first_segment = hls[: next(i for i, f in enumerate(hls) if f.eos) + 1]
    assert [f.seq for f in first_segment] == list(range(len(first_segment)))
    assert 5.9 < audio_s(first_segment) < 6.2, "the whole VOD playlist, then ew-eos"
    for sid, seconds in (("icecast", 10.0), ("udp", 10.0)):
        frames = got[sid]
        first = frames[: next((i for i, f in enumerate(frames) if f.eos), len(frames)) + 1]
        assert seconds - 1.5 < audio_s(first) < seconds + 0.5, sid
        assert [f.seq for f in first] == list(range(len(first))), sid
        assert len(windows_of(first, WINDOWS)) >= 4, sid
