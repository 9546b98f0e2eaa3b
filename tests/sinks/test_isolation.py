"""One receiver down never holds up the others: parking, on the real broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.incidents import incident_id
from sinks.metrics import AlertMetrics
from sinks.state import load
from tests.sinks.runnerutil import SECRET, lines, produce_steps, running, settings, wait_for
from tests.sinks.sinkutil import T0_NS, Receiver

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
