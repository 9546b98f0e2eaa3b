"""Each model family end to end through the analyzer: real broker, real vLLM (CPU, tiny model).

The captioner runs in ``test_analyzer.py``. Here: Qwen2.5-Omni (another architecture in vLLM),
Qwen3-Omni Instruct (system prompt + text prompt through the engine, no reasoning) and Qwen3-Omni
Thinking (the same, with the reasoning parsed and kept). Their prompts are also checked against
each processor in ``tests/engine/test_families.py``, without an engine. One engine start per
family (~70-400 s each on a loaded 2-core host). Captions of random weights are noise: the
tests check the event's generation fields, never wording.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from earwitness.events import CaptionEvent, EventKind
from ingest.publish import PublishPlan, publish
from stream.config import AnalyzerSettings, KafkaSettings
from stream.engine.families import ModelFamily
from stream.engine.prompts import plan_prompt, prompt_id
from stream.engine.settings import EngineSettings
from stream.engine.worker import EngineWorker
from tests.support.analyzer import BATCH, engine_settings, running
from tests.support.kafka import consume, unique_name
from windowing.config import WindowSettings

pytestmark = [pytest.mark.engine, pytest.mark.kafka, pytest.mark.slow]

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "audio" / "sample.ogg"
SYSTEM = "You monitor a car park."
PROMPT = "List every sound."
MAX_TOKENS = 8


@pytest.fixture(
    scope="module",
    params=[
        ModelFamily.QWEN2_5_OMNI,
        ModelFamily.QWEN3_OMNI_INSTRUCT,
        ModelFamily.QWEN3_OMNI_THINKING,
    ],
    ids=str,
)
def family(request: pytest.FixtureRequest) -> ModelFamily:
    return ModelFamily(request.param)


@pytest.fixture(scope="module")
def settings(family: ModelFamily, family_model_dir: Callable[[str], Path]) -> EngineSettings:
    # Detected from the directory (engine.family unset); Qwen2.5-Omni's 25 audio tokens a
    # second need a longer max_model_len than the captioner's 13.
    return engine_settings(
        family_model_dir(family),
        max_model_len=2048,
        max_tokens=MAX_TOKENS,
        system_prompt=SYSTEM,
        prompt=PROMPT,
        keep_reasoning=True,
    )


@pytest.fixture(scope="module")
def family_worker(settings: EngineSettings) -> Iterator[EngineWorker]:
    worker = EngineWorker(settings, BATCH, lambda w: f"{w.stream_id}/{w.index}")
    worker.start(timeout_s=600)
    yield worker
    worker.stop(finish=False)


def test_family_captions_a_stream(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    family: ModelFamily,
    settings: EngineSettings,
    family_worker: EngineWorker,
) -> None:
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        frames_topic=new_topic(),
        captions_topic=new_topic(),
        dead_letter_topic=new_topic(),
        group_id=unique_name("analyzer"),
        commit_interval_ms=200,
    )
    analyzer = AnalyzerSettings(
        kafka=kafka, windowing=WindowSettings(window_s=30, hop_s=30), engine=settings, batch=BATCH
    )
    plan = PublishPlan(SAMPLE, "gate-3", kafka.frames_topic, 20, "s16le", False, False)
    with running(analyzer, family_worker):
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        publish(producer, plan, stop=threading.Event(), progress=False)
        assert producer.flush(30) == 0
        got = [
            CaptionEvent.from_json(m.value())
            for m in consume(kafka_bootstrap, kafka.captions_topic, count=3, timeout_s=180)
        ]

    expected = plan_prompt(settings, family)  # the processor's count, to compare with vLLM's
    assert [e.window_index for e in got] == [0, 1, 2]  # 73.1 s: two full windows and a tail
    for event in got:
        assert event.kind is EventKind.CAPTION and event.error is None
        assert event.model_family == family.value
        assert event.prompt_id == prompt_id(SYSTEM, PROMPT)
        seconds = (event.window_end_ns - event.window_start_ns) / 1e9
        assert event.prompt_tokens == expected.prompt_tokens(seconds)
        assert event.output_tokens == MAX_TOKENS
        assert event.finish_reason == "length" and event.truncated is True
        assert event.caption is not None and "</think>" not in event.caption
        if family is ModelFamily.QWEN3_OMNI_THINKING:
            assert event.reasoning is not None  # kept (engine.keep_reasoning)
        else:  # nothing to parse: keep_reasoning is the Thinking's alone
            assert event.reasoning is None
