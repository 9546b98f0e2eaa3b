"""Dead letters: a bad input record, unchanged, plus why it was rejected.

The record keeps its key, value and headers; ``ew-error`` (a stable reason code),
``ew-error-detail`` (a sentence) and ``ew-src-topic``/``ew-src-partition``/``ew-src-offset``
are added. Consumers of the dead-letter topic can fix and re-publish it.
"""

from __future__ import annotations

from confluent_kafka import Message

from earwitness.errors import BadInputError


def dead_letter(msg: Message, error: BadInputError) -> tuple[bytes | None, bytes | None, list]:
    """``(key, value, headers)`` of the dead-letter record for ``msg``."""
    headers = list(msg.headers() or [])
    headers += [
        ("ew-error", error.reason.encode()),
        ("ew-error-detail", error.detail.encode()),
        ("ew-src-topic", (msg.topic() or "").encode()),
        ("ew-src-partition", str(msg.partition()).encode()),
        ("ew-src-offset", str(msg.offset()).encode()),
    ]
    return msg.key(), msg.value(), headers
