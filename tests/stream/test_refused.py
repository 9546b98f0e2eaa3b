"""Records the analyzer produces that the broker refuses for themselves never stop it.

The streams are digital silence, so no window reaches the engine: the analyzer runs on the
real broker with an engine worker that is never started (no vLLM here). Its captions topic takes
records of at most 256 bytes, less than any caption event. Before, every checkpoint was aborted
by the refusal and replayed into the same refusal, forever: nothing was ever committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from stream.config import AnalyzerSettings, KafkaSettings
from stream.engine.worker import EngineWorker
from tests.support.analyzer import BATCH, engine_settings, running
from tests.support.frames import Tone, publish_interleaved
from tests.support.kafka import consume, unique_name
from windowing.config import WindowSettings

pytestmark = [pytest.mark.kafka]


def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], 30)
    finally:
        consumer.close()
    return tp.offset


def test_caption_events_the_topic_refuses_become_dead_letters_once_and_input_commits(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
):
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        frames_topic=new_topic(),
        captions_topic=new_topic(config={"max.message.bytes": "256"}),
        dead_letter_topic=new_topic(),
        group_id=unique_name("refused"),
        commit_interval_ms=200,
    )
    settings = AnalyzerSettings(
        kafka=kafka,
        windowing=WindowSettings(window_s=4, hop_s=2, idle_timeout_s=600),
        engine=engine_settings(tmp_path),
        batch=BATCH,
    )
    unstarted = EngineWorker(settings.engine, BATCH, lambda w: w.stream_id)
    quiet = Tone("quiet", 10.0, amplitude=0.0, eos=True)  # windows [0,4) [2,6) [4,8) [6,10)
    with running(settings, unstarted) as analyzer:
        publish_interleaved(kafka_bootstrap, kafka.frames_topic, [quiet])
        letters = consume(kafka_bootstrap, kafka.dlq_topic, count=4, timeout_s=120)
        deadline = time.monotonic() + 120
        while _committed(kafka_bootstrap, kafka.group_id, kafka.frames_topic) < quiet.n_frames:
            assert time.monotonic() < deadline, "the frames were never committed"
            time.sleep(0.5)
        time.sleep(1)  # a few more checkpoints: nothing is refused or dead-lettered twice
        refused = analyzer.metrics.registry.get_sample_value(
            "earwitness_records_refused_total", {"kind": "event"}
        )
    again = consume(kafka_bootstrap, kafka.dlq_topic, count=5, timeout_s=3)

    assert consume(kafka_bootstrap, kafka.captions_topic, count=1, timeout_s=3) == []
    assert len(letters) == 4 and len(again) == 4, "a window's stand-in is missing or twice"
    found = [dict(letter.headers() or []) for letter in letters]
    assert {h["ew-error"] for h in found} == {b"refused"}
    assert len({h["ce_id"] for h in found}) == 4
    assert [int(h["ew-src-offset"]) for h in found] == [0, 100, 200, 300]  # 2 s = 100 frames
    assert all(h["ew-src-topic"] == kafka.frames_topic.encode() for h in found)
    assert all(h["ew-dropped"].startswith(b"value:") for h in found)
    assert all(m.key() == b"quiet" and m.value() is None for m in letters)
    assert refused == 4
