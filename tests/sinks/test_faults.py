"""The alert runner through a Kafka broker restart (a broker of the test's own)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sinks.incidents import incident_id
from tests.sinks.runnerutil import lines, produce_steps, running, settings, wait_for
from tests.sinks.sinkutil import T0_NS
from tests.support.kafka import LocalBroker, create_topic, unique_name

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_a_broker_restart_loses_no_alert(private_broker: LocalBroker, tmp_path: Path) -> None:
    bootstrap = private_broker.bootstrap
    topics = {
        "captions": create_topic(bootstrap, unique_name("captions"), 2),
        "state": create_topic(bootstrap, unique_name("state"), 1, {"cleanup.policy": "compact"}),
        "dlq": create_topic(bootstrap, unique_name("dlq")),
    }
    out = tmp_path / "alerts.jsonl"
    raw = settings(bootstrap, topics, {"file": {"type": "jsonl", "path": str(out)}})
    with running(raw) as runner:
        produce_steps(bootstrap, topics["captions"], "MM", stream_id="cam-1")
        wait_for(lambda: len(lines(out)) == 1)
        private_broker.restart()  # same port, same data
        produce_steps(bootstrap, topics["captions"], "MMQQQ", stream_id="cam-2")
        produce_steps(bootstrap, topics["captions"], "QQQ", stream_id="cam-1", start=2)
        wait_for(lambda: len(lines(out)) >= 4, 180)
        assert runner.health.healthy()[0]
        assert any(t.name == "test-alert-runner" for t in threading.enumerate())
    keys = {line["idempotency_key"] for line in lines(out)}
    assert keys == {
        f"{incident_id('gunshot', s, T0_NS, 0)}:{state}"
        for s in ("cam-1", "cam-2")
        for state in ("firing", "resolved")
    }
