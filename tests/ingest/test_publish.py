"""``earwitness publish`` on recordings PyAV writes here: audio and video files, a glob, one
stream each, creation_time and --start-time for ew-ts, --realtime, and a corrupt file among
good ones (one error line; the others are published)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.ingest.conftest import audio_s, frames_on
from tests.ingest.media import write_tone
from tests.support.kafka import REPO

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CREATED = "2026-03-04T05:06:07.000000Z"
CREATED_NS = 1772600767 * 10**9
FILES = {  # name: (container, codec, rate, layout, seconds, video)
    "call-0001.wav": ("wav", "pcm_s16le", 8_000, "mono", 3.0, False),
    "call-0002.flac": ("flac", "flac", 44_100, "stereo", 2.5, False),
    "meeting.mp4": ("mp4", "aac", 48_000, "stereo", 4.0, True),
    "lecture.mkv": ("matroska", "libopus", 48_000, "stereo", 3.0, True),
    "radio.mp3": ("mp3", "libmp3lame", 44_100, "stereo", 2.0, False),
}


def _publish(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "earwitness.cli", "publish", *args, "--no-progress"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("recordings")
    for name, (fmt, codec, rate, layout, seconds, video) in FILES.items():
        metadata = {"creation_time": CREATED} if name == "meeting.mp4" else None
        write_tone(
            folder / name,
            fmt=fmt,
            codec=codec,
            rate=rate,
            layout=layout,
            seconds=seconds,
            video=video,
            metadata=metadata,
        )
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    good = (folder / "meeting.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(good[: len(good) // 3])
    return folder


def test_a_glob_of_recordings_with_corrupt_files_among_them(
    recordings: Path, kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    done = _publish(str(recordings / "*"), "--bootstrap", kafka_bootstrap, "--topic", topic)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 2, done.stderr
    assert any("cannot read" in e and "corrupt.mp4" in e for e in errors)
    assert any("cannot read" in e and "truncated.mp4" in e for e in errors)
    assert "5 of 7 file(s) published" in done.stderr
    got = frames_on(kafka_bootstrap, topic)
    assert set(got) == {Path(name).stem for name in FILES}, "one stream per file, by {stem}"
    for name, (_, _, rate, layout, seconds, _) in FILES.items():
        frames = got[Path(name).stem]
        assert [f.seq for f in frames] == list(range(len(frames))), name
        assert frames[-1].eos and not any(f.eos for f in frames[:-1]), name
        assert (frames[0].rate_hz, frames[0].channels) == (rate, 1 if layout == "mono" else 2)
        assert abs(audio_s(frames) - seconds) < 0.1, name
    assert got["meeting"][0].ts_ns == CREATED_NS, "the container's creation_time"
    assert abs(got["call-0001"][0].ts_ns / 1e9 - time.time()) < 120, "else now"


def test_start_time_templates_resampling_and_realtime(
    recordings: Path, kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    files = [str(recordings / "call-0001.wav"), str(recordings / "call-0002.flac")]
    started = time.monotonic()
    done = _publish(
        *files,
        "--stream",
        "desk-{n}",
        "--start-time",
        "2026-01-01T00:00:00+00:00",
        "--rate-hz",
        "16000",
        "--channels",
        "1",
        "--realtime",
        "--bootstrap",
        kafka_bootstrap,
        "--topic",
        topic,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed >= 3.0, "paced: the longer file takes 3 s, both at once"
    got = frames_on(kafka_bootstrap, topic)
    assert sorted(got) == ["desk-1", "desk-2"]
    for frames in got.values():
        assert frames[0].ts_ns == 1767225600 * 10**9
        assert {(f.rate_hz, f.channels) for f in frames} == {(16_000, 1)}
    same = _publish(*files, "--stream", "one-id", "--topic", topic)
    assert same.returncode == 2 and "several files get stream id 'one-id'" in same.stderr
