"""Caption events: the committed JSON Schema, deterministic ids, CloudEvents headers, versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from earwitness.events import (
    CLOUDEVENT_TYPE,
    SCHEMA_VERSION,
    AnalyzerInfo,
    CaptionEvent,
    EventKind,
    cloudevent_headers,
    event_id,
    json_schema,
    rfc3339,
)
from stream.engine.engine import CaptionResult
from stream.engine.settings import SilencePolicy
from stream.outcome import EventContext, window_event
from stream.pending import PendingWindows
from windowing.window import Cursor, Window

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "docs" / "caption-event.schema.json"
REGENERATE = (
    ".venv/bin/python -c 'import json, earwitness.events as e; "
    "print(json.dumps(e.json_schema(), indent=2, sort_keys=True))'"
    " > docs/caption-event.schema.json"
)
SEGMENT = 1_800_000_000_000_000_000
CONTEXT = EventContext(
    model="m",
    model_revision="main",
    frames_topic="earwitness.frames",
    silence=SilencePolicy.EVENT,
    analyzer=AnalyzerInfo(instance="earwitness-analyzer-0", config_hash="ab" * 32, version="0"),
)


def test_committed_schema_matches_the_model():
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == json_schema(), f"the schema drifted; review the change, then: {REGENERATE}"


def make_window(index: int = 3, positions: tuple = ((2, 40), (2, 38), (2, 61))) -> Window:
    cursor = Cursor("cam-12", SEGMENT, index, False, 0, 0, 0, 16_000, 1, "s16le", None)
    start = SEGMENT + index * 10**10
    return Window(
        "cam-12",
        SEGMENT,
        index,
        start,
        start + 3 * 10**10,
        np.zeros(16, np.float32),
        0.25,
        -23.5,
        -6.0,
        False,
        False,
        positions,
        cursor,
    )


def pending(window: Window, closed_ns: int = 1_800_000_040_000_000_000):
    return PendingWindows().add(window, closed_ns)


def test_event_ids_are_deterministic_per_window_and_revision():
    # pinned: a change of the id scheme would re-id every replayed window downstream
    assert event_id("cam-12", 5, 3, "main") == "33ac81ee-2f2b-5850-992e-701a69910fdb"
    others = {
        event_id("cam-12", 5, 4, "main"),
        event_id("cam-12", 6, 3, "main"),
        event_id("cam-13", 5, 3, "main"),
        event_id("cam-12", 5, 3, "v2"),
    }
    assert event_id("cam-12", 5, 3, "main") not in others and len(others) == 4


def test_a_window_event_round_trips_through_json():
    result = CaptionResult("r", "Glass shatters.", 512, 400, "length", 812.5)
    event = window_event(pending(make_window()), CONTEXT, EventKind.CAPTION, result=result)

    again = CaptionEvent.from_json(event.to_json())

    assert again == event
    assert again.schema_version == SCHEMA_VERSION == 2
    assert again.caption == "Glass shatters."
    assert again.window_start == "2027-01-15T08:00:30.000000Z"
    assert again.window_end_ns - again.window_start_ns == 30 * 10**9
    assert again.audio.gap_fraction == 0.25 and again.timings.engine_latency_ms == 812.5
    assert again.timings.window_closed_ns == 1_800_000_040_000_000_000
    assert again.event_id == "47dd36fb-3990-5626-8fd9-c4755a3e1e0d"
    assert (again.output_tokens, again.prompt_tokens, again.finish_reason) == (512, 400, "length")
    assert again.truncated is True
    assert again.analyzer == CONTEXT.analyzer


def test_the_event_says_where_its_frames_are():
    event = window_event(pending(make_window()), CONTEXT, EventKind.SILENCE, skipped="silence")
    assert event.frames is not None
    frames = event.frames
    assert (frames.topic, frames.partition) == ("earwitness.frames", 2)
    assert (frames.first_offset, frames.last_offset) == (38, 61)
    no_kafka = window_event(
        pending(make_window(positions=(None,))), CONTEXT, EventKind.SILENCE, skipped="silence"
    )
    assert no_kafka.frames is None and no_kafka.truncated is None


def test_cloudevent_headers_follow_the_kafka_binary_binding():
    event = window_event(pending(make_window()), CONTEXT, EventKind.SILENCE, skipped="silence")
    headers = dict(cloudevent_headers(event))
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == event.event_id.encode()
    assert headers["ce_type"] == CLOUDEVENT_TYPE.encode()
    assert headers["ce_subject"] == b"cam-12"
    assert headers["content-type"] == b"application/json"
    assert headers["ce_time"].decode().endswith("Z")


def test_rfc3339_keeps_microseconds_in_utc():
    assert rfc3339(0) == "1970-01-01T00:00:00.000000Z"
    assert rfc3339(1_500_000_000_123_456_789) == "2017-07-14T02:40:00.123456Z"


def test_newer_fields_are_ignored_and_bad_values_rejected():
    event = window_event(pending(make_window()), CONTEXT, EventKind.SILENCE, skipped="silence")
    data = json.loads(event.to_json())
    newer = CaptionEvent.model_validate(
        {**data, "schema_version": 9, "surprise": 1, "audio": {**data["audio"], "lufs": -23}}
    )
    assert newer.stream_id == "cam-12" and newer.schema_version == 9
    with pytest.raises(ValidationError):
        CaptionEvent.model_validate({**data, "audio": {**data["audio"], "gap_fraction": 1.5}})


def test_a_version_1_event_still_reads():
    v1 = {
        "schema_version": 1,
        "event_id": "33ac81ee-2f2b-5850-992e-701a69910fdb",
        "kind": "caption",
        "stream_id": "cam-12",
        "segment_id": 5,
        "window_index": 3,
        "window_start_ns": 0,
        "window_end_ns": 30 * 10**9,
        "window_start": "1970-01-01T00:00:00.000000Z",
        "window_end": "1970-01-01T00:00:30.000000Z",
        "caption": "A dog barks.",
        "model": "m",
        "model_revision": "main",
        "audio": {"rms_dbfs": -20.0, "peak_dbfs": -3.0, "gap_fraction": 0.0},
        "skipped": None,
        "error": None,
        "timings": {"window_closed_ns": 1, "caption_produced_ns": 2, "engine_latency_ms": 3.0},
    }
    event = CaptionEvent.model_validate(v1)
    assert event.caption == "A dog barks." and event.frames is None and event.truncated is None
