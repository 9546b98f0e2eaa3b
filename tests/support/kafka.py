"""The real Kafka broker for tests, and small client helpers.

``LocalBroker`` drives ``scripts/kafka-local`` in a directory of its own; the fixture that makes
one owns it and stops it. Nothing here fakes Kafka.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kafka-local"


class LocalBroker:
    """A single-node KRaft broker started from the Maven jars, with its state in ``directory``."""

    def __init__(
        self, directory: Path, sasl_ssl: Path | None = None, heap_opts: str | None = None
    ) -> None:
        self.directory = directory
        self.sasl_ssl = sasl_ssl
        """Broker properties for a SASL_SSL-only listener (``kafka-local --sasl-ssl``)."""
        self.heap_opts = heap_opts
        """``KAFKA_HEAP_OPTS`` (kafka-local's default: 1 GiB)."""
        self.bootstrap = ""

    def start(self) -> str:
        out = self._script("start", *(["--sasl-ssl", str(self.sasl_ssl)] if self.sasl_ssl else []))
        self.bootstrap = out.strip().splitlines()[-1].removeprefix("bootstrap=")
        return self.bootstrap

    def stop(self, *, keep: bool = False) -> None:
        self._script("stop", *(["--keep"] if keep else []))

    def restart(self) -> None:
        """Stop and start on the same port with the same data, as an operator's restart would."""
        self.stop(keep=True)
        self.start()

    def _script(self, *args: str) -> str:
        cmd = [str(SCRIPT), args[0], "--dir", str(self.directory), *args[1:]]
        env = {**os.environ, **({"KAFKA_HEAP_OPTS": self.heap_opts} if self.heap_opts else {})}
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=180, check=False, env=env
        )
        if done.returncode != 0:
            raise RuntimeError(f"kafka-local {args[0]} failed:\n{done.stderr}")
        return done.stdout


def create_topic(
    bootstrap: str, name: str, partitions: int = 1, config: dict[str, str] | None = None
) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    admin.create_topics([topic])[name].result(timeout=30)
    return name


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    if producer.flush(30) != 0:
        raise RuntimeError("messages still undelivered after 30 s")


def consume(
    bootstrap: str,
    topic: str,
    *,
    count: int | None = None,
    timeout_s: float = 20.0,
    isolation: str = "read_committed",
) -> list[Message]:
    """Read ``topic`` from the beginning until ``count`` messages or ``timeout_s`` of waiting."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and (count is None or len(messages) < count):
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            messages.append(msg)
    finally:
        consumer.close()
    return messages
