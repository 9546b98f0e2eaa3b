"""Caption events: the committed JSON Schema, deterministic ids, CloudEvents headers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from stream.events import (
    CLOUDEVENT_TYPE,
    CaptionEvent,
    EventKind,
    cloudevent_headers,
    event_id,
    json_schema,
    rfc3339,
    window_event,
)
from windowing.window import Cursor, Window

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "caption-event.schema.json"
REGENERATE = (
    ".venv/bin/python -c 'import json, stream.events as e; "
    "print(json.dumps(e.json_schema(), indent=2, sort_keys=True))'"
    " > docs/caption-event.schema.json"
)


def test_committed_schema_matches_the_model():
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == json_schema(), f"the schema drifted; review the change, then: {REGENERATE}"


def make_window(index: int = 3) -> Window:
    cursor = Cursor(
        "cam-12", 1_800_000_000_000_000_000, index, False, 0, 0, 0, 16_000, 1, "s16le", None
    )
    start = 1_800_000_000_000_000_000 + index * 10**10
    return Window(
        "cam-12",
        1_800_000_000_000_000_000,
        index,
        start,
        start + 3 * 10**10,
        np.zeros(16, np.float32),
        0.25,
        -23.5,
        -6.0,
        False,
        False,
        (),
        cursor,
    )


def test_event_ids_are_deterministic_per_window_and_revision():
    assert event_id("cam-12", 5, 3, "main") == event_id("cam-12", 5, 3, "main")
    others = {
        event_id("cam-12", 5, 4, "main"),
        event_id("cam-12", 6, 3, "main"),
        event_id("cam-13", 5, 3, "main"),
        event_id("cam-12", 5, 3, "v2"),
    }
    assert event_id("cam-12", 5, 3, "main") not in others and len(others) == 4


def test_a_window_event_round_trips_through_json():
    event = window_event(
        make_window(),
        EventKind.CAPTION,
        model="m",
        model_revision="main",
        closed_ns=1_800_000_040_000_000_000,
        caption="Glass shatters.",
        engine_latency_ms=812.5,
    )

    again = CaptionEvent.from_json(event.to_json())

    assert again == event
    assert again.window_start == "2027-01-15T08:00:30.000000Z"
    assert again.window_end_ns - again.window_start_ns == 30 * 10**9
    assert again.audio.gap_fraction == 0.25 and again.timings.engine_latency_ms == 812.5
    assert again.event_id == event_id("cam-12", make_window().segment_id, 3, "main")


def test_cloudevent_headers_follow_the_kafka_binary_binding():
    event = window_event(
        make_window(),
        EventKind.SILENCE,
        model="m",
        model_revision="main",
        closed_ns=1,
        skipped="silence",
    )
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


def test_unknown_fields_and_bad_values_are_rejected():
    event = window_event(
        make_window(), EventKind.CAPTION, model="m", model_revision="main", closed_ns=1, caption="x"
    )
    data = json.loads(event.to_json())
    with pytest.raises(ValidationError):
        CaptionEvent.model_validate({**data, "surprise": 1})
    with pytest.raises(ValidationError):
        CaptionEvent.model_validate({**data, "audio": {**data["audio"], "gap_fraction": 1.5}})
