"""Pure parts of ingest: URL redaction, settings and credentials, the outbox's bound, the bar."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from earwitness.errors import ConfigError
from ingest.config import IngestKafka, IngestSettings, SourceSettings
from ingest.framer import OutFrame
from ingest.metrics import IngestMetrics
from ingest.producer import RECORD_OVERHEAD_BYTES, Outbox, Publisher, producer_config
from ingest.progress import Progress
from ingest.urls import redact, scrub, with_credentials


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:hunter2@cam-7:554/s1?channel=1&token=abc", "rtsp://cam-7:554/s1"),
        ("https://cdn.example/live/index.m3u8?sig=XYZ", "https://cdn.example/live/index.m3u8"),
        ("udp://127.0.0.1:5000", "udp://127.0.0.1:5000"),
        ("/recordings/a.wav", "/recordings/a.wav"),
        ("hw:0", "hw:0"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_credentials_go_in_encoded_and_come_out_scrubbed() -> None:
    url = with_credentials("rtsp://cam:554/s1?x=1", "bob", SecretStr("p@ss:w/rd"))
    assert url == "rtsp://bob:p%40ss%3Aw%2Frd@cam:554/s1?x=1"
    assert (
        scrub(f"cannot open {url}", ("p@ss:w/rd",)) == "cannot open rtsp://bob:***@cam:554/s1?x=1"
    )
    assert with_credentials("rtsp://cam/s", None, None) == "rtsp://cam/s"


def test_a_password_in_the_url_is_refused_and_never_echoed() -> None:
    with pytest.raises(ValidationError) as info:
        SourceSettings(stream_id="c", url="rtsp://bob:hunter2@cam/s")
    assert "hunter2" not in str(info.value)
    assert "password_file or password_env" in str(info.value)


def test_password_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    from_file = SourceSettings(stream_id="a", url="rtsp://cam/s", password_file=secret)
    assert from_file.password().get_secret_value() == "from-file"  # type: ignore[union-attr]
    monkeypatch.setenv("CAM_PW", "from-env")
    from_env = SourceSettings(stream_id="b", url="rtsp://cam/s", password_env="CAM_PW")
    assert from_env.password().get_secret_value() == "from-env"  # type: ignore[union-attr]
    secret.write_text("rotated")  # read at every attempt
    assert from_file.password().get_secret_value() == "rotated"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"\$NOPE is not set"):
        SourceSettings(stream_id="c", url="rtsp://cam/s", password_env="NOPE").password()
    with pytest.raises(ValidationError):
        SourceSettings(stream_id="d", url="x", password_env="A", password_file=secret)


def test_stream_ids_are_unique_and_bounded() -> None:
    one = {"stream_id": "a", "url": "rtsp://cam/s"}
    with pytest.raises(ValidationError, match="appears twice"):
        IngestSettings(sources=[one, one])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="256 bytes"):
        SourceSettings(stream_id="é" * 129, url="x")


def _frame(key: bytes, n: int, size: int = 1000) -> OutFrame:
    return OutFrame(key, bytes([n % 256]) * size, [("ew-seq", str(n).encode())], 0.0)


def test_outbox_drops_the_oldest_past_its_bound_and_counts_them() -> None:
    metrics = IngestMetrics()
    metrics.source("a"), metrics.source("b")
    per = 1000 + RECORD_OVERHEAD_BYTES
    outbox = Outbox(10 * per, metrics)
    outbox.put(_frame(b"a", n) for n in range(8))
    outbox.put(_frame(b"b", n) for n in range(5))
    assert outbox.bytes == 10 * per
    kept = outbox.take(100)
    assert [(f.key, f.headers[0][1]) for f in kept][:2] == [(b"a", b"3"), (b"a", b"4")]
    assert len(kept) == 10 and outbox.bytes == 0
    assert metrics.source("a").dropped._value.get() == 3
    assert metrics.source("b").dropped._value.get() == 0
    outbox.put_back(kept[5:])
    assert outbox.take(1)[0] is kept[5]


def test_frames_go_straight_to_librdkafka_and_queue_behind_a_backlog_in_order() -> None:
    """librdkafka's queue (1 MiB, no broker to drain it) takes the first frames from the
    source's own thread; once it refuses one, that frame and every later one wait in the
    outbox in order, even the small ones librdkafka would still have room for."""
    metrics = IngestMetrics()
    metrics.source("a")
    kafka = IngestKafka(bootstrap_servers="127.0.0.1:1", producer_queue_max_bytes=2**20)
    outbox = Outbox(kafka.buffer_max_bytes, metrics)
    publisher = Publisher(producer_config(kafka), kafka, outbox, metrics)  # thread not started
    frames = [_frame(b"a", n, 10_000) for n in range(150)] + [
        _frame(b"a", n, 10) for n in range(150, 200)
    ]
    for frame in frames:
        publisher.put([frame])
    handed = int(metrics.source("a").frames._value.get())
    assert 90 <= handed < 110  # ~1 MiB of 10 kB frames
    assert outbox.take(1000) == frames[handed:]
    assert metrics.source("a").latency._sum.get() > 0


def test_metrics_of_a_removed_source_are_removed() -> None:
    metrics = IngestMetrics()
    metrics.source("cam").frames.inc()
    metrics.errors.labels("cam", "auth").inc()
    metrics.set_state("cam", "up")
    metrics.forget("cam")
    text = [
        s
        for m in metrics.registry.collect()
        for s in m.samples
        if s.labels.get("stream_id") == "cam"
    ]
    assert text == []


def test_progress_bar_with_eta() -> None:
    out = io.StringIO()
    bar = Progress({"a.wav": 1000, "b.mp4": 3000}, enabled=True, out=out, force=True)
    bar.update("a.wav", 1000)
    bar.done("a.wav")
    bar.update("b.mp4", 1000)
    line = bar.line(now=bar._started + 10)
    assert "50.0%" in line and "1/2 files" in line and "ETA 0:00:10" in line
    bar.close()
    assert out.getvalue().endswith("\n") and "\r[" in out.getvalue()
    assert not Progress({"a": 1}, enabled=True, out=io.StringIO()).enabled  # not a terminal


def test_docs_name_every_setting() -> None:
    """docs/sources.md's table covers every field of a source (and of the ingest root)."""
    from tests.support.kafka import REPO

    text = (REPO / "docs" / "sources.md").read_text()
    for name in [*SourceSettings.model_fields, *IngestSettings.model_fields]:
        assert f"`{name}`" in text or f"{name}:" in text, name
