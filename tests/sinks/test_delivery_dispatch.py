"""The dispatcher around the senders: routing, backoff, resending, a sender's unexpected error,
and parking (a receiver that is down does not hold up the batch; resumed after a rebalance)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from sinks.alerts import Alert, AlertState
from sinks.delivery import Dispatcher, Resender, backoff_s
from sinks.metrics import AlertMetrics
from sinks.receivers import RetryPolicy
from sinks.rules import Severity, parse_rules
from sinks.senders import build_sender
from tests.sinks.sinkutil import Receiver as HttpReceiver
from tests.sinks.sinkutil import sample_alert
from tests.support.delivery import (
    FAST,
    RULES,
    deliver,
    dispatching,
    receivers_of,
    settle,
    webhook,
)


def test_routing_by_rule_and_severity(tmp_path: Path) -> None:
    rules = parse_rules(
        {
            "rules": [
                {"id": "a", "match": {"any": ["x"]}, "receivers": ["file"]},
                {"id": "b", "severity": "info", "match": {"any": ["x"]}},
            ]
        }
    )
    receivers = receivers_of(
        file={"type": "jsonl", "path": str(tmp_path / "x")},
        pager={"type": "jsonl", "path": str(tmp_path / "y"), "min_severity": "critical"},
    )
    senders = {n: build_sender(r, "unused:1") for n, r in receivers.items()}
    dispatcher = Dispatcher(receivers, senders, rules, AlertMetrics())
    assert dispatcher.route(sample_alert(rule_id="a")) == ["file"]
    assert dispatcher.route(sample_alert(rule_id="b", severity=Severity.INFO)) == ["file"]
    assert dispatcher.route(sample_alert(rule_id="b")) == ["file", "pager"]


def test_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    receivers = receivers_of(file={"type": "jsonl", "path": str(path)})
    alerts = [sample_alert(), sample_alert(AlertState.RESOLVED)]
    deliver(receivers, alerts)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["idempotency_key"] for line in lines] == [a.idempotency_key for a in alerts]


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(backoff_initial_s=1, backoff_max_s=8)
    rng = random.Random(7)
    for attempt, cap in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        delays = [backoff_s(policy, attempt, rng, None) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= cap and max(delays) > cap / 2
    assert backoff_s(policy, 1, rng, 5.0) == 5.0  # Retry-After wins over jitter
    assert backoff_s(policy, 1, rng, 60.0) == 8  # … up to the cap


def test_resender() -> None:
    receivers = receivers_of(
        am={"type": "alertmanager", "url": "http://am", "resend_every_s": 60},
        file={"type": "jsonl", "path": "/tmp/x"},
    )
    resender = Resender(receivers)
    alert = sample_alert()
    route = lambda a: ["am", "file"]  # noqa: E731
    assert resender.due([alert], route, now_s=0) == []
    assert resender.due([alert], route, now_s=59) == []
    assert resender.due([alert], route, now_s=60) == [(alert, "am")]
    assert resender.due([alert], route, now_s=61) == []
    assert resender.due([], route, now_s=200) == []
    assert resender.due([alert], route, now_s=201) == []  # forgotten, clock restarts


class _Flaky:
    """A sender (the seam every receiver type plugs into) that raises what no sender should."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[str] = []

    def send(self, alert: Alert) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("a bug in a sender")
        self.sent.append(alert.idempotency_key)

    def close(self) -> None:
        return


@pytest.mark.parametrize(("failures", "dead"), [(2, False), (1000, True)])
def test_unexpected_sender_error_retries_then_dead_letters(failures: int, dead: bool) -> None:
    receivers = receivers_of(
        file={"type": "jsonl", "path": "/nonexistent", "retry": {**FAST, "max_attempts": 3}}
    )
    sender = _Flaky(failures)
    metrics = AlertMetrics()
    dispatcher = Dispatcher(receivers, {"file": sender}, RULES, metrics)
    dispatcher.start()
    try:
        alerts = [sample_alert(n=0), sample_alert(n=1)]
        ticket = dispatcher.dispatch([(a, "file") for a in alerts])
        assert ticket.wait(10)
        assert dispatcher.alive()
    finally:
        dispatcher.stop()
    if dead:
        assert [(d.reason, d.detail, d.attempts) for d in ticket.dead_letters] == [
            ("unexpected", "RuntimeError", 3)
        ] * 2
        assert sender.sent == []
    else:
        assert ticket.dead_letters == []
        assert sender.sent == [a.idempotency_key for a in alerts]


def test_parked_jobs_settle_later_and_a_degraded_receiver_parks_at_once(
    http_receiver: HttpReceiver,
) -> None:
    http_receiver.status = 503
    receivers = webhook(http_receiver.url)
    with dispatching(receivers) as (dispatcher, metrics):
        first = dispatcher.dispatch([(sample_alert(n=0), "ops")])
        assert not first.wait(0.3)
        parked = dispatcher.park(first)
        assert first.wait(0) and [j.alert.idempotency_key for j in parked] == [
            sample_alert(n=0).idempotency_key
        ]
        assert dispatcher.degraded("ops")
        second = dispatcher.dispatch([(sample_alert(n=1), "ops")])
        assert second.wait(0)  # parked at once: the receiver is known to be down
        assert len(second.parked) == 1
        gauge = metrics.registry.get_sample_value
        assert gauge("earwitness_alerts_parked_deliveries", {"receiver": "ops"}) == 2
        http_receiver.status = 200
        settled = settle(dispatcher, 2)
    assert [(job.alert.idempotency_key, letter) for job, letter in settled] == [
        (sample_alert(n=0).idempotency_key, None),
        (sample_alert(n=1).idempotency_key, None),
    ]
    assert not dispatcher.degraded("ops")
    assert first.dead_letters == [] and second.dead_letters == []
    assert [r.headers["idempotency-key"] for r in http_receiver.accepted()] == [
        sample_alert(n=0).idempotency_key,
        sample_alert(n=1).idempotency_key,
    ]


def test_resume_skips_queued_jobs_and_dead_letters_removed_receivers(
    http_receiver: HttpReceiver,
) -> None:
    http_receiver.status = 503
    receivers = webhook(http_receiver.url)
    alert = sample_alert()
    with dispatching(receivers) as (dispatcher, metrics):
        dispatcher.resume([("ops", alert), ("gone", alert)])
        dispatcher.resume([("ops", alert)])  # a second rebalance: already queued, skipped
        gauge = metrics.registry.get_sample_value
        assert gauge("earwitness_alerts_parked_deliveries", {"receiver": "ops"}) == 1
        http_receiver.status = 200
        settled = settle(dispatcher, 2)
    outcome = {job.receiver: letter.reason if letter else "ok" for job, letter in settled}
    assert outcome == {"ops": "ok", "gone": "receiver_removed"}
    assert len(settled) == 2
    assert len(http_receiver.accepted()) == 1
