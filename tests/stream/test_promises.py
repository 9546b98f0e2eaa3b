"""Promises of docs/exactly-once.md that had no test: each on the real broker, each one that
fails if the promise is broken.

- an aborted transaction rewinds and replays, and the events come out exactly once;
- two instances sharing a transactional id: the older one is fenced and exits 1;
- engine death: the analyzer commits what finished, exits 3, and a restart replays the rest;
- the changelog's partition count must equal the frames topic's, or the analyzer refuses;
- partitions lost to an eviction (no heartbeat past the session timeout) are replayed, once.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from earwitness.errors import ConfigError
from earwitness.transactions import TransactionalProducer
from stream.config import KafkaSettings
from stream.engine.worker import EngineWorker
from stream.topics import ensure_topics
from tests.support.analyzer import (
    ENGINE_START_S,
    AnalyzerProcess,
    analyzer_settings,
    engine_settings,
    running,
    scrape,
)
from tests.support.kafka import create_topic, unique_name
from tests.support.streams import CaptionWatch, Feeder, assert_exactly_once, covered

CAPTIONED = 'earwitness_windows_total{outcome="captioned"}'


@pytest.mark.kafka
def test_a_changelog_with_another_partition_count_is_refused(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    frames = new_topic(partitions=2)
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, frames_topic=frames, group_id=unique_name("promise")
    )
    create_topic(kafka_bootstrap, kafka.changelog, 1, {"cleanup.policy": "compact"})
    with pytest.raises(ConfigError, match="must be co-partitioned"):
        ensure_topics(kafka)


@pytest.mark.kafka
@pytest.mark.engine
@pytest.mark.slow
def test_aborted_transactions_rewind_and_replay_exactly_once(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    tiny_model_dir: Path,
    worker: EngineWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The captions topic refuses records over 300 bytes (an event is ~1.5 KB): every
    checkpoint with an event aborts, the analyzer rewinds and replays; once the topic takes
    them again, every window is published once."""
    settings = analyzer_settings(kafka_bootstrap, new_topic(), tiny_model_dir)
    captions = settings.kafka.captions_topic
    create_topic(kafka_bootstrap, captions, 1, {"max.message.bytes": "300"})
    feeder = Feeder(kafka_bootstrap, settings.kafka.frames_topic, ["cam-a", "cam-b"], seconds=8)
    expected = feeder.expected(4, 2, 1)
    watch = CaptionWatch(kafka_bootstrap, captions)
    try:
        with caplog.at_level(logging.WARNING), running(settings, worker):
            feeder.publish_rest()
            deadline = time.monotonic() + 180
            while caplog.text.count("rewinding partitions") < 2:
                assert time.monotonic() < deadline, "no aborted checkpoint in 180 s"
                time.sleep(0.5)
            watch.poll(1.0)
            assert watch.events == [], "an aborted transaction's events are invisible"
            _allow(kafka_bootstrap, captions)
            watch.wait_for(covered(expected), 180, lambda: caplog.text[-3000:])
            watch.poll(3.0)
    finally:
        watch.close()
    assert "transaction aborted" in caplog.text
    assert_exactly_once(watch.events, expected)


def _allow(bootstrap: str, topic: str) -> None:
    entry = ConfigEntry("max.message.bytes", "1048588", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource("topic", topic, incremental_configs=[entry])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


@pytest.mark.kafka
@pytest.mark.engine
@pytest.mark.slow
def test_a_second_instance_with_the_same_transactional_id_fences_the_first_which_exits_1(
    kafka_bootstrap: str, new_topic: Callable[..., str], tiny_model_dir: Path, tmp_path: Path
) -> None:
    txn_id = unique_name("shared-txn")
    settings = analyzer_settings(
        kafka_bootstrap, new_topic(), tiny_model_dir, transactional_id=txn_id
    )
    feeder = Feeder(kafka_bootstrap, settings.kafka.frames_topic, ["cam-a"], seconds=60)
    with AnalyzerProcess(settings, tmp_path, "first") as first:
        first.wait_for_log(r"assigned \[", ENGINE_START_S)
        feeder.publish(4)
        time.sleep(3)
        newer = TransactionalProducer({"bootstrap.servers": kafka_bootstrap}, txn_id, timeout_s=30)
        newer.init()  # bumps the epoch: the first instance is now a zombie
        feeder.publish(4)  # gives the first one something to commit
        code = first.wait_exit(120)
        newer.close()
        log = first.log()
    assert code == 1, first.tail()
    assert "fatal Kafka error" in log


@pytest.mark.kafka
@pytest.mark.engine
@pytest.mark.slow
def test_engine_death_commits_what_finished_exits_3_and_a_restart_replays_the_rest(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    tiny_model_dir: Path,
    worker: EngineWorker,
    tmp_path: Path,
) -> None:
    """Checkpoints are 10 minutes apart in the dying instance, so the events it finished can
    reach the topic only through the checkpoint of the death path: at least as many are
    visible after exit 3 as it had captioned (its metric) when its engine was killed."""
    settings = analyzer_settings(kafka_bootstrap, new_topic(partitions=2), tiny_model_dir)
    dying = settings.model_copy(
        update={
            "engine": engine_settings(
                tiny_model_dir, vllm_env={"VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
            ),
            "kafka": settings.kafka.model_copy(update={"commit_interval_ms": 600_000}),
        }
    )
    feeder = Feeder(kafka_bootstrap, settings.kafka.frames_topic, ["cam-a", "cam-b"], seconds=12)
    expected = feeder.expected(4, 2, 1)
    watch = CaptionWatch(kafka_bootstrap, settings.kafka.captions_topic)
    try:
        with AnalyzerProcess(dying, tmp_path, "dying") as proc:
            port = proc.metrics_port()
            proc.wait_for_log(r"assigned \[", ENGINE_START_S)
            feeder.publish(6)
            deadline = time.monotonic() + 120
            while (finished := scrape(port).get(CAPTIONED, 0)) < 2:
                assert time.monotonic() < deadline, f"no 2 captions in 120 s\n{proc.tail()}"
                time.sleep(0.2)
            watch.poll(1.0)
            assert watch.events == [], "no checkpoint yet: nothing may be visible"
            assert proc.proc is not None
            cores = [
                p
                for p in psutil.Process(proc.proc.pid).children(recursive=True)
                if "EngineCore" in " ".join(p.cmdline())
            ]
            assert cores, "no engine core process to kill"
            for core in cores:
                core.send_signal(signal.SIGKILL)
            code = proc.wait_exit(120)
            log = proc.log()
        watch.poll(5.0)
        before = len(watch.events)
        assert code == 3, log[-3000:]
        assert "engine died: committing finished windows" in log
        feeder.publish_rest()
        with running(settings, worker):
            watch.wait_for(covered(expected), 180, lambda: "")
            watch.poll(3.0)
    finally:
        watch.close()
    assert before >= finished, f"{finished} captioned before the death, {before} committed"
    assert_exactly_once(watch.events, expected)


@pytest.mark.kafka
@pytest.mark.engine
@pytest.mark.slow
def test_partitions_lost_to_an_eviction_are_replayed_exactly_once(
    kafka_bootstrap: str, new_topic: Callable[..., str], tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The analyzer is frozen (SIGSTOP) past its session timeout: the group evicts it and its
    partitions are lost. Thawed, it must forget them without a checkpoint (it may no longer
    commit for them), rejoin, and replay from the last committed transaction: every window
    once, none lost. The freeze stays well under transaction_timeout_ms (60 s), which would
    fence the producer instead."""
    settings = analyzer_settings(
        kafka_bootstrap, new_topic(partitions=2), tiny_model_dir, session_timeout_ms=6_000
    )
    feeder = Feeder(kafka_bootstrap, settings.kafka.frames_topic, ["cam-a", "cam-b"], seconds=12)
    expected = feeder.expected(4, 2, 1)
    watch = CaptionWatch(kafka_bootstrap, settings.kafka.captions_topic)
    try:
        with AnalyzerProcess(settings, tmp_path, "evicted") as proc:
            proc.wait_for_log(r"assigned \[", ENGINE_START_S)
            feeder.publish(6)
            watch.wait_for(lambda events: len(events) >= 2, 120, proc.tail)
            assert proc.proc is not None
            proc.proc.send_signal(signal.SIGSTOP)
            try:
                feeder.publish(3)  # frames that arrive while it is frozen
                time.sleep(20)  # > session_timeout_ms: the coordinator evicts it
            finally:
                proc.proc.send_signal(signal.SIGCONT)
            proc.wait_for_log(r"lost \[", 120)
            feeder.publish_rest()
            watch.wait_for(covered(expected), 180, proc.tail)
            watch.poll(3.0)
            assert proc.alive, proc.tail()
            proc.terminate()
            code = proc.wait_exit(120)
    finally:
        watch.close()
    assert code == 0, proc.tail()
    assert_exactly_once(watch.events, expected)
