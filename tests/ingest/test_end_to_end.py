"""End to end: an RTSP camera (GStreamer) → ``Ingest`` → Kafka → the analyzer on the real vLLM
CPU engine (tiny random-weight model) → caption events. Captions of a random model are noise:
the test checks that every window of the camera's audio became one caption event."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from earwitness.events import CaptionEvent, EventKind
from ingest.config import SourceSettings
from stream.config import AnalyzerSettings, KafkaSettings
from stream.engine.worker import EngineWorker
from tests.ingest.conftest import delivered, ingest_settings, running, wait_for
from tests.ingest.servers import RtspServer
from tests.stream.conftest import worker  # noqa: F401 - the module-scoped engine fixture
from tests.support.analyzer import BATCH, engine_settings
from tests.support.analyzer import running as analyzer_running
from tests.support.kafka import consume, unique_name
from windowing.config import WindowSettings

pytestmark = [pytest.mark.engine, pytest.mark.kafka, pytest.mark.slow]


def test_an_rtsp_camera_becomes_caption_events(
    rtsp: RtspServer,
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    tiny_model_dir: Path,
    worker: EngineWorker,  # noqa: F811 - the fixture imported above
) -> None:
    frames, captions = new_topic(), new_topic()
    analyzer = AnalyzerSettings(
        kafka=KafkaSettings(
            bootstrap_servers=kafka_bootstrap,
            frames_topic=frames,
            captions_topic=captions,
            dead_letter_topic=new_topic(),
            group_id=unique_name("analyzer"),
            commit_interval_ms=200,
        ),
        windowing=WindowSettings(window_s=4, hop_s=2, min_window_s=0.5),
        engine=engine_settings(tiny_model_dir),
        batch=BATCH,
    )
    camera = SourceSettings(stream_id="cam-12", url=rtsp.url("/camera"))
    with analyzer_running(analyzer, worker):
        with running(ingest_settings(kafka_bootstrap, frames, camera)) as ingest:
            wait_for(lambda: delivered(ingest, "cam-12") >= 600, 90, "12 s of camera audio")
        got = [
            CaptionEvent.from_json(m.value())
            for m in consume(kafka_bootstrap, captions, count=6, timeout_s=180)
        ]
    assert len(got) >= 5
    assert {e.stream_id for e in got} == {"cam-12"}
    assert all(e.kind is EventKind.CAPTION and e.caption is not None for e in got)
    indices = sorted(e.window_index for e in got)
    assert indices[:5] == [0, 1, 2, 3, 4]
    assert all(e.audio.gap_fraction == 0 for e in got)
