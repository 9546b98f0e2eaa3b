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
import time
import uuid
from collections.abc import Mapping

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from earwitness.errors import BadInputError, TransientError
from windowing.window import Cursor

logger = logging.getLogger(__name__)

DEAD_LETTER_MARK_KEY = b"\xffdead-letters"
"""Changelog key of a partition's dead-letter mark (see the module docstring)."""


@dataclasses.dataclass
class Restored:
    """What changelog partitions hold: stream cursors and per-partition dead-letter marks."""

    cursors: dict[str, Cursor] = dataclasses.field(default_factory=dict)
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
    consumer = Consumer(
        {
            **client_config,
            "group.id": f"earwitness-changelog-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        return _read_to_end(consumer, topic, partitions, timeout_s)
    except KafkaException as exc:
        raise TransientError(f"cannot read changelog {topic}: {exc}") from exc
    finally:
        consumer.close()


def _read_to_end(
    consumer: Consumer, topic: str, partitions: list[int], timeout_s: float
) -> Restored:
    """Read until the position passes each partition's end (transaction markers included)."""
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout_s)[1]
        for p in partitions
    }
    todo = {p for p, end in ends.items() if end > 0}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
    restored = Restored()
    deadline = time.monotonic() + timeout_s
    while todo:
        if time.monotonic() > deadline:
            raise TransientError(f"changelog {topic} not read to its end in {timeout_s:.0f} s")
        msg = consumer.poll(0.2)
        if msg is not None and msg.error():
            raise KafkaException(msg.error())
        if msg is not None:
            partition = msg.partition()
            assert partition is not None  # a consumed record has one
            _apply(restored, partition, msg.key(), msg.value())
        positions = consumer.position([TopicPartition(topic, p) for p in todo])
        todo -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
    logger.info("restored %d stream cursors from %s %s", len(restored.cursors), topic, sorted(ends))
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
