"""The broker is real: round trips, transactions with consumer offsets, restarts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.support.kafka import LocalBroker, consume, create_topic, produce, unique_name

pytestmark = pytest.mark.kafka


def test_produce_then_consume_round_trip(kafka_bootstrap: str, new_topic: Callable[..., str]):
    topic = new_topic(partitions=3)
    records = [(f"stream-{i % 4}".encode(), f"frame-{i}".encode()) for i in range(50)]
    produce(kafka_bootstrap, topic, records)

    got = consume(kafka_bootstrap, topic, count=50)

    assert sorted((m.key(), m.value()) for m in got) == sorted(records)
    by_key: dict[bytes, set[int]] = {}
    for msg in got:
        by_key.setdefault(msg.key(), set()).add(msg.partition())
    assert all(len(partitions) == 1 for partitions in by_key.values()), "a key spans partitions"


def _read_inputs(bootstrap: str, topic: str, group: str, count: int) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    seen = 0
    while seen < count:
        msg = consumer.poll(10)
        assert msg is not None, f"only {seen} of {count} inputs arrived"
        assert not msg.error()
        seen += 1
    return consumer


def _transactional_producer(bootstrap: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique_name("txn")})
    producer.init_transactions(30)
    return producer


def test_committed_transaction_is_visible_with_its_offsets(
    kafka_bootstrap: str, new_topic: Callable[..., str]
):
    source, sink, group = new_topic(), new_topic(), unique_name("group")
    produce(kafka_bootstrap, source, [(b"k", f"in-{i}".encode()) for i in range(5)])
    consumer = _read_inputs(kafka_bootstrap, source, group, 5)
    producer = _transactional_producer(kafka_bootstrap)

    producer.begin_transaction()
    for i in range(5):
        producer.produce(sink, key=b"k", value=f"out-{i}".encode())
    positions = consumer.position(consumer.assignment())
    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(30)

    outputs = consume(kafka_bootstrap, sink, count=5)
    assert [m.value() for m in outputs] == [f"out-{i}".encode() for i in range(5)]
    committed = consumer.committed([TopicPartition(source, 0)], timeout=10)
    assert committed[0].offset == 5
    consumer.close()


def test_aborted_transaction_is_never_seen_by_read_committed(
    kafka_bootstrap: str, new_topic: Callable[..., str]
):
    sink = new_topic()
    producer = _transactional_producer(kafka_bootstrap)
    producer.begin_transaction()
    producer.produce(sink, key=b"k", value=b"aborted")
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(sink, key=b"k", value=b"committed")
    producer.commit_transaction(30)

    committed_view = consume(kafka_bootstrap, sink, count=2, timeout_s=5)
    raw_view = consume(kafka_bootstrap, sink, count=2, isolation="read_uncommitted")

    assert [m.value() for m in committed_view] == [b"committed"]
    assert [m.value() for m in raw_view] == [b"aborted", b"committed"]


@pytest.mark.slow
def test_broker_restart_keeps_committed_data(private_broker: LocalBroker):
    topic = create_topic(private_broker.bootstrap, unique_name("durable"), partitions=2)
    records = [(f"s{i % 3}".encode(), f"v{i}".encode()) for i in range(30)]
    produce(private_broker.bootstrap, topic, records)
    before = private_broker.bootstrap

    private_broker.restart()

    assert private_broker.bootstrap == before
    got = consume(private_broker.bootstrap, topic, count=30, timeout_s=30)
    assert sorted((m.key(), m.value()) for m in got) == sorted(records)
