"""Stream cursors on a compacted changelog topic, co-partitioned with the input.

Key = stream id; value = the :class:`~windowing.window.Cursor` of the stream's last *published*
window, as JSON. A cursor is written in the same transaction as the window's event and the
consumer offsets, so after any crash the changelog, the caption topic and the committed offsets
agree. On assignment of input partition ``p`` the analyzer reads changelog partition ``p`` to
its end (``read_committed``) and restores each stream from its cursor before its first replayed
frame: windows already published are rebuilt but never published again.

Besides the cursors, each changelog partition ``p`` holds one *dead-letter mark* under the key
:data:`DEAD_LETTER_MARK_KEY` (not UTF-8, so no stream id can take it): every bad record of input
partition ``p`` below that offset is on the dead-letter topic already. It is written in the
transaction of those dead letters, so a replay (which starts at the committed offset, up to a
window of audio earlier) dead-letters no record twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import orjson

from earwitness.compacted import read_to_end
from earwitness.errors import BadInputError
from windowing.window import Cursor

logger = logging.getLogger(__name__)

DEAD_LETTER_MARK_KEY = b"\xffdead-letters"
"""Changelog key of a partition's dead-letter mark (see the module docstring)."""


@dataclasses.dataclass
class Restored:
    """What changelog partitions hold: stream cursors and per-partition dead-letter marks."""

    cursors: dict[str, Cursor] = dataclasses.field(default_factory=dict)
    partition_of: dict[str, int] = dataclasses.field(default_factory=dict)
    """The changelog (= input) partition of each stream's cursor."""
    dead_lettered_below: dict[int, int] = dataclasses.field(default_factory=dict)


def encode_mark(below: int) -> bytes:
    return orjson.dumps({"below": below})


def encode_cursor(cursor: Cursor) -> bytes:
    return orjson.dumps(dataclasses.asdict(cursor))


def decode_cursor(value: bytes) -> Cursor:
    try:
        fields = orjson.loads(value)
        position = fields.get("position")
        fields["position"] = tuple(position) if isinstance(position, list) else position
        return Cursor(**fields)
    except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
        raise BadInputError("bad_cursor", f"unreadable changelog record: {exc}", value) from exc


def load_cursors(
    client_config: Mapping[str, str | int | float | bool],
    topic: str,
    partitions: list[int],
    timeout_s: float = 60.0,
) -> Restored:
    """Latest stream cursors and dead-letter marks in ``partitions`` (read to the end)."""
    restored = Restored()
    for partition, key, value in read_to_end(client_config, topic, partitions, timeout_s):
        _apply(restored, partition, key, value)
    logger.info("restored %d stream cursors from %s %s", len(restored.cursors), topic, partitions)
    return restored


def _apply(restored: Restored, partition: int, key: bytes | None, value: bytes | None) -> None:
    if key is None:
        return
    if key == DEAD_LETTER_MARK_KEY:
        _apply_mark(restored, partition, value)
        return
    cursors = restored.cursors
    stream_id = key.decode("utf-8", "replace")
    if value is None:
        cursors.pop(stream_id, None)
        return
    try:
        cursors[stream_id] = decode_cursor(value)
        restored.partition_of[stream_id] = partition
    except BadInputError as exc:
        logger.error("skipping changelog record of %s: %s", stream_id, exc.detail)


def _apply_mark(restored: Restored, partition: int, value: bytes | None) -> None:
    try:
        below = orjson.loads(value or b"null")["below"]
    except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
        logger.error("skipping dead-letter mark of partition %d: %r", partition, exc)
        return
    if isinstance(below, int):
        restored.dead_lettered_below[partition] = below
