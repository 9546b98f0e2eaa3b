"""The alert runner against the real broker: checkpoints, dead letters, restarts, SIGKILL."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sinks.incidents import incident_id
from sinks.metrics import AlertMetrics
from sinks.runner import AlertRunner
from sinks.state import load_state
from tests.sinks.runnerutil import (
    REPO,
    RULES,
    SECRET,
    committed,
    lines,
    produce_steps,
    running,
    settings,
    wait_for,
)
from tests.sinks.sinkutil import T0_NS, Receiver
from tests.support.kafka import consume, produce

pytestmark = pytest.mark.kafka


def test_overlapping_windows_one_firing_one_resolved(
    kafka_bootstrap: str, topics: dict[str, str], new_topic: Callable[..., str], tmp_path: Path
) -> None:
    out, alerts_topic = tmp_path / "alerts.jsonl", new_topic()
    receivers = {
        "file": {"type": "jsonl", "path": str(out)},
        "bus": {"type": "kafka", "topic": alerts_topic},
    }
    raw = settings(kafka_bootstrap, topics, receivers)
    produce_steps(kafka_bootstrap, topics["captions"], "QMMMQQQQ")
    produce_steps(kafka_bootstrap, topics["captions"], "MQ", stream_id="cam-7")
    metrics = AlertMetrics()
    with running(raw, metrics=metrics):
        wait_for(lambda: len(lines(out)) >= 3)
        on_bus = consume(kafka_bootstrap, alerts_topic, count=3, timeout_s=30)
    cam12 = incident_id("gunshot", "cam-12", T0_NS, 1)
    cam7 = incident_id("gunshot", "cam-7", T0_NS, 0)
    expected = sorted([f"{cam12}:firing", f"{cam12}:resolved", f"{cam7}:firing"])
    assert sorted(line["idempotency_key"] for line in lines(out)) == expected
    assert sorted(dict(m.headers())["idempotency-key"].decode() for m in on_bus) == expected
    state = load_state({"bootstrap.servers": kafka_bootstrap}, topics["state"])
    assert list(state) == ["gunshot|cam-7"]  # cam-12 resolved: tombstoned
    sample = metrics.registry.get_sample_value
    assert sample("earwitness_alerts_rule_matches_total", {"rule": "gunshot"}) == 4
    assert sample("earwitness_alerts_incidents_open", {"rule": "gunshot"}) == 1
    assert sample("earwitness_alerts_deliveries_total", {"receiver": "bus", "outcome": "ok"}) == 3


def test_restart_continues_incidents_from_the_state_topic(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "alerts.jsonl"
    raw = settings(kafka_bootstrap, topics, {"file": {"type": "jsonl", "path": str(out)}})
    produce_steps(kafka_bootstrap, topics["captions"], "MM")
    with running(raw):
        wait_for(lambda: len(lines(out)) >= 1)
    produce_steps(kafka_bootstrap, topics["captions"], "MQQQ", start=2)
    with running(raw):
        wait_for(lambda: len(lines(out)) >= 2)
        time.sleep(1)
    first = incident_id("gunshot", "cam-12", T0_NS, 0)
    assert [line["idempotency_key"] for line in lines(out)] == [
        f"{first}:firing",
        f"{first}:resolved",
    ]


def test_silent_stream_resolves_stale_on_the_wall_clock(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """The stream stops after two matches: no quiet window ever comes; the wall clock resolves."""
    out = tmp_path / "alerts.jsonl"
    raw = settings(
        kafka_bootstrap, topics, {"file": {"type": "jsonl", "path": str(out)}}, stale_grace_s=60
    )
    raw["tick_interval_s"] = 0.1
    produce_steps(kafka_bootstrap, topics["captions"], "MM")
    now_ns = [time.time_ns()]
    reads = [0]  # how often the runner read the clock (every tick reads it once)

    def clock() -> int:
        reads[0] += 1
        return now_ns[0]

    metrics = AlertMetrics()
    with running(raw, metrics=metrics, wall_clock_ns=clock) as runner:
        wait_for(lambda: len(lines(out)) >= 1 and _positioned(runner))
        now_ns[0] += 79 * 10**9  # resolve_after_s (20) + stale_grace_s (60) - 1
        seen = reads[0]
        wait_for(lambda: reads[0] >= seen + 5)  # ticks at 79 s, partitions read to their end
        assert len(lines(out)) == 1  # nothing resolved early
        now_ns[0] += 10**9
        wait_for(lambda: len(lines(out)) >= 2)
    firing, resolved = lines(out)
    incident = incident_id("gunshot", "cam-12", T0_NS, 0)
    assert (firing["idempotency_key"], resolved["idempotency_key"]) == (
        f"{incident}:firing",
        f"{incident}:resolved",
    )
    assert resolved["resolution"] == "stale"
    assert resolved["resolution_note"] == "no audio from the stream for 80 s"
    sample = metrics.registry.get_sample_value
    assert sample("earwitness_alerts_stale_resolutions_total", {"rule": "gunshot"}) == 1
    assert sample("earwitness_alerts_incidents_open", {"rule": "gunshot"}) == 0
    assert load_state({"bootstrap.servers": kafka_bootstrap}, topics["state"]) == {}


def test_permanent_failure_goes_to_the_dead_letter_topic(
    kafka_bootstrap: str, topics: dict[str, str], http_receiver: Receiver
) -> None:
    http_receiver.status = 410
    hook = {"type": "webhook", "url": http_receiver.url, "secret": SECRET}
    raw = settings(kafka_bootstrap, topics, {"ops": hook})
    produce(kafka_bootstrap, topics["captions"], [(b"cam-1", b"{not json")])
    produce_steps(kafka_bootstrap, topics["captions"], "M")
    with running(raw):
        letters = consume(kafka_bootstrap, topics["dlq"], count=2, timeout_s=60)
    by_kind = {dict(m.headers())["ew-kind"]: m for m in letters}
    alert = json.loads(by_kind[b"alert"].value())
    assert (alert["receiver"], alert["reason"], alert["attempts"]) == ("ops", "http_410", 1)
    assert (
        by_kind[b"alert"].key() == f"{incident_id('gunshot', 'cam-12', T0_NS, 0)}:firing".encode()
    )
    assert by_kind[b"caption"].value() == b"{not json"
    assert dict(by_kind[b"caption"].headers())["ew-error"] == b"invalid_caption"


def _spawn(config: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "earwitness.cli",
        "--log-level",
        "warning",
        "alerts",
        "--config",
        str(config),
    ]
    return subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def _keys(streams: list[str]) -> set[str]:
    return {
        f"{incident_id('gunshot', s, T0_NS, 0)}:{state}"
        for s in streams
        for state in ("firing", "resolved")
    }


@pytest.mark.slow
def test_sigkill_mid_delivery_then_restart_loses_nothing(
    kafka_bootstrap: str, topics: dict[str, str], http_receiver: Receiver, tmp_path: Path
) -> None:
    """Three streams are delivered and committed; then an outage, and the kill lands while
    three more are stuck retrying. After the restart every alert is there, and none of the
    committed ones came again (a runner that never committed would resend them all)."""
    retry = {"timeout_s": 2, "max_attempts": 1000, "backoff_initial_s": 0.05, "backoff_max_s": 0.3}
    hook = {"type": "webhook", "url": http_receiver.url, "secret": SECRET, "retry": retry}
    raw = settings(kafka_bootstrap, topics, {"ops": hook})
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(RULES))
    config = tmp_path / "alerts.yaml"
    config.write_text(yaml.safe_dump(raw))
    done, stuck = [f"cam-{n}" for n in range(3)], [f"cam-{n}" for n in range(3, 6)]
    group = raw["kafka"]["group_id"]

    first = _spawn(config)
    try:
        for stream in done:
            produce_steps(kafka_bootstrap, topics["captions"], "MMQQQ", stream_id=stream)
        wait_for(lambda: {r.headers["webhook-id"] for r in http_receiver.accepted()} >= _keys(done))
        wait_for(lambda: committed(kafka_bootstrap, group, topics["captions"]) == 15, 90)
        before = len(http_receiver.accepted())
        http_receiver.status = 503  # an outage: deliveries are stuck retrying when the kill lands
        calls = http_receiver.calls
        for stream in stuck:
            produce_steps(kafka_bootstrap, topics["captions"], "MMQQQ", stream_id=stream)
        wait_for(lambda: http_receiver.calls >= calls + 5)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    http_receiver.status = 200
    second = _spawn(config)
    try:
        wait_for(
            lambda: {r.headers["webhook-id"] for r in http_receiver.accepted()} >= _keys(stuck), 90
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        second.kill()
    keys = [r.headers["webhook-id"] for r in http_receiver.accepted()]
    assert set(keys) == _keys(done) | _keys(stuck)  # none lost
    assert not set(keys[before:]) & _keys(done)  # committed before the kill: never again
    assert committed(kafka_bootstrap, group, topics["captions"]) == 30


def _allow_large(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    entry = ConfigEntry("max.message.bytes", "1048588", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource("topic", topic, incremental_configs=[entry])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def test_an_aborted_first_checkpoint_of_a_new_group_replays_its_batch(
    kafka_bootstrap: str,
    topics: dict[str, str],
    new_topic: Callable[..., str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The state topic refuses records over 300 bytes (an incident is ~700): every checkpoint
    of the new group's first batch aborts. Each abort must redo the batch (nothing is
    committed to go back to); once the topic takes the record, the incident goes on and
    resolves under the same id. Rewinding only to committed offsets redid nothing: one
    firing, then the state lost and no resolution."""
    state = new_topic(config={"cleanup.policy": "compact", "max.message.bytes": "300"})
    out = tmp_path / "alerts.jsonl"
    raw = settings(
        kafka_bootstrap, {**topics, "state": state}, {"file": {"type": "jsonl", "path": str(out)}}
    )
    incident = incident_id("gunshot", "cam-12", T0_NS, 0)
    produce_steps(kafka_bootstrap, topics["captions"], "MM")
    with caplog.at_level(logging.WARNING), running(raw):
        wait_for(lambda: len(lines(out)) >= 2)  # the batch redone after an abort: again
        _allow_large(kafka_bootstrap, state)
        wait_for(
            lambda: (
                list(load_state({"bootstrap.servers": kafka_bootstrap}, state))
                == ["gunshot|cam-12"]
            ),
            120,
        )
        produce_steps(kafka_bootstrap, topics["captions"], "QQQ", start=2)
        wait_for(lambda: lines(out)[-1]["state"] == "resolved")
    assert "transaction aborted" in caplog.text
    keys = {line["idempotency_key"] for line in lines(out)}
    assert keys == {f"{incident}:firing", f"{incident}:resolved"}


def test_a_new_group_starts_at_the_end_and_a_known_one_where_it_left_off(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """Old captions (before the group existed) fire nothing; later ones do; after a stop the
    group goes on from its committed offsets, not from the end."""
    out = tmp_path / "alerts.jsonl"
    raw = settings(kafka_bootstrap, topics, {"file": {"type": "jsonl", "path": str(out)}})
    del raw["kafka"]["start_at"]  # the default
    produce_steps(kafka_bootstrap, topics["captions"], "MM")  # windows 0-1: before the group
    with running(raw) as runner:
        wait_for(lambda: runner.health.ready()[0] and _positioned(runner))
        produce_steps(kafka_bootstrap, topics["captions"], "MM", start=10)
        wait_for(lambda: len(lines(out)) >= 1)
    produce_steps(kafka_bootstrap, topics["captions"], "QQQ", start=12)  # while it is down
    with running(raw):
        wait_for(lambda: len(lines(out)) >= 2)
    incident = incident_id("gunshot", "cam-12", T0_NS, 10)
    assert [line["idempotency_key"] for line in lines(out)] == [
        f"{incident}:firing",
        f"{incident}:resolved",
    ]


def _positioned(runner: AlertRunner) -> bool:
    """Every partition was read to its end once (an end-of-partition event came): the end
    offsets were looked up, so records produced from now on are read."""
    return bool(runner.partitions) and set(runner.partitions) <= set(runner._at_end)
