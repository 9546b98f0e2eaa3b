"""One Kafka partition's rows between two flushes, grouped by the date and hour they belong in.

The buffer covers a contiguous offset range: it starts at the offset after the last committed
flush (``first``) and grows with every record consumed, good or bad, so that consecutive
flushes tile the partition with no gap and no overlap. Offsets that hold no record (transaction
markers, aborted records) fall inside the range and simply have no row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from earwitness.errors import BadInputError
from export.config import Roll
from export.layout import Span, hour_of
from export.schema import Table, decode, to_arrow

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("kafka_topic", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
        pa.field("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("headers", pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))),
    ]
)
"""A record that is not an event of its table, kept whole (the exporter's dead letters)."""

Headers = list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None
"""As confluent-kafka hands them out."""


@dataclass
class PartitionBuffer:
    table: Table
    topic: str
    partition: int
    first: int
    last: int = -1
    rows: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    size_bytes: int = 0
    count: int = 0
    opened_s: float | None = None
    """Monotonic time of the first record (age for rolling)."""

    def __post_init__(self) -> None:
        self.last = self.first - 1

    @property
    def span(self) -> Span:
        return Span(self.first, self.last)

    def add(
        self,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        ts_ms: int,
        headers: Headers | Callable[[], Headers],
    ) -> str | None:
        """Take one record; the reject reason if it is not an event, else None. ``headers``
        may be a callable (``Message.headers``): only a rejected record needs them."""
        if self.opened_s is None:
            self.opened_s = time.monotonic()
        self.last = offset
        self.count += 1
        self.size_bytes += len(value or b"") + len(key or b"")
        try:
            row = decode(self.table, value, self.partition, offset, ts_ms)
        except BadInputError as exc:
            found = headers() if callable(headers) else headers
            self.rejects.append(
                self._reject(offset, key, value, ts_ms=ts_ms, headers=found, exc=exc)
            )
            return exc.reason
        self.rows.setdefault(hour_of(row.time_ns), []).append(row.values)
        return None

    def tables(self, schema: pa.Schema) -> tuple[dict[tuple[str, str], pa.Table], list[str]]:
        """The rows as Arrow tables by (date, hour), and the reasons of rows Arrow cannot hold.

        A row the model accepted can still be out of Arrow's range (an integer past int64):
        its batch is converted row by row and such rows become rejects (``unrepresentable``,
        the row as JSON for value), so one record never stops the export.
        """
        hours: dict[tuple[str, str], pa.Table] = {}
        reasons: list[str] = []
        for hour, rows in self.rows.items():
            try:
                hours[hour] = to_arrow(self.table, schema, rows)
                continue
            except (pa.ArrowException, OverflowError):
                pass
            good = []
            for row in rows:
                try:
                    to_arrow(self.table, schema, [row])
                    good.append(row)
                except (pa.ArrowException, OverflowError) as exc:
                    self.rejects.append(self._unrepresentable(row, exc))
                    reasons.append("unrepresentable")
            if good:
                hours[hour] = to_arrow(self.table, schema, good)
        return hours, reasons

    def _unrepresentable(self, row: dict[str, Any], exc: Exception) -> dict[str, Any]:
        value = json.dumps(row, default=str).encode()  # not orjson: it refuses ints past 64 bits
        return {
            "kafka_topic": self.topic,
            "kafka_partition": self.partition,
            "kafka_offset": row["kafka_offset"],
            "kafka_timestamp": row["kafka_timestamp"],
            "reason": "unrepresentable",
            "detail": str(exc)[:1000],
            "key": None,
            "value": value,
            "headers": [],
        }

    def due(self, roll: Roll, now_s: float) -> bool:
        if self.opened_s is None:
            return False
        return (
            self.count >= roll.max_rows
            or self.size_bytes >= roll.max_bytes
            or now_s - self.opened_s >= roll.max_age_s
        )

    def _reject(
        self,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        *,
        ts_ms: int,
        headers: Headers,
        exc: BadInputError,
    ) -> dict[str, Any]:
        return {
            "kafka_topic": self.topic,
            "kafka_partition": self.partition,
            "kafka_offset": offset,
            "kafka_timestamp": ts_ms if ts_ms > 0 else None,
            "reason": exc.reason,
            "detail": exc.detail,
            "key": key,
            "value": value,
            "headers": [{"key": k, "value": _bytes(v)} for k, v in _pairs(headers)],
        }


def _pairs(headers: Headers) -> list[tuple[str, str | bytes | None]]:
    if headers is None:
        return []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value
