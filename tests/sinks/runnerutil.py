"""Helpers for the alert-runner tests on the real broker: settings, a runner on a thread."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from sinks.config import AlertsSettings
from sinks.metrics import AlertMetrics
from sinks.rules import RuleSet, parse_rules
from sinks.runner import AlertRunner
from tests.sinks.sinkutil import caption_event
from tests.support.kafka import produce

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
BANG = "A gunshot rings out in the stairwell, followed by a door slamming and running footsteps."
CALM = "Quiet room tone with a ventilation hum; no gunshots, voices or alarms are heard."
RULES = {
    "rules": [
        {
            "id": "gunshot",
            "severity": "critical",
            "match": {"any": ["gunshot"]},
            "resolve_after_s": 20,
        }
    ]
}


def settings(
    bootstrap: str, topics: dict[str, str], receivers: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "rules_path": "rules.yaml",
        "kafka": {
            "bootstrap_servers": bootstrap,
            "captions_topic": topics["captions"],
            "state_topic": topics["state"],
            "dead_letter_topic": topics["dlq"],
            "group_id": f"alerts-{topics['captions']}",
            "transactional_id": f"alerts-{topics['captions']}",
            "session_timeout_ms": 6000,
            "batch_wait_ms": 100,
            "start_at": "beginning",  # the tests produce before the runner starts
        },
        "receivers": receivers,
        "metrics_port": None,
        "drain_timeout_s": 5,
        **extra,
    }


def produce_steps(
    bootstrap: str, topic: str, steps: str, stream_id: str = "cam-12", start: int = 0
) -> None:
    events = [
        caption_event(start + i, BANG if s == "M" else CALM, stream_id=stream_id)
        for i, s in enumerate(steps)
    ]
    produce(bootstrap, topic, [(e.stream_id.encode(), e.to_json()) for e in events])


@contextmanager
def running(
    raw: dict[str, Any],
    rules: RuleSet | None = None,
    metrics: AlertMetrics | None = None,
    wall_clock_ns: Callable[[], int] = time.time_ns,
) -> Iterator[AlertRunner]:
    metrics = metrics or AlertMetrics()
    config = AlertsSettings(**raw)
    runner = AlertRunner(config, rules or parse_rules(RULES), metrics, wall_clock_ns=wall_clock_ns)
    thread = threading.Thread(target=runner.run, name="test-alert-runner")
    thread.start()
    try:
        yield runner
    finally:
        runner.stop()
        thread.join(60)
        assert not thread.is_alive()


def wait_for(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def committed(bootstrap: str, group: str, topic: str) -> int:
    """Sum of the group's committed offsets on ``topic`` (a consumer that never joins)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in range(2)]
        return sum(max(0, tp.offset) for tp in consumer.committed(parts, timeout=30))
    finally:
        consumer.close()
