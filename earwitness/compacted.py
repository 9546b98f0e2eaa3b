"""Reading a compacted topic to its end: the one reader of the analyzer's changelog and the
alert runner's incident state.

::

    partition p   [record][record][txn marker][record] ... [end = high watermark at the start]
                  ▲ OFFSET_BEGINNING                        ▲ done once position() >= end

A throw-away consumer (no group commits) is assigned the partitions from the beginning with
``isolation.level=read_committed`` and reads until its position passes each partition's end as
it was when reading began. The position, not the last record's offset, decides, because
transaction markers take offsets too and are never handed out. Records come back in order, so
the caller's "last value per key wins, a tombstone deletes" is compaction's own rule.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from earwitness.errors import ConfigError, TransientError

CompactedRecord = tuple[int, bytes | None, bytes | None]
"""``(partition, key, value)``; value None is a tombstone."""


def read_to_end(
    client_config: Mapping[str, str | int | float | bool],
    topic: str,
    partitions: list[int] | None = None,
    timeout_s: float = 60.0,
) -> Iterator[CompactedRecord]:
    """Every committed record of ``partitions`` (all of the topic's when None), oldest first.

    A generator: read it to its end (the consumer closes then). Raises
    :class:`TransientError` when the broker cannot be read in ``timeout_s``.
    """
    consumer = Consumer(
        {
            **client_config,
            "group.id": f"earwitness-reader-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        wanted = partitions if partitions is not None else _partitions(consumer, topic, timeout_s)
        yield from _read(consumer, topic, wanted, timeout_s)
    except KafkaException as exc:
        raise TransientError(f"cannot read {topic}: {exc}") from exc
    finally:
        consumer.close()


def _read(
    consumer: Consumer, topic: str, partitions: list[int], timeout_s: float
) -> Iterator[CompactedRecord]:
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout_s)[1]
        for p in partitions
    }
    todo = {p for p, end in ends.items() if end > 0}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
    deadline = time.monotonic() + timeout_s
    while todo:
        if time.monotonic() > deadline:
            raise TransientError(f"{topic} not read to its end in {timeout_s:.0f} s")
        msg = consumer.poll(0.2)
        if msg is not None and msg.error():
            raise KafkaException(msg.error())
        if msg is not None:
            partition = msg.partition()
            assert partition is not None  # a consumed record has one
            yield partition, msg.key(), msg.value()
        positions = consumer.position([TopicPartition(topic, p) for p in todo])
        todo -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}


def _partitions(consumer: Consumer, topic: str, timeout_s: float) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
    if metadata.error is not None:
        raise ConfigError(f"topic {topic}: {metadata.error.str()}")
    return sorted(metadata.partitions)
