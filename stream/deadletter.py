"""Dead letters: a bad input record, unchanged, plus why it was rejected; dead-lettered once.

The record keeps its key, value and headers; ``ew-error`` (a stable reason code),
``ew-error-detail`` (a sentence) and ``ew-src-topic``/``ew-src-partition``/``ew-src-offset``
are added. Consumers of the dead-letter topic can fix and re-publish it.

A replay (after a crash or a rebalance) reads bad records again: :class:`DeadLetters` keeps,
per input partition, the offset below which every bad record is out already (the partition's
*dead-letter mark*, written to the changelog in the transaction of those dead letters, see
``stream/changelog.py``), so no record is dead-lettered twice.
"""

from __future__ import annotations

from typing import cast

from confluent_kafka import Message

from earwitness.errors import BadInputError
from earwitness.kafka import position
from earwitness.transactions import Headers


def dead_letter(msg: Message, error: BadInputError) -> tuple[bytes | None, bytes | None, Headers]:
    """``(key, value, headers)`` of the dead-letter record for ``msg``."""
    consumed = cast("list[tuple[str, str | bytes | None]]", msg.headers() or [])  # a list
    headers = list(consumed)
    headers += [
        ("ew-error", error.reason.encode()),
        ("ew-error-detail", error.detail.encode()),
        ("ew-src-topic", (msg.topic() or "").encode()),
        ("ew-src-partition", str(msg.partition()).encode()),
        ("ew-src-offset", str(msg.offset()).encode()),
    ]
    return msg.key(), msg.value(), headers


class DeadLetters:
    """Per input partition, where its dead letters stand. Owned by the poll loop."""

    def __init__(self) -> None:
        self._below: dict[int, int] = {}
        self._dirty: set[int] = set()

    def first_time(self, msg: Message) -> bool:
        """Whether ``msg`` must be dead-lettered now (False: a replayed one, out already)."""
        _, partition, offset = position(msg)
        if offset < self._below.get(partition, 0):
            return False
        self._below[partition] = offset + 1
        self._dirty.add(partition)
        return True

    def restored(self, partition: int, below: int) -> None:
        """The partition's mark as the changelog holds it."""
        self._below[partition] = below

    def changed_marks(self) -> dict[int, int]:
        """Marks moved since the last checkpoint (to write to the changelog with it)."""
        return {p: self._below[p] for p in sorted(self._dirty)}

    def checkpointed(self) -> None:
        self._dirty.clear()

    def forget(self, partitions: list[int]) -> None:
        for partition in partitions:
            self._below.pop(partition, None)
            self._dirty.discard(partition)
