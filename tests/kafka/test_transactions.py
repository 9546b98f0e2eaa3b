"""``earwitness/transactions.py`` on the real broker: records refused for themselves.

A record too large for the client (``message.max.bytes``) or for its topic
(``max.message.bytes``) must not fail the checkpoint: before, the client's refusal was fatal and
the broker's aborted every replay of the same checkpoint, forever.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from earwitness.errors import KafkaFatalError
from earwitness.transactions import Record, TransactionalProducer
from tests.support.kafka import consume, produce, unique_name

pytestmark = pytest.mark.kafka

SMALL_TOPIC_BYTES = 4096


def _consumer_at(bootstrap: str, topic: str, group: str, count: int) -> Consumer:
    """A group member that has read ``count`` records of ``topic`` (offsets to commit)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "session.timeout.ms": 45_000,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    while seen < count:
        msg = consumer.poll(60)
        assert msg is not None and not msg.error(), f"only {seen} of {count} inputs arrived"
        seen += 1
    return consumer


def _instead(letters: str, refusals: list[str]) -> Callable[[str], Record]:
    def instead(error: str) -> Record:
        refusals.append(error)
        return Record(letters, b"big", None, [("ew-error", b"refused")])

    return instead


def test_a_record_the_topic_or_the_client_refuses_is_replaced_and_the_rest_commits(
    kafka_bootstrap: str, new_topic: Callable[..., str]
):
    """One transaction: small records around a 20 kB one (over the topic's 4 kB limit, in the
    same batch: the broker refuses the whole batch) and a 1.1 MB one (over the client's 1 MB),
    then the consumer offsets. The small ones and the offsets commit once; each large one is
    replaced by its dead letter once."""
    source, sink, letters = (
        new_topic(),
        new_topic(config={"max.message.bytes": str(SMALL_TOPIC_BYTES)}),
        new_topic(),
    )
    group = unique_name("refused")
    produce(kafka_bootstrap, source, [(b"k", b"in")] * 3)
    consumer = _consumer_at(kafka_bootstrap, source, group, 3)
    refusals: list[str] = []
    small = [Record(sink, b"k", f"small-{i}".encode(), partition=0) for i in range(4)]
    instead = _instead(letters, refusals)
    broker_refuses = Record(sink, b"big", os.urandom(20_000), partition=0, instead=instead)
    client_refuses = Record(sink, b"big", os.urandom(1_100_000), partition=0, instead=instead)
    records = [small[0], small[1], broker_refuses, small[2], client_refuses, small[3]]
    txn = TransactionalProducer({"bootstrap.servers": kafka_bootstrap}, unique_name("t"), 30)
    txn.init(deadline_s=60)
    try:
        txn.commit(records, {(source, 0): 3}, consumer)
    finally:
        txn.close()

    out = consume(kafka_bootstrap, sink, count=5, timeout_s=3)
    assert [m.value() for m in out] == [f"small-{i}".encode() for i in range(4)]
    dead = consume(kafka_bootstrap, letters, count=3, timeout_s=3)
    assert [(m.key(), m.value(), m.headers()) for m in dead] == [
        (b"big", None, [("ew-error", b"refused")])
    ] * 2
    assert len(refusals) == 2 and all("too large" in r.lower() for r in refusals), refusals
    assert consumer.committed([TopicPartition(source, 0)], timeout=30)[0].offset == 3
    consumer.close()


def test_a_refused_record_without_a_replacement_is_fatal(
    kafka_bootstrap: str, new_topic: Callable[..., str]
):
    sink = new_topic(config={"max.message.bytes": str(SMALL_TOPIC_BYTES)})
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": unique_name("g")})
    txn = TransactionalProducer({"bootstrap.servers": kafka_bootstrap}, unique_name("t"), 30)
    txn.init(deadline_s=60)
    try:
        with pytest.raises(KafkaFatalError, match="refused a record"):
            txn.commit([Record(sink, b"k", os.urandom(20_000))], {}, consumer)
    finally:
        consumer.close()
