"""Arrow schemas that follow the events' JSON Schemas, and records → Arrow tables.

The columns of a table are the top-level fields of its event model, typed from the model's own
JSON Schema (the one committed as ``docs/caption-event.schema.json`` for captions)::

    JSON Schema                          Arrow
    string / integer / number / boolean  string / int64 / float64 / bool
    enum of strings                      dictionary<int32, string>
    object with properties ($ref)        struct<...>   (audio.rms_dbfs, timings.window_closed_ns)
    object with additionalProperties     map<string, V> (alert labels)
    array of X                           list<X>
    anyOf [X, null] / a default          nullable X

plus what the exporter knows beyond the event: ``window_start`` / ``window_end`` (and any field
named in :attr:`Table.timestamps`) as ``timestamp[us, UTC]`` instead of RFC 3339 strings, the
record's Kafka position (``kafka_partition``, ``kafka_offset``, ``kafka_timestamp``) and
``extra_json``: the top-level fields this version does not know (an event from a newer
producer), as JSON, so nothing is dropped. A new optional event field (schema_version 2 added
``frames``, ``analyzer`` ...) is a new nullable column; readers merge files of old and new
schemas by name (DuckDB ``union_by_name``, pyarrow datasets' schema unification).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ValidationError

from earwitness.errors import BadInputError

KAFKA_COLUMNS = [
    pa.field("kafka_partition", pa.int32(), nullable=False),
    pa.field("kafka_offset", pa.int64(), nullable=False),
    pa.field("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
]
EXTRA_COLUMN = pa.field("extra_json", pa.string())
_SCALARS = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64()}
_SCALARS["boolean"] = pa.bool_()
TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Table:
    """One exported table: its event model, where its rows are filed in time, its extras."""

    name: str
    model: type[BaseModel]
    time_ns: Callable[[BaseModel], int]
    """Unix ns that picks the row's date and hour partition."""
    timestamps: Mapping[str, str] = field(default_factory=dict)
    """Column → the ``*_ns`` field it is computed from (typed, instead of an RFC 3339 string)."""
    record_fields: Mapping[str, pa.DataType] = field(default_factory=dict)
    """Fields the records carry beside the model's (an alert's ``idempotency_key``)."""

    def arrow_schema(self) -> pa.Schema:
        schema = arrow_schema(self.model, self.timestamps)
        for n, (name, arrow_type) in enumerate(self.record_fields.items()):
            schema = schema.insert(len(self.model.model_fields) + n, pa.field(name, arrow_type))
        return schema


def captions_table() -> Table:
    from earwitness.events import CaptionEvent

    return Table(
        name="captions",
        model=CaptionEvent,
        time_ns=lambda event: event.window_start_ns,  # type: ignore[attr-defined]
        timestamps={"window_start": "window_start_ns", "window_end": "window_end_ns"},
    )


def alerts_table() -> Table:
    from sinks.alerts import Alert

    return Table(
        name="alerts",
        model=Alert,
        time_ns=lambda alert: alert.started_ns,  # type: ignore[attr-defined]
        record_fields={"idempotency_key": pa.string()},
    )


def arrow_schema(model: type[BaseModel], timestamps: Mapping[str, str]) -> pa.Schema:
    """The Arrow schema of ``model``'s JSON Schema (module docstring), Kafka and extra columns."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema["properties"].items():
        if name in timestamps:
            fields.append(pa.field(name, TIMESTAMP, nullable=name not in required))
            continue
        arrow_type, nullable = _arrow_type(prop, defs)
        fields.append(pa.field(name, arrow_type, nullable=nullable or name not in required))
    return pa.schema([*fields, *KAFKA_COLUMNS, EXTRA_COLUMN])


def _arrow_type(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[pa.DataType, bool]:
    """(type, nullable) of one JSON Schema property."""
    if "$ref" in prop:
        return _arrow_type(defs[prop["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in prop:
        options = [option for option in prop["anyOf"] if option.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"no Arrow type for a union of {len(options)} types: {prop}")
        return _arrow_type(options[0], defs)[0], True
    if "enum" in prop:
        return pa.dictionary(pa.int32(), pa.string()), False
    if prop.get("type") in _SCALARS:
        return _SCALARS[prop["type"]], False
    return _container(prop, defs), False


def _container(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> pa.DataType:
    kind = prop.get("type")
    if kind == "array":
        return pa.list_(_arrow_type(prop["items"], defs)[0])
    if kind == "object" and "properties" in prop:
        required = set(prop.get("required", []))
        children = [
            pa.field(name, *_nullable(_arrow_type(child, defs), name not in required))
            for name, child in prop["properties"].items()
        ]
        return pa.struct(children)
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return pa.map_(pa.string(), _arrow_type(prop["additionalProperties"], defs)[0])
    raise ValueError(f"no Arrow type for JSON Schema {prop}")


def _nullable(typed: tuple[pa.DataType, bool], optional: bool) -> tuple[pa.DataType, bool]:
    return typed[0], typed[1] or optional


@dataclass(frozen=True, slots=True)
class Row:
    """One decoded record: its column values and the Unix ns that files it in time."""

    values: dict[str, Any]
    time_ns: int


def decode(table: Table, value: bytes | None, partition: int, offset: int, ts_ms: int) -> Row:
    """One Kafka record → a row; :class:`BadInputError` (reason ``no_value``, ``not_json`` or
    ``invalid``) when it is not an event of ``table``.

    Fast path: the JSON is validated by the model in strict JSON mode (no coercion), so its
    decoded values are exactly the column types and become the row as they are. A record with
    fields the model does not know takes the lax path: the extras go to ``extra_json``.
    """
    if value is None:
        raise BadInputError("no_value", "a record without a value (a tombstone?)")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BadInputError("not_json", str(exc)) from exc
    if not isinstance(data, dict):
        raise BadInputError("invalid", f"a JSON {type(data).__name__}, not an object")
    known = table.model.model_fields
    unknown = [key for key in data if key not in known]
    try:
        if unknown:
            record = {key: data.pop(key) for key in table.record_fields if key in data}
            extra = {key: data.pop(key) for key in unknown if key not in record}
            event = table.model.model_validate(data, strict=False)
            data = event.model_dump(mode="json") | record
            data["extra_json"] = orjson.dumps(extra).decode() if extra else None
        else:
            event = table.model.model_validate_json(value, strict=True)
    except ValidationError as exc:
        raise BadInputError("invalid", _first_error(exc)) from exc
    data["kafka_partition"] = partition
    data["kafka_offset"] = offset
    data["kafka_timestamp"] = ts_ms if ts_ms > 0 else None
    return Row(data, table.time_ns(event))


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(root)"
    return f"{where}: {error['msg']} ({exc.error_count()} error(s))"


def to_arrow(table: Table, schema: pa.Schema, rows: list[dict[str, Any]]) -> pa.Table:
    """Decoded rows → a table of ``schema``; timestamp columns computed from their ``*_ns``."""
    computed = set(table.timestamps)
    plain = pa.schema([f for f in schema if f.name not in computed])
    arrow = pa.Table.from_pylist(rows, schema=plain)
    for column, source in table.timestamps.items():
        micros = pc.divide(arrow.column(source), 1000).cast(TIMESTAMP)
        arrow = arrow.append_column(column, micros)
    return arrow.select(schema.names).cast(schema)
