"""Promises of docs/alerts.md on the real broker: an outage longer than max.poll.interval.ms
costs no eviction, and a rebalance commits the in-flight batch before the partitions go."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from sinks.incidents import incident_id
from tests.sinks.runnerutil import SECRET, committed, produce_steps, running, settings, wait_for
from tests.sinks.sinkutil import T0_NS, Received, Receiver

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

RETRY = {"timeout_s": 20, "max_attempts": 100_000, "backoff_initial_s": 0.05, "backoff_max_s": 0.3}


def _key(stream: str, state: str = "firing") -> str:
    return f"{incident_id('gunshot', stream, T0_NS, 0)}:{state}"


def test_an_outage_longer_than_max_poll_interval_costs_no_eviction(
    kafka_bootstrap: str,
    topics: dict[str, str],
    http_receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The webhook is down for 15 s, max.poll.interval.ms is 10 s: the runner keeps polling
    (partitions paused) while it waits, so it is never evicted; one delivery, no rebalance."""
    http_receiver.status = 503
    hook = {"type": "webhook", "url": http_receiver.url, "secret": SECRET, "retry": RETRY}
    raw = settings(kafka_bootstrap, topics, {"ops": hook}, park_after_s=60, health_stall_s=120)
    raw["kafka"]["max_poll_interval_ms"] = 10_000
    produce_steps(kafka_bootstrap, topics["captions"], "MM")
    with caplog.at_level(logging.INFO), running(raw) as runner:
        wait_for(lambda: http_receiver.calls >= 1)
        down_at = time.monotonic()
        wait_for(lambda: time.monotonic() - down_at > 15 and runner.health.healthy()[0], 30)
        http_receiver.status = 200
        wait_for(lambda: len(http_receiver.accepted()) == 1)
        produce_steps(kafka_bootstrap, topics["captions"], "QQQ", start=2)
        wait_for(lambda: len(http_receiver.accepted()) == 2)
    keys = [r.headers["webhook-id"] for r in http_receiver.accepted()]
    assert keys == [_key("cam-12"), _key("cam-12", "resolved")]
    assert caplog.text.count("partition(s); loading incident state") == 1  # never evicted
    assert "mid-batch" not in caplog.text


def test_a_rebalance_commits_the_batch_in_flight(
    kafka_bootstrap: str,
    topics: dict[str, str],
    http_receiver: Receiver,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A second runner joins while the first waits on a slow webhook (15 s a request): the
    first finishes the batch on revocation and commits it, so the new owner does not redo
    it: the alert reaches the webhook once."""

    def slow(request: Received) -> None:
        time.sleep(15)

    http_receiver.check = slow
    hook = {"type": "webhook", "url": http_receiver.url, "secret": SECRET, "retry": RETRY}
    raw = settings(kafka_bootstrap, topics, {"ops": hook}, drain_timeout_s=30, park_after_s=60)
    other = {
        **raw,
        "kafka": {**raw["kafka"], "transactional_id": raw["kafka"]["transactional_id"] + "-b"},
    }
    streams = ["cam-1"]
    with caplog.at_level(logging.INFO), running(raw) as first:
        wait_for(lambda: first.health.ready()[0])
        for stream in streams:
            produce_steps(kafka_bootstrap, topics["captions"], "MM", stream_id=stream)
        wait_for(lambda: http_receiver.calls >= 1)  # the batch is in flight
        with running(other) as second:
            wait_for(lambda: len(first.partitions) == 1 and len(second.partitions) == 1, 120)
            wait_for(lambda: len(http_receiver.accepted()) >= len(streams), 120)
            # every caption committed: had the first not committed its batch on revocation,
            # the new owner would have redone it (15 s a request) before getting here
            group, captions = raw["kafka"]["group_id"], topics["captions"]
            wait_for(lambda: committed(kafka_bootstrap, group, captions) == 2, 120)
    assert "mid-batch: finishing and committing it" in caplog.text
    keys = [r.headers["webhook-id"] for r in http_receiver.accepted()]
    assert sorted(keys) == sorted(_key(s) for s in streams)  # each once
