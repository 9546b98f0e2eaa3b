"""Kafka records → rows: tolerant of new fields, strict about broken ones, silent on text."""

from __future__ import annotations

import orjson
import pytest

from console.records import BadRecord, ack_row, alert_row, first_sentence, window_row
from earwitness.events import EventKind
from sinks.alerts import AlertState
from tests.console.support import NS, alert, caption

T0 = 1_800_000_000 * NS
SECRET = "the vault door code is 4471"


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("A dog barks. Then a car passes.", "A dog barks."),
        ("  Rain on a tin roof!  Thunder follows.", "Rain on a tin roof!"),
        ("No end mark at all", "No end mark at all"),
        ("Version 2.5 of the siren. Next.", "Version 2.5 of the siren."),
        ("", ""),
        (None, ""),
        ("x" * 300, "x" * 159 + "…"),
    ],
)
def test_first_sentence(text: str | None, first: str) -> None:
    assert first_sentence(text) == first


def test_window_row_from_an_event() -> None:
    event = caption("cam-12", 2, "A dog barks. A car passes.", segment_id=T0)
    row = window_row(event.to_json())
    assert (row.stream_id, row.kind, row.window_index) == ("cam-12", "caption", 2)
    assert (row.start_ns, row.end_ns) == (T0 + 20 * NS, T0 + 50 * NS)
    assert row.first_sentence == "A dog barks."
    assert row.frames is None


@pytest.mark.parametrize(
    ("kind", "text"),
    [(EventKind.SHED, "load"), (EventKind.ERROR, "engine")],
)
def test_windows_without_caption_keep_why(kind: EventKind, text: str) -> None:
    row = window_row(caption("cam-1", 0, None, segment_id=T0, kind=kind).to_json())
    assert (row.text, row.first_sentence) == (text, "")


def test_a_newer_analyzer_s_fields_are_ignored() -> None:
    data = orjson.loads(caption("cam-1", 0, "hello", segment_id=T0).to_json())
    data |= {"schema_version": 9, "speaker_count": 2}
    assert window_row(orjson.dumps(data)).text == "hello"


@pytest.mark.parametrize(
    ("value", "reason"), [(b"not json", "bad_json"), (b'{"kind": "caption"}', "bad_event"),
                          (None, "bad_json")],
)  # fmt: skip
def test_broken_events_are_bad_records(value: bytes | None, reason: str) -> None:
    with pytest.raises(BadRecord) as caught:
        window_row(value)
    assert caught.value.reason == reason


def test_bad_record_messages_never_hold_the_text() -> None:
    data = orjson.loads(caption("cam-1", 0, SECRET, segment_id=T0).to_json())
    data["window_index"] = SECRET  # a wrong type next to the caption
    with pytest.raises(BadRecord) as caught:
        window_row(orjson.dumps(data))
    assert "window_index" in str(caught.value)
    assert SECRET not in str(caught.value) and "4471" not in str(caught.value)


def test_alert_row_reads_the_alert_runner_s_format() -> None:
    a = alert("a1", AlertState.FIRING, stream_id="cam-1", started_ns=T0, text="Glass shatters.",
              matched=("glass",))  # fmt: skip
    row = alert_row(a.to_json())
    assert (row.alert_id, row.state, row.severity, row.matched) == (
        "a1", "firing", "critical", ("glass",)
    )  # fmt: skip
    assert row.phrases() == ["glass"]


def test_alert_row_reads_evidence_and_tolerates_more() -> None:
    data = orjson.loads(
        alert(
            "a1", AlertState.FIRING, stream_id="c", started_ns=T0, text="t", matched=("glass",)
        ).to_json()
    )
    data["evidence"] = [
        {"phrase": "shattering glass", "sentence": "Likely shattering glass.", "confidence": 0.6,
         "why": "hedged", "cues": ["hedged: 'likely'"], "future": 1},
    ]  # fmt: skip
    data["new_field"] = {"nested": True}
    row = alert_row(orjson.dumps(data))
    assert row.evidence[0].confidence == 0.6
    assert row.phrases() == ["glass", "shattering glass"]


def test_ack_round_trip() -> None:
    ack = ack_row(b'{"alert_id": "a1", "by": "ana", "note": "checked", "acked_ns": 5}')
    assert ack_row(ack.to_json()) == ack
    with pytest.raises(BadRecord):
        ack_row(b'{"by": "ana"}')
