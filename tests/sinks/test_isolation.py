"""Parking (one receiver down holds up no other) and poison state records, on the real broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.incidents import IncidentTracker, incident_id
from sinks.metrics import AlertMetrics
from sinks.rules import parse_rules
from sinks.state import load
from tests.sinks.runnerutil import (
    RULES,
    SECRET,
    lines,
    produce_steps,
    running,
    settings,
    wait_for,
)
from tests.sinks.sinkutil import T0_NS, Receiver, caption_event
from tests.support.kafka import consume, produce

pytestmark = pytest.mark.kafka

DOWN = {"timeout_s": 2, "max_attempts": 100_000, "backoff_initial_s": 0.05, "backoff_max_s": 0.3}


def _firing(stream: str) -> str:
    return f"{incident_id('gunshot', stream, T0_NS, 0)}:firing"


def test_a_dead_webhook_delays_neither_the_file_nor_the_commit_and_loses_nothing(
    kafka_bootstrap: str, topics: dict[str, str], http_receiver: Receiver, tmp_path: Path
) -> None:
    """The webhook is down: the file still gets every later alert (after one park_after_s),
    the captions are committed, the webhook's deliveries wait in the state topic, and a new
    runner delivers them once the webhook is back."""
    http_receiver.status = 503
    out = tmp_path / "alerts.jsonl"
    receivers = {
        "ops": {"type": "webhook", "url": http_receiver.url, "secret": SECRET, "retry": DOWN},
        "file": {"type": "jsonl", "path": str(out)},
    }
    raw = settings(kafka_bootstrap, topics, receivers, park_after_s=2)
    client = {"bootstrap.servers": kafka_bootstrap}
    metrics = AlertMetrics()
    with running(raw, metrics=metrics):
        produce_steps(kafka_bootstrap, topics["captions"], "MM", stream_id="cam-1")
        wait_for(lambda: [line["idempotency_key"] for line in lines(out)] == [_firing("cam-1")])
        produce_steps(kafka_bootstrap, topics["captions"], "MM", stream_id="cam-2")
        # before parking, the first batch waited for the webhook forever: cam-2 never came
        wait_for(lambda: len(lines(out)) == 2)
        wait_for(lambda: len(load(client, topics["state"]).parked) == 2)
        assert http_receiver.accepted() == []
        gauge = metrics.registry.get_sample_value
        assert gauge("earwitness_alerts_parked_deliveries", {"receiver": "ops"}) == 2
    assert [line["idempotency_key"] for line in lines(out)] == [_firing("cam-1"), _firing("cam-2")]
    parked = load(client, topics["state"]).parked.values()
    assert sorted(p.alert.idempotency_key for p in parked) == [_firing("cam-1"), _firing("cam-2")]
    assert {p.receiver for p in parked} == {"ops"}

    http_receiver.status = 200
    with running(raw):  # the captions were committed: only the parked records bring these
        wait_for(lambda: len(http_receiver.accepted()) >= 2)
        wait_for(lambda: load(client, topics["state"]).parked == {})
    keys = [r.headers["webhook-id"] for r in http_receiver.accepted()]
    assert keys == [_firing("cam-1"), _firing("cam-2")]  # in order
    assert len(lines(out)) == 2  # nothing re-consumed: the file got no duplicate


def test_poison_state_records_are_dead_lettered_not_a_crash_loop(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """Bad JSON, bad UTF-8 and a wrong shape in the state topic: the runner starts, moves each
    to the dead-letter topic (``ew-kind: state``) and deletes it; a record with a field from a
    newer runner still loads."""

    tracker = IncidentTracker(parse_rules(RULES))
    tracker.observe(caption_event(0, "A gunshot, then silence.", stream_id="cam-9"), partition=0)
    (state,) = [s for s in tracker.take_changes().values() if s is not None]
    newer = state.model_dump_json()[:-1].encode() + b', "added_by_a_newer_runner": 1}'
    poison = [
        (b"gunshot|cam-1", b"{not json"),
        (b"gunshot|cam-2", b"\xff\xfe"),
        (b"@parked|x|y", b"[1]"),
    ]
    produce(kafka_bootstrap, topics["state"], [*poison, (state.key.encode(), newer)])
    out = tmp_path / "alerts.jsonl"
    raw = settings(kafka_bootstrap, topics, {"file": {"type": "jsonl", "path": str(out)}})
    client = {"bootstrap.servers": kafka_bootstrap}
    with running(raw):
        letters = consume(kafka_bootstrap, topics["dlq"], count=3, timeout_s=60)
        wait_for(lambda: load(client, topics["state"]).bad == {})
    assert sorted((m.key(), m.value()) for m in letters) == sorted(poison)
    assert {dict(m.headers())["ew-kind"] for m in letters} == {b"state"}
    assert {dict(m.headers())["ew-error"] for m in letters} == {b"invalid_state"}
    assert list(load(client, topics["state"]).incidents) == ["gunshot|cam-9"]
