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

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, ValidationError

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

    @functools.cached_property
    def reader(self) -> type[BaseModel]:
        """``model`` that keeps unknown fields (in ``__pydantic_extra__``) instead of ignoring
        or refusing them."""
        config = ConfigDict(**{**self.model.model_config, "extra": "allow"})  # type: ignore[typeddict-item]
        return type(f"{self.model.__name__}Record", (self.model,), {"model_config": config})

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

    The record is validated by the table's model as every reader of the event validates it
    (``CaptionEvent.from_json``), and the row is the model's dump: its values have exactly the
    column types. Fields the model does not know are kept (``extra_json``).
    """
    if value is None:
        raise BadInputError("no_value", "a record without a value (a tombstone?)")
    try:
        event = table.reader.model_validate_json(value)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise BadInputError("not_json", _first_error(exc)) from exc
        raise BadInputError("invalid", _first_error(exc)) from exc
    data = event.model_dump()  # extras included: record_fields become their columns
    extra = event.__pydantic_extra__
    if extra and (unknown := {k: v for k, v in extra.items() if k not in table.record_fields}):
        data["extra_json"] = orjson.dumps(unknown).decode()
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
    plain = pa.schema([f for f in schema if f.name not in table.timestamps])
    arrow = pa.Table.from_pylist(rows, schema=plain)
    computed = {
        column: pc.divide(arrow.column(source), 1000).cast(TIMESTAMP)
        for column, source in table.timestamps.items()
    }
    columns = [computed.get(name) or arrow.column(name) for name in schema.names]
    return pa.Table.from_arrays(columns, schema=schema)
