"""Arrow schemas from the events' JSON Schemas, decoding, rejects and schema evolution."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from earwitness.errors import BadInputError
from earwitness.events import CaptionEvent
from export.buffer import PartitionBuffer
from export.schema import alerts_table, captions_table, decode, to_arrow
from tests.export.support import captions
from tests.sinks.sinkutil import sample_alert

V2_FIELDS = {
    "frames",
    "analyzer",
    "model_family",
    "prompt_id",
    "finish_reason",
    "prompt_tokens",
    "output_tokens",
    "truncated",
    "reasoning",
}


def test_every_event_field_is_a_typed_column_no_json_strings() -> None:
    schema = captions_table().arrow_schema()
    assert set(CaptionEvent.model_fields) <= set(schema.names)
    assert schema.field("window_start").type == pa.timestamp("us", tz="UTC")
    assert schema.field("window_index").type == pa.int64()
    assert schema.field("kind").type == pa.dictionary(pa.int32(), pa.string())
    audio = schema.field("audio").type
    assert pa.types.is_struct(audio) and audio.field("rms_dbfs").type == pa.float64()
    assert schema.field("frames").nullable and schema.field("caption").nullable
    assert not schema.field("event_id").nullable
    strings = {f.name for f in schema if f.type == pa.string()}
    assert strings == {
        "event_id", "stream_id", "caption", "model", "model_revision", "skipped", "error",
        "model_family", "prompt_id", "finish_reason", "reasoning", "extra_json",
    }  # fmt: skip


def test_alerts_map_lists_and_nested_lists_of_structs() -> None:
    schema = alerts_table().arrow_schema()
    assert pa.types.is_map(schema.field("labels").type)
    assert schema.field("matched").type == pa.list_(pa.string())
    assert pa.types.is_struct(schema.field("evidence").type.value_type)
    table = alerts_table()
    row = decode(table, sample_alert().to_json(), 0, 7, 0)
    arrow = to_arrow(table, table.arrow_schema(), [row.values])
    assert arrow.column("labels").to_pylist() == [[("team", "security")]]
    assert arrow.column("idempotency_key").to_pylist() == [sample_alert().idempotency_key]
    assert arrow.column("extra_json").to_pylist() == [None]


def test_a_row_round_trips_and_carries_its_kafka_position() -> None:
    table = captions_table()
    event = captions(1)[0]
    row = decode(table, event.to_json(), 3, 42, 1_700_000_000_123)
    arrow = to_arrow(table, table.arrow_schema(), [row.values])
    back = arrow.to_pylist()[0]
    assert back["event_id"] == event.event_id
    assert back["audio"] == event.audio.model_dump()
    assert (back["kafka_partition"], back["kafka_offset"]) == (3, 42)
    assert back["window_start"].isoformat().startswith(event.window_start[:19])
    assert row.time_ns == event.window_start_ns


def test_a_version_1_event_has_nulls_in_the_version_2_columns() -> None:
    table = captions_table()
    data = orjson.loads(captions(1)[0].to_json())
    v1 = {k: v for k, v in data.items() if k not in V2_FIELDS} | {"schema_version": 1}
    arrow = to_arrow(table, table.arrow_schema(), [decode(table, orjson.dumps(v1), 0, 0, 0).values])
    assert all(arrow.column(name).null_count == 1 for name in V2_FIELDS)


def test_fields_from_a_newer_producer_are_kept_in_extra_json() -> None:
    table = captions_table()
    data = orjson.loads(captions(1)[0].to_json()) | {"speaker": {"id": 7}, "schema_version": 3}
    arrow = to_arrow(
        table, table.arrow_schema(), [decode(table, orjson.dumps(data), 0, 0, 0).values]
    )
    assert orjson.loads(arrow.column("extra_json")[0].as_py()) == {"speaker": {"id": 7}}
    assert arrow.column("schema_version")[0].as_py() == 3


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "no_value"),
        (b"{not json", "not_json"),
        (b"[1]", "invalid"),
        (b'{"kind": "caption"}', "invalid"),
        (orjson.dumps(orjson.loads(captions(1)[0].to_json()) | {"window_index": -1}), "invalid"),
    ],
)
def test_what_is_not_an_event_is_rejected_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(BadInputError) as caught:
        decode(captions_table(), value, 0, 0, 0)
    assert caught.value.reason == reason


def test_files_of_the_old_and_the_new_schema_read_together_by_name(tmp_path: Path) -> None:
    """An exporter upgraded to a new event version writes new columns; old files lack them."""
    table = captions_table()
    schema = table.arrow_schema()
    events = [e.model_copy(update={"prompt_id": "p1"}) for e in captions(4)]
    rows = [decode(table, e.to_json(), 0, n, 0).values for n, e in enumerate(events)]
    new = to_arrow(table, schema, rows)
    old = new.slice(0, 2).drop_columns(sorted(V2_FIELDS))
    pq.write_table(old, tmp_path / "old.parquet")
    pq.write_table(new.slice(2), tmp_path / "new.parquet")
    got = duckdb.sql(
        f"SELECT window_index, prompt_id IS NULL AS v1 FROM read_parquet('{tmp_path}/*.parquet', "
        "union_by_name = true) ORDER BY window_index"
    ).fetchall()
    assert got == [(0, True), (1, True), (2, False), (3, False)]


def test_a_row_arrow_cannot_hold_becomes_a_reject_not_a_stuck_export() -> None:
    table = captions_table()
    buffer = PartitionBuffer(table, "t", 0, 0)
    events = captions(3)
    data = orjson.loads(events[1].to_json()) | {"window_index": 2**70}  # valid int, not int64
    big = json.dumps(data).encode()  # orjson refuses ints past 64 bits
    for offset, value in enumerate([events[0].to_json(), big, events[2].to_json()]):
        assert buffer.add(offset, None, value, 0, None) is None  # the model accepts all three
    hours, reasons = buffer.tables(table.arrow_schema())
    assert reasons == ["unrepresentable"]
    assert sorted(o for t in hours.values() for o in t["kafka_offset"].to_pylist()) == [0, 2]
    assert [r["kafka_offset"] for r in buffer.rejects] == [1]
    assert orjson.loads(buffer.rejects[0]["value"])["window_index"] == 2**70
