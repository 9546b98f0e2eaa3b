"""The analyzer end to end: real broker, real windower, real vLLM (CPU build, tiny model).

One engine is started for the module and shared by the analyzers the tests run in threads;
the SIGTERM test runs ``earwitness analyze`` as a real process with an engine of its own.
Captions of a random-weight model are noise: the tests check windows, counts, fields, timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import soundfile as sf
from confluent_kafka import Consumer, Producer, TopicPartition

from earwitness.events import CaptionEvent, EventKind
from ingest.publish import PublishPlan, publish
from stream.config import AnalyzerSettings, DeadLetterSettings, KafkaSettings
from stream.engine.prompts import prompt_id
from stream.engine.worker import EngineWorker
from tests.support.analyzer import BATCH, engine_settings, running
from tests.support.frames import Tone, publish_interleaved
from tests.support.kafka import consume, unique_name
from windowing.config import WindowSettings

pytestmark = [pytest.mark.engine, pytest.mark.kafka, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "audio" / "sample.ogg"
S = 1_000_000_000


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> KafkaSettings:
    frames = new_topic(partitions=2)
    return KafkaSettings(
        frames_topic=frames,
        captions_topic=new_topic(),
        dead_letter_topic=new_topic(),
        group_id=unique_name("analyzer"),
        commit_interval_ms=200,
    )


def settings_for(
    bootstrap: str, kafka: KafkaSettings, model_dir: Path, windowing: WindowSettings
) -> AnalyzerSettings:
    return AnalyzerSettings(
        kafka=kafka.model_copy(update={"bootstrap_servers": bootstrap}),
        windowing=windowing,
        engine=engine_settings(model_dir),
        batch=BATCH,
    )


def events(bootstrap: str, topic: str, count: int, timeout_s: float = 120) -> list[CaptionEvent]:
    got = consume(bootstrap, topic, count=count, timeout_s=timeout_s)
    return [CaptionEvent.from_json(m.value()) for m in got]


def test_a_published_file_becomes_exactly_the_grid_of_windows(
    kafka_bootstrap: str, topics: KafkaSettings, tiny_model_dir: Path, worker: EngineWorker
):
    """
    sample.ogg, 73.1 s, published as a live stream, window 30 s, hop 10 s:
    0        10       20       30       40       50       60       70  73.1
    ├──────────────── #0 ─────┤
             ├──────────────── #1 ─────┤
                      ├──────────────── #2 ─────┤
                               ├──────────────── #3 ─────┤
                                        ├──────────────── #4 ─────┤
                                                 ├──── #5 (eos tail) ──┤
    """
    settings = settings_for(
        kafka_bootstrap, topics, tiny_model_dir, WindowSettings(window_s=30, hop_s=10)
    )
    plan = PublishPlan(SAMPLE, "cam-12", topics.frames_topic, 20, "s16le", False, False)
    with running(settings, worker):
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        publish(producer, plan, stop=threading.Event(), progress=False)
        assert producer.flush(30) == 0
        got = events(kafka_bootstrap, topics.captions_topic, 6)
        extra = consume(kafka_bootstrap, topics.captions_topic, count=7, timeout_s=3)

    assert len(extra) == 6, "more events than windows"
    assert [e.window_index for e in got] == [0, 1, 2, 3, 4, 5]
    duration_ns = sf.info(SAMPLE).frames * S // sf.info(SAMPLE).samplerate
    t0 = got[0].window_start_ns
    for event in got:
        assert event.stream_id == "cam-12"
        assert event.kind is EventKind.CAPTION and event.caption is not None
        assert event.window_start_ns == t0 + event.window_index * 10 * S
        assert event.model == str(tiny_model_dir) and event.error is None
        assert event.timings.engine_latency_ms and event.timings.engine_latency_ms > 0
        assert -120 <= event.audio.rms_dbfs < 0 and event.audio.gap_fraction == 0
        assert event.model_family == "qwen3-omni-captioner" and event.reasoning is None
        assert event.prompt_id == prompt_id("", "")  # the captioner gets no text
        assert event.output_tokens == 8 and event.truncated is True  # ignore_eos, max_tokens 8
    assert all(e.window_end_ns - e.window_start_ns == 30 * S for e in got[:5])
    assert abs(got[5].window_end_ns - (t0 + duration_ns)) < 0.05 * S
    assert len({e.event_id for e in got}) == 6


def test_several_streams_idle_tail_gaps_and_silence(
    kafka_bootstrap: str, topics: KafkaSettings, tiny_model_dir: Path, worker: EngineWorker
):
    """
    window 4 s, hop 2 s, idle close after 1 s:
      steady  ████████████████████████  12 s + eos    → #0..#4 full
      idle    ██████████               5 s, then nothing → #0 full, #1 tail [2, 5) after idle
      gappy   ████░░░███████████        8 s, 1 s missing at 2 s → #0..#2, gap in #0 and #1
      quiet   ··········                 5 s of digital silence → silence events, no engine
    """
    settings = settings_for(
        kafka_bootstrap,
        topics,
        tiny_model_dir,
        WindowSettings(window_s=4, hop_s=2, idle_timeout_s=1.0, min_window_s=0.5),
    )
    tones = [
        Tone("steady", 12, rate_hz=48_000, channels=2, eos=True),
        Tone("idle", 5, rate_hz=8_000),
        Tone("gappy", 8, missing=frozenset(range(100, 150)), eos=True),
        Tone("quiet", 5, amplitude=0.0, eos=True),
    ]
    with running(settings, worker):
        publish_interleaved(kafka_bootstrap, topics.frames_topic, tones)
        got = events(kafka_bootstrap, topics.captions_topic, 5 + 2 + 3 + 2, timeout_s=180)
        extra = consume(kafka_bootstrap, topics.captions_topic, count=13, timeout_s=5)

    by_stream: dict[str, list[CaptionEvent]] = {}
    for event in got:
        by_stream.setdefault(event.stream_id, []).append(event)
    assert [e.window_index for e in by_stream["steady"]] == [0, 1, 2, 3, 4]
    idle = by_stream["idle"]
    assert [e.window_index for e in idle] == [0, 1]
    assert idle[1].window_end_ns - idle[1].window_start_ns == 3 * S
    gappy = {e.window_index: e for e in by_stream["gappy"]}
    assert gappy[0].audio.gap_fraction == pytest.approx(0.25, abs=0.02)
    assert gappy[1].audio.gap_fraction == pytest.approx(0.25, abs=0.02)
    assert sorted(gappy) == [0, 1, 2] and gappy[2].audio.gap_fraction == 0
    quiet = by_stream["quiet"]
    assert [e.window_index for e in quiet] == [0, 1], "#0 [0, 4) and the tail [2, 5)"
    assert all(e.kind is EventKind.SILENCE and e.caption is None for e in quiet)
    assert all(e.skipped == "silence" for e in quiet)
    assert len(extra) == 12, "an event beyond the grid"


def test_bad_frames_go_to_the_dead_letter_topic_and_good_ones_still_flow(
    kafka_bootstrap: str, topics: KafkaSettings, tiny_model_dir: Path, worker: EngineWorker
):
    settings = settings_for(
        kafka_bootstrap, topics, tiny_model_dir, WindowSettings(window_s=2, hop_s=2)
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topics.frames_topic, key=b"cam", value=b"\x00\x01\x02", headers=[])
    producer.produce(
        topics.frames_topic,
        key=b"cam",
        value=b"\x00" * 3,
        headers=[
            ("ew-seq", b"0"),
            ("ew-ts", b"1"),
            ("ew-rate", b"16000"),
            ("ew-ch", b"1"),
            ("ew-fmt", b"s16le"),
        ],
    )
    producer.produce(topics.frames_topic, key=None, value=b"", headers=[])
    assert producer.flush(10) == 0
    with running(settings, worker):
        publish_interleaved(kafka_bootstrap, topics.frames_topic, [Tone("cam", 2, eos=True)])
        got = events(kafka_bootstrap, topics.captions_topic, 1)
        dead = consume(kafka_bootstrap, topics.dlq_topic, count=3)

    assert [e.stream_id for e in got] == ["cam"]
    reasons = sorted(dict(m.headers())["ew-error"] for m in dead)
    assert reasons == [b"bad_key", b"bad_length", b"missing_header"]
    assert all(dict(m.headers())["ew-src-topic"] == topics.frames_topic.encode() for m in dead)
    assert b"\x00\x01\x02" in [m.value() for m in dead]


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}


def test_sigterm_drains_commits_and_a_restart_continues(
    kafka_bootstrap: str,
    topics: KafkaSettings,
    tiny_model_dir: Path,
    worker: EngineWorker,
    tmp_path: Path,
):
    """
    `earwitness analyze` (a real process) gets 6 s of a stream and SIGTERM: it publishes #0 [0,4)
    and #1 [2,6)... exits 0 and commits no further than the frames its unfinished window needs.
    A second analyzer in the same group continues from that committed offset.
    """
    windowing = WindowSettings(window_s=4, hop_s=2, idle_timeout_s=30)
    settings = settings_for(kafka_bootstrap, topics, tiny_model_dir, windowing)
    config = tmp_path / "analyzer.json"
    config.write_text(settings.model_dump_json())
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "earwitness.cli", "analyze", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = Tone("door", 6)
        publish_interleaved(kafka_bootstrap, topics.frames_topic, [first])
        got = events(kafka_bootstrap, topics.captions_topic, 2, timeout_s=300)
        assert [e.window_index for e in got] == [0, 1]
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    offsets = committed(kafka_bootstrap, topics.group_id, topics.frames_topic, 2)
    # #0 and #1 are out; #2 [4, 8) needs the frames from 4 s on: frame 200 (20 ms frames).
    assert sum(offsets.values()) == 200, f"committed {offsets}, not up to the frame #2 needs"

    rest = Tone("door", 4, first_seq=first.n_frames, eos=True)
    with running(settings, worker):
        publish_interleaved(kafka_bootstrap, topics.frames_topic, [rest])
        every = events(kafka_bootstrap, topics.captions_topic, 4, timeout_s=120)
        time.sleep(1)
        extra = consume(kafka_bootstrap, topics.captions_topic, count=5, timeout_s=5)
    # 10 s in all: #0 [0,4) #1 [2,6) #2 [4,8) #3 [6,10), each once (ends on #3: no tail)
    assert [e.window_index for e in every] == [0, 1, 2, 3]
    assert len(extra) == 4, "a window published twice across the restart"
    final = committed(kafka_bootstrap, topics.group_id, topics.frames_topic, 2)
    assert sum(final.values()) == first.n_frames + rest.n_frames


def test_a_near_1_mb_bad_frame_is_dead_lettered_small_and_never_stops_the_analyzer(
    kafka_bootstrap: str, topics: KafkaSettings, tiny_model_dir: Path, worker: EngineWorker
):
    """A 999,900-byte frame (31 s of audio: oversize) fits the broker, but its dead letter
    would not (value + headers over the producer's 1,000,000-byte message.max.bytes): before,
    the checkpoint failed fatally and the replay died on the same record forever. Its dead
    letter keeps the reason and the ew-src-* reference, and says what it left out."""
    settings = settings_for(
        kafka_bootstrap, topics, tiny_model_dir, WindowSettings(window_s=4, hop_s=2)
    )
    huge = Tone("big", 31.2).records()
    key, _, headers = next(huge)
    value = bytes(999_900)
    with running(settings, worker):
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 1_048_576})
        producer.produce(topics.frames_topic, value, key, headers=headers)
        assert producer.flush(30) == 0
        publish_interleaved(kafka_bootstrap, topics.frames_topic, [Tone("fine", 4.0, eos=True)])
        got = events(kafka_bootstrap, topics.captions_topic, 1)
        letters = consume(kafka_bootstrap, topics.dlq_topic, count=1, timeout_s=60)

    assert [e.stream_id for e in got] == ["fine"]
    (letter,) = letters
    found = dict(letter.headers() or [])
    assert found["ew-error"] == b"oversize"
    assert found["ew-dropped"] == b"value:999900"
    assert letter.value() is None and letter.key() == key
    assert found["ew-src-topic"] == topics.frames_topic.encode()


def test_without_include_payload_a_dead_letter_keeps_no_audio(
    kafka_bootstrap: str, topics: KafkaSettings, tiny_model_dir: Path, worker: EngineWorker
):
    settings = settings_for(
        kafka_bootstrap, topics, tiny_model_dir, WindowSettings(window_s=4, hop_s=2)
    ).model_copy(update={"dead_letter": DeadLetterSettings(include_payload=False)})
    key, value, headers = next(Tone("odd", 1.0).records())
    bad_headers = [(k, v) if k != "ew-rate" else (k, b"12345678") for k, v in headers]
    with running(settings, worker):
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(topics.frames_topic, value, key, headers=bad_headers)
        assert producer.flush(30) == 0
        (letter,) = consume(kafka_bootstrap, topics.dlq_topic, count=1, timeout_s=60)

    found = dict(letter.headers() or [])
    assert letter.value() is None and found["ew-dropped"] == f"value:{len(value)}".encode()
    assert found["ew-error"] and found["ew-src-offset"] == b"0"
