"""Dead letters: a bad input record, unchanged, plus why it was rejected; dead-lettered once.

The record keeps its key, value and headers; ``ew-error`` (a stable reason code),
``ew-error-detail`` (a sentence) and ``ew-src-topic``/``ew-src-partition``/``ew-src-offset``
are added. Consumers of the dead-letter topic can fix and re-publish it. Two settings bound it
(``dead_letter``): without ``include_payload`` the value (the audio) is left out; and whatever
would make the record larger than ``max_record_bytes`` (the value, then the original headers,
then the key) is left out too, named in ``ew-dropped`` (``value:1048576`` ...), so an oversize
frame becomes a small dead letter instead of a record the broker refuses.

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
from stream.config import DeadLetterSettings


def dead_letter(
    msg: Message, error: BadInputError, settings: DeadLetterSettings
) -> tuple[bytes | None, bytes | None, Headers]:
    """``(key, value, headers)`` of the dead-letter record for ``msg`` (module docstring)."""
    ours: list[tuple[str, str | bytes | None]] = [
        ("ew-error", error.reason.encode()),
        ("ew-error-detail", error.detail[:1000].encode()),
        ("ew-src-topic", (msg.topic() or "").encode()),
        ("ew-src-partition", str(msg.partition()).encode()),
        ("ew-src-offset", str(msg.offset()).encode()),
    ]
    key, value = msg.key(), msg.value()
    theirs = list(cast("list[tuple[str, str | bytes | None]]", msg.headers() or []))
    dropped: list[str] = []
    if value is not None and not settings.include_payload:
        dropped.append(f"value:{len(value)}")
        value = None
    budget = settings.max_record_bytes - _size(ours) - 256  # room for ew-dropped itself
    if value is not None and len(value) + _size(theirs) + len(key or b"") > budget:
        dropped.append(f"value:{len(value)}")
        value = None
    if _size(theirs) + len(key or b"") > budget:
        dropped.append(f"headers:{_size(theirs)}")
        theirs = []
    if key is not None and len(key) > budget:
        dropped.append(f"key:{len(key)}")
        key = None
    if dropped:
        ours.append(("ew-dropped", ",".join(dropped).encode()))
    return key, value, [*theirs, *ours]


def _size(headers: list[tuple[str, str | bytes | None]]) -> int:
    return sum(len(name) + len(value or b"") for name, value in headers)


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
