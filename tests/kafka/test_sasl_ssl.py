"""Every Kafka client of the project through a broker whose only listener is SASL_SSL (SASL
PLAIN over TLS, a throwaway CA made here), configured with the project's own settings names:
``kafka.client`` (``security.protocol``, ``ssl.ca.location``, ``sasl.mechanism``,
``sasl.username``) and ``kafka.sasl_password`` (from the environment for the processes).

One broker for the module (``scripts/kafka-local --sasl-ssl``, ~15-20 s to start here); the
broker has no plaintext listener, so a client that ignored the settings could not connect at all
(``test_a_plaintext_client_gets_nothing``). Marker ``sasl_ssl``: it starts its own broker and
needs no other (``make test`` runs it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest
import yaml
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from console.config import ConsoleKafka, StoreSettings
from console.metrics import ConsoleMetrics
from console.queries import Queries, SearchQuery
from console.reader import ConsoleHealth, TopicReader
from console.store import Store
from earwitness.transactions import Record, TransactionalProducer
from ingest.config import IngestKafka
from ingest.framer import OutFrame
from ingest.metrics import IngestMetrics
from ingest.producer import Outbox, Publisher, producer_config
from stream.changelog import load_cursors
from stream.clients import consumer_config, txn_call_timeout_s
from stream.clients import producer_config as analyzer_producer_config
from stream.config import AnalyzerSettings
from stream.topics import ensure_topics
from tests.export.support import ExporterProcess, read_table, write_config
from tests.sinks.runnerutil import BANG, lines, running, settings, wait_for
from tests.sinks.sinkutil import caption_event
from tests.support.kafka import REPO, LocalBroker, unique_name
from tests.support.sasl import SaslSsl, sasl_ssl_props

pytestmark = [pytest.mark.sasl_ssl, pytest.mark.slow]


class Cluster:
    """The SASL_SSL broker and the test's own (SASL_SSL) helper clients."""

    def __init__(self, bootstrap: str, view: SaslSsl) -> None:
        self.bootstrap = bootstrap
        self.view = view
        self.config = view.librdkafka(bootstrap)

    def kafka(self, **fields: Any) -> dict[str, Any]:
        return self.view.kafka(self.bootstrap, **fields)

    def env(self, prefix: str) -> dict[str, str]:
        return {f"{prefix}KAFKA__SASL_PASSWORD": self.view.password}

    def topic(self, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique_name("sasl")
        new = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        admin = AdminClient(self.config)  # referenced until the result: destroyed, it fails it
        admin.create_topics([new])[name].result(timeout=60)
        return name

    def produce(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        producer = Producer({**self.config, "acks": "all"})
        for key, value in records:
            producer.produce(topic, key=key, value=value)
        assert producer.flush(60) == 0

    def read(self, topic: str, count: int, timeout_s: float = 60) -> list[Any]:
        consumer = Consumer(
            {
                **self.config,
                "group.id": unique_name("sasl-read"),
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe([topic])
        got: list[Any] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(got) < count and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and not msg.error():
                    got.append(msg)
        finally:
            consumer.close()
        return got


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("sasl-ssl")
    props, view = sasl_ssl_props(folder)
    broker = LocalBroker(folder / "broker", props, heap_opts="-Xmx512m -Xms512m")
    started = time.monotonic()
    bootstrap = broker.start()
    print(f"SASL_SSL broker started in {time.monotonic() - started:.1f} s")
    try:
        yield Cluster(bootstrap, view)
    finally:
        broker.stop()


def test_a_plaintext_client_gets_nothing(cluster: Cluster) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    wrong = {**cluster.config, "sasl.password": "not-the-password", "log_level": 0}
    with pytest.raises(KafkaException):
        AdminClient(wrong).list_topics(timeout=3)
    assert AdminClient(cluster.config).list_topics(timeout=30).brokers


def test_analyzer_admin_consumer_transactional_producer_and_changelog_reader(
    cluster: Cluster,
) -> None:
    frames = unique_name("frames")
    settings = AnalyzerSettings(
        kafka=cluster.kafka(frames_topic=frames, group_id=unique_name("analyzer"))  # type: ignore[arg-type]
    )
    kafka = settings.kafka
    ensure_topics(kafka)  # the admin client creates frames, captions, dead letters, changelog
    cluster.produce(frames, [(b"cam-1", b"frame-0")])
    consumer = Consumer(consumer_config(settings))
    consumer.subscribe([frames])
    txn = TransactionalProducer(
        analyzer_producer_config(settings), kafka.txn_id(), txn_call_timeout_s(settings)
    )
    try:
        txn.init(deadline_s=60)
        msg = None
        deadline = time.monotonic() + 120
        while msg is None and time.monotonic() < deadline:
            polled = consumer.poll(0.5)
            msg = polled if polled is not None and not polled.error() else None
        assert msg is not None and msg.value() == b"frame-0"
        caption = Record(kafka.captions_topic, b"cam-1", b"caption-0")
        txn.commit([caption], {(frames, 0): msg.offset() + 1}, consumer)
        committed = consumer.committed([TopicPartition(frames, 0)], timeout=30)
        assert committed[0].offset == 1
    finally:
        txn.close()
        consumer.close()
    assert [m.value() for m in cluster.read(kafka.captions_topic, 1)] == [b"caption-0"]
    restored = load_cursors(kafka.client_config(), kafka.changelog, [0], timeout_s=60)
    assert restored.cursors == {}  # read to the end of the (empty) changelog through SASL_SSL


def test_alert_runner_and_its_kafka_receiver(cluster: Cluster, tmp_path: Path) -> None:
    topics = {
        "captions": cluster.topic(partitions=2),
        "state": cluster.topic(config={"cleanup.policy": "compact"}),
        "dlq": cluster.topic(),
    }
    alerts_topic = cluster.topic()
    receivers = {
        "file": {"type": "jsonl", "path": str(tmp_path / "alerts.jsonl")},
        "bus": {"type": "kafka", "topic": alerts_topic},
    }
    raw = settings(cluster.bootstrap, topics, receivers)
    raw["kafka"].update(cluster.kafka())
    events = [caption_event(i, BANG) for i in range(3)]
    cluster.produce(topics["captions"], [(e.stream_id.encode(), e.to_json()) for e in events])
    with running(raw):
        wait_for(lambda: len(lines(tmp_path / "alerts.jsonl")) >= 1, 120)
    (firing,) = cluster.read(alerts_topic, 1)
    assert json.loads(firing.value())["state"] == "firing"
    assert lines(tmp_path / "alerts.jsonl")[0]["state"] == "firing"
    assert cluster.read(topics["state"], 1), "the runner's transactional state write"


def test_ingest_publisher(cluster: Cluster) -> None:
    kafka = IngestKafka(**cluster.kafka(frames_topic=cluster.topic()))
    metrics = IngestMetrics()
    outbox = Outbox(2**20, metrics)
    publisher = Publisher(producer_config(kafka), kafka, outbox, metrics)
    publisher.start()
    outbox.put([OutFrame(b"cam-1", b"pcm", [("ew-seq", b"0")], time.monotonic())])
    wait_for(lambda: publisher.reachable, 120)
    assert publisher.stop(60) == 0
    (frame,) = cluster.read(kafka.frames_topic, 1)
    assert frame.value() == b"pcm"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "earwitness.cli", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_publish_and_tail(cluster: Cluster, tmp_path: Path) -> None:
    frames, captions = cluster.topic(), cluster.topic()
    config = tmp_path / "tools.yaml"
    kafka = cluster.kafka(frames_topic=frames, captions_topic=captions)
    del kafka["sasl_password"]  # a secret: from the environment, not the file
    config.write_text(yaml.safe_dump({"kafka": kafka}))
    env = cluster.env("EARWITNESS_ANALYZER_")
    with wave.open(str(tmp_path / "call.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x01" * 8000)  # 1 s
    published = _cli("publish", str(tmp_path / "call.wav"), "--config", str(config),
                     "--no-progress", env=env)  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert len(cluster.read(frames, 50)) == 50  # 1 s in 20 ms frames
    cluster.produce(captions, [(b"cam-1", caption_event(0, BANG).to_json())])
    tailed = _cli("tail", "--config", str(config), "--from-beginning", "--json",
                  "--max-events", "1", "--idle-exit-s", "120", env=env)  # fmt: skip
    assert tailed.returncode == 0, tailed.stderr
    assert json.loads(tailed.stdout.splitlines()[0])["caption"] == BANG


def test_console_reader(cluster: Cluster, tmp_path: Path) -> None:
    captions = cluster.topic()
    topics = {
        "captions_topic": captions,
        "alerts_topic": cluster.topic(),
        "acks_topic": cluster.topic(config={"cleanup.policy": "compact"}),
    }
    kafka = ConsoleKafka(**cluster.kafka(**topics, batch_wait_ms=50, metadata_refresh_s=1))
    event = caption_event(0, BANG, segment_id=time.time_ns() - 3600 * 10**9)
    producer = Producer({**cluster.config, "transactional.id": unique_name("console-feed")})
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce(captions, key=b"cam-12", value=event.to_json())
    producer.commit_transaction(60)
    db = tmp_path / "console.db"
    store = Store(db, 7, 10_000)
    health = ConsoleHealth(60)
    reader = TopicReader(
        kafka=kafka,
        store_settings=StoreSettings(path=db),
        store=store,
        publish=lambda _: None,
        metrics=ConsoleMetrics(),
        health=health,
    )
    reader.start()
    try:
        wait_for(lambda: health.caught_up, 120)
        rows = Queries(db).search(SearchQuery(text="gunshot"), 10)
        assert [row["text"] for row in rows] == [BANG]
    finally:
        reader.stop()
        store.close()
    assert reader.error is None


def test_exporter(cluster: Cluster, tmp_path: Path) -> None:
    captions = cluster.topic()
    lake = tmp_path / "lake"
    kafka = cluster.kafka()
    del kafka["sasl_password"]
    config = write_config(tmp_path, cluster.bootstrap, captions, str(lake), kafka=kafka)
    cluster.produce(captions, [(b"cam-12", caption_event(i, BANG).to_json()) for i in range(3)])
    env = cluster.env("EARWITNESS_EXPORT_")
    exporter = ExporterProcess(config, tmp_path / "export.log", env=env)
    try:
        fs = pafs.LocalFileSystem()
        wait_for(lambda: (lake / "captions").exists() and read_table(
            fs, str(lake), "captions").num_rows == 3, 180)  # fmt: skip
        assert exporter.terminate() == 0, exporter.text()
    finally:
        exporter.kill()
