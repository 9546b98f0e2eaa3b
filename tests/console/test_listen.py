"""Listen: a window rebuilt from the frames topic is the audio the analyzer's model heard.

The frames of 50 streams share one partition (interleaved, as live streams arrive); the
expected windows come from the real Windower over every frame from the start, the way the
analyzer cut them, with ``frames`` filled by the analyzer's own ``frame_range``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import numpy as np
import pytest
import soundfile
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from console.audio import AudioUnavailable, WindowRef, wav, window_audio
from tests.console.support import WINDOWING, analyzer_windows, publish_tones
from tests.support.frames import Tone
from windowing import Window

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

STREAMS = 50
SECONDS = 41  # windows [0,30) and [10,40) on the 30 s / 10 s grid, then a final [20,41)


def _ref(window: Window, topic: str) -> WindowRef:
    positions = [p for p in window.positions if isinstance(p, tuple)]
    offsets = [offset for _, offset in positions]
    return WindowRef(window.stream_id, window.segment_id, window.index, window.start_ns,
                     window.end_ns, topic, positions[0][0], min(offsets), max(offsets))  # fmt: skip


@pytest.fixture(scope="module")
def fifty_streams(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[Window]]:
    from tests.support.kafka import create_topic, unique_name

    topic = create_topic(kafka_bootstrap, unique_name("listen-50"))
    ts0 = time.time_ns() - 60 * 1_000_000_000
    tones = [
        Tone(f"cam-{i:02d}", SECONDS, amplitude=0.05 + i / 200, ts0_ns=ts0 + i * 7_000_000)
        for i in range(STREAMS)
    ]
    frames = publish_tones(kafka_bootstrap, topic, tones)
    return topic, analyzer_windows(frames)


def _client(bootstrap: str) -> dict[str, str | int | float | bool]:
    return {"bootstrap.servers": bootstrap}


@pytest.mark.parametrize("stream", ["cam-00", "cam-31", "cam-49"])
def test_every_window_comes_back_sample_for_sample(
    kafka_bootstrap: str, fifty_streams: tuple[str, list[Window]], stream: str
) -> None:
    topic, windows = fifty_streams
    mine = [w for w in windows if w.stream_id == stream]
    assert [(w.index, w.final) for w in mine] == [(0, False), (1, False), (2, True)]
    for window in mine:
        ref = _ref(window, topic)
        own_frames = len(window.samples) // 320
        assert ref.last_offset - ref.first_offset > 40 * own_frames  # other streams' between
        rebuilt = window_audio(_client(kafka_bootstrap), ref, WINDOWING, timeout_s=30,
                               max_records=10_000_000)  # fmt: skip
        assert np.array_equal(rebuilt, window.samples), (stream, window.index)
        decoded, rate = soundfile.read(io.BytesIO(wav(rebuilt)), dtype="int16")
        assert rate == 16_000 and len(decoded) == len(window.samples)
        assert np.array_equal(decoded, np.rint(window.samples * 32768).astype(np.int16))


def test_a_resampled_stereo_stream_comes_back_close(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    ts0 = time.time_ns() - 60 * 1_000_000_000
    tones = [Tone("studio", SECONDS, rate_hz=48_000, channels=2, ts0_ns=ts0),
             Tone("cam-1", SECONDS, ts0_ns=ts0)]  # fmt: skip
    windows = [w for w in analyzer_windows(publish_tones(kafka_bootstrap, topic, tones))
               if w.stream_id == "studio"]  # fmt: skip
    for window in windows:
        rebuilt = window_audio(_client(kafka_bootstrap), _ref(window, topic), WINDOWING,
                               timeout_s=30, max_records=1_000_000)  # fmt: skip
        assert len(rebuilt) == len(window.samples)
        settled = slice(800, None)  # 50 ms: the resampler started at the window's first frame
        assert np.max(np.abs(rebuilt[settled] - window.samples[settled])) < 1e-3, window.index


def test_frames_past_the_topic_s_retention_are_gone(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    frames = publish_tones(kafka_bootstrap, topic, [Tone("cam-1", 35, ts0_ns=time.time_ns())])
    window = analyzer_windows(frames)[0]
    ref = _ref(window, topic)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    (future,) = admin.delete_records([TopicPartition(topic, 0, ref.first_offset + 1)]).values()
    future.result(30)
    with pytest.raises(AudioUnavailable) as gone:
        window_audio(_client(kafka_bootstrap), ref, WINDOWING, timeout_s=30, max_records=10**6)
    assert gone.value.reason == "expired"


def test_a_window_over_too_many_records_is_refused(
    kafka_bootstrap: str, fifty_streams: tuple[str, list[Window]]
) -> None:
    topic, windows = fifty_streams
    with pytest.raises(AudioUnavailable) as refused:
        window_audio(_client(kafka_bootstrap), _ref(windows[0], topic), WINDOWING,
                     timeout_s=30, max_records=1_000)  # fmt: skip
    assert refused.value.reason == "too_long"
