"""Two alert runners in one group, on the real broker: each owns its partitions' incidents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from sinks.incidents import incident_id
from tests.sinks.runnerutil import BANG, CALM, lines, running, settings, wait_for
from tests.sinks.sinkutil import T0_NS, caption_event

pytestmark = pytest.mark.kafka


def _produce_to(
    bootstrap: str, topic: str, partition: int, stream_id: str, steps: str, *, start: int = 0
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i, step in enumerate(steps):
        event = caption_event(start + i, BANG if step == "M" else CALM, stream_id=stream_id)
        producer.produce(topic, event.to_json(), stream_id.encode(), partition=partition)
    assert producer.flush(30) == 0


def _replica(raw: dict[str, Any], name: str, out: Path) -> dict[str, Any]:
    receiver = {"type": "jsonl", "path": str(out), "resend_every_s": 0.3}
    return {
        **raw,
        "receivers": {"file": receiver},
        "kafka": {**raw["kafka"], "transactional_id": f"{raw['kafka']['transactional_id']}-{name}"},
        "tick_interval_s": 0.1,
    }


def _keys(path: Path, since: int = 0) -> list[str]:
    return [line["idempotency_key"] for line in lines(path)[since:]]


def test_a_second_replica_never_reopens_what_the_owner_resolved(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """cam-a lives on partition 0, cam-b on 1. A fires both alone; B joins and takes one
    partition; cam-b resolves on its owner; neither replica sends cam-b ``firing`` again,
    while re-sends of cam-a go on (the re-send loop is alive)."""
    captions = topics["captions"]
    raw = settings(kafka_bootstrap, topics, {})
    out_a, out_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    cam_a = incident_id("gunshot", "cam-a", T0_NS, 0)
    cam_b = incident_id("gunshot", "cam-b", T0_NS, 0)
    _produce_to(kafka_bootstrap, captions, 0, "cam-a", "MM")
    _produce_to(kafka_bootstrap, captions, 1, "cam-b", "MM")
    with running(_replica(raw, "a", out_a)) as a:
        wait_for(lambda: {f"{cam_a}:firing", f"{cam_b}:firing"} <= set(_keys(out_a)))
        with running(_replica(raw, "b", out_b)) as b:
            wait_for(lambda: len(a.partitions) == 1 and len(b.partitions) == 1, 120)
            owner_b = out_a if 1 in a.partitions else out_b
            other = out_b if owner_b is out_a else out_a
            _produce_to(kafka_bootstrap, captions, 1, "cam-b", "QQQ", start=2)
            wait_for(lambda: f"{cam_b}:resolved" in _keys(owner_b))
            seen = {path: len(lines(path)) for path in (out_a, out_b)}
            # both keep turning: cam-a's owner (``other``) re-sends cam-a several more times
            wait_for(lambda: _keys(other, seen[other]).count(f"{cam_a}:firing") >= 5)
            after = _keys(out_a, seen[out_a]) + _keys(out_b, seen[out_b])
    assert f"{cam_b}:firing" not in after
    assert _keys(owner_b, seen[owner_b]).count(f"{cam_a}:firing") == 0  # not its partition
