"""Topics earwitness creates get the retention of the settings (earwitness/retention.py):
read back from the broker with describe_configs. An existing topic keeps its own, with a
warning that names the difference."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka.admin import AdminClient

from console.acks import ensure_acks_topic
from console.config import ConsoleKafka
from earwitness.audit import AuditSettings
from earwitness.audit_trail import ensure_audit_topics
from earwitness.kafka import KafkaClientSettings
from earwitness.topics import topic_config
from ingest.config import IngestKafka
from ingest.metrics import IngestMetrics
from ingest.producer import Outbox, Publisher
from sinks.config import KafkaSettings as AlertsKafka
from sinks.topics import ensure_topics as ensure_alerts_topics
from stream.config import KafkaSettings as AnalyzerKafka
from stream.topics import ensure_topics as ensure_analyzer_topics
from tests.support.kafka import unique_name

pytestmark = pytest.mark.kafka
HOUR_MS, DAY_MS = 3_600_000, 86_400_000


def _config(bootstrap: str, topic: str) -> dict[str, str]:
    return topic_config(AdminClient({"bootstrap.servers": bootstrap}), topic)


def test_the_analyzers_topics_get_their_retention(kafka_bootstrap: str) -> None:
    name = unique_name("retention")
    kafka = AnalyzerKafka(
        bootstrap_servers=kafka_bootstrap,
        frames_topic=f"{name}.frames",
        captions_topic=f"{name}.captions",
        group_id=name,
        new_topic_partitions=2,
        retention={
            "frames": {"retention_ms": 2 * HOUR_MS, "retention_bytes": 2**30},
            "captions": {"retention_ms": 30 * DAY_MS},
            "dead_letters": {"retention_ms": HOUR_MS},
            "changelog": {"delete_retention_ms": 60_000, "max_compaction_lag_ms": HOUR_MS},
        },
    )
    assert ensure_analyzer_topics(kafka) == 2
    frames = _config(kafka_bootstrap, kafka.frames_topic)
    assert (frames["cleanup.policy"], frames["retention.ms"]) == ("delete", str(2 * HOUR_MS))
    assert frames["retention.bytes"] == str(2**30)
    captions = _config(kafka_bootstrap, kafka.captions_topic)
    assert (captions["cleanup.policy"], captions["retention.ms"]) == ("delete", str(30 * DAY_MS))
    assert captions["retention.bytes"] == "-1"  # unset: the broker's default
    assert _config(kafka_bootstrap, kafka.dlq_topic)["retention.ms"] == str(HOUR_MS)
    changelog = _config(kafka_bootstrap, kafka.changelog)
    assert changelog["cleanup.policy"] == "compact"
    assert changelog["delete.retention.ms"] == "60000"
    assert changelog["max.compaction.lag.ms"] == str(HOUR_MS)


def test_the_alert_runners_and_consoles_topics_get_their_retention(kafka_bootstrap: str) -> None:
    name = unique_name("retention")
    alerts = AlertsKafka(
        bootstrap_servers=kafka_bootstrap,
        state_topic=f"{name}-state",
        dead_letter_topic=f"{name}-dlq",
        retention={"state": {"delete_retention_ms": 5_000}, "dead_letters": {"retention_ms": 7}},
    )
    ensure_alerts_topics(alerts)
    state = _config(kafka_bootstrap, alerts.state_topic)
    assert (state["cleanup.policy"], state["delete.retention.ms"]) == ("compact", "5000")
    dlq = _config(kafka_bootstrap, alerts.dead_letter_topic)
    assert (dlq["cleanup.policy"], dlq["retention.ms"]) == ("delete", "7")

    console = ConsoleKafka(
        bootstrap_servers=kafka_bootstrap,
        acks_topic=f"{name}-acks",
        retention={"acks": {"max_compaction_lag_ms": DAY_MS}},
    )
    ensure_acks_topic(console)
    acks = _config(kafka_bootstrap, console.acks_topic)
    assert (acks["cleanup.policy"], acks["max.compaction.lag.ms"]) == ("compact", str(DAY_MS))


def test_an_existing_topic_keeps_its_retention_with_a_warning(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique_name("retention")
    first = AlertsKafka(
        bootstrap_servers=kafka_bootstrap,
        state_topic=f"{name}-state",
        dead_letter_topic=f"{name}-dlq",
        retention={"dead_letters": {"retention_ms": HOUR_MS}},
    )
    ensure_alerts_topics(first)
    caplog.set_level(logging.WARNING, logger="earwitness.topics")
    ensure_alerts_topics(first)
    assert not caplog.records
    retention = {"dead_letters": {"retention_ms": DAY_MS}}
    second = AlertsKafka.model_validate({**first.model_dump(), "retention": retention})
    ensure_alerts_topics(second)
    assert _config(kafka_bootstrap, first.dead_letter_topic)["retention.ms"] == str(HOUR_MS)
    (record,) = caplog.records
    assert f"{first.dead_letter_topic} has retention.ms={HOUR_MS}" in record.getMessage()
    assert f"the settings say {DAY_MS}" in record.getMessage()


def test_the_audit_topics_get_their_retention(kafka_bootstrap: str) -> None:
    name = unique_name("retention")
    audit = AuditSettings(
        log_topic=f"{name}-audit",
        state_topic=f"{name}-audit-state",
        retention={"log": {"retention_ms": 365 * DAY_MS}, "state": {"delete_retention_ms": 0}},
    )
    ensure_audit_topics(audit, KafkaClientSettings(bootstrap_servers=kafka_bootstrap), create=True)
    log = _config(kafka_bootstrap, audit.log_topic)
    assert (log["cleanup.policy"], log["retention.ms"]) == ("delete", str(365 * DAY_MS))
    state = _config(kafka_bootstrap, audit.state_topic)
    assert (state["cleanup.policy"], state["delete.retention.ms"]) == ("compact", "0")


def test_ingest_creates_the_frames_topic_with_its_retention(kafka_bootstrap: str) -> None:
    kafka = IngestKafka(
        bootstrap_servers=kafka_bootstrap,
        frames_topic=unique_name("retention-frames"),
        retention={"frames": {"retention_ms": HOUR_MS, "retention_bytes": 2**28}},
    )
    metrics = IngestMetrics()
    publisher = Publisher(kafka.client_config(), kafka, Outbox(2**20, metrics), metrics)
    publisher.start()
    try:
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        deadline = time.monotonic() + 60
        while kafka.frames_topic not in admin.list_topics(timeout=30).topics:
            assert time.monotonic() < deadline, "ingest did not create the frames topic in 60 s"
            time.sleep(0.3)
    finally:
        publisher.stop(10)
    frames = _config(kafka_bootstrap, kafka.frames_topic)
    assert (frames["cleanup.policy"], frames["retention.ms"]) == ("delete", str(HOUR_MS))
    assert frames["retention.bytes"] == str(2**28)
