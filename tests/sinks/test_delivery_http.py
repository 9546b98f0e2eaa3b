"""Delivery over HTTP (signed webhooks, Alertmanager, Slack) against a real loopback server:
signatures, outages and retries, status codes and ``Retry-After``, dead letters."""

from __future__ import annotations

import email.utils
import json
import socket
import time
from collections.abc import Callable

import pytest

from sinks import formats
from sinks.alerts import AlertState
from tests.sinks.sinkutil import Received, sample_alert
from tests.sinks.sinkutil import Receiver as HttpReceiver
from tests.support.delivery import (
    FAST,
    SECRET,
    deliver,
    dispatching,
    receivers_of,
    secret_of,
    verify_webhook,
    webhook,
)


def test_webhook_signed_and_tampering_detected(http_receiver: HttpReceiver) -> None:
    http_receiver.check = verify_webhook
    receivers = receivers_of(
        ops={"type": "webhook", "url": http_receiver.url + "/hook", "secret": SECRET}
    )
    alert = sample_alert()
    deliver(receivers, [alert])
    (request,) = http_receiver.accepted()
    assert request.headers["webhook-id"] == alert.idempotency_key
    assert request.headers["idempotency-key"] == alert.idempotency_key
    assert json.loads(request.body)["data"]["alert_id"] == alert.alert_id

    # what we ship for receivers (sinks.formats.verify_webhook) takes the genuine request and
    # refuses a tampered body, a replayed old timestamp and another key
    now_s = int(request.headers["webhook-timestamp"])
    tampered = request.body.replace(b"cam-12", b"cam-13")
    assert formats.verify_webhook(SECRET, request.headers, request.body, now_s)
    assert not formats.verify_webhook(SECRET, request.headers, tampered, now_s)
    assert not formats.verify_webhook(SECRET, request.headers, request.body, now_s + 301)
    other = secret_of(b"o" * 32)
    assert not formats.verify_webhook(other, request.headers, request.body, now_s)


def test_webhook_rotation_sends_both_signatures(http_receiver: HttpReceiver) -> None:
    """During a rotation the new and the previous secret both sign; a receiver still on the
    old key (the independent verifier holds only KEY) accepts."""
    new = secret_of(b"n" * 32)
    http_receiver.check = verify_webhook
    hook = {
        "type": "webhook",
        "url": http_receiver.url,
        "secret": new,
        "previous_secrets": [SECRET],
    }
    deliver(receivers_of(ops=hook), [sample_alert()])
    (request,) = http_receiver.accepted()
    assert len(request.headers["webhook-signature"].split()) == 2
    now_s = int(request.headers["webhook-timestamp"])
    assert formats.verify_webhook(new, request.headers, request.body, now_s)


def test_outage_then_recovery_delivers_everything(http_receiver: HttpReceiver) -> None:
    http_receiver.status = 503
    receivers = webhook(http_receiver.url)
    alerts = [sample_alert(state, n) for n in range(10) for state in AlertState]
    with dispatching(receivers) as (dispatcher, metrics):
        ticket = dispatcher.dispatch([(a, "ops") for a in alerts])
        assert not ticket.wait(0.5)
        http_receiver.status = 200
        assert ticket.wait(10)
    assert ticket.dead_letters == []
    keys = [r.headers["idempotency-key"] for r in http_receiver.accepted()]
    assert keys == [a.idempotency_key for a in alerts]  # in order, each once
    sample = metrics.registry.get_sample_value
    assert sample("earwitness_alerts_deliveries_total", {"receiver": "ops", "outcome": "ok"}) == 20
    assert (
        sample("earwitness_alerts_deliveries_total", {"receiver": "ops", "outcome": "retried"}) >= 1
    )


def test_rejection_and_exhausted_retries_dead_letter(http_receiver: HttpReceiver) -> None:
    http_receiver.status = 404
    policy = {**FAST, "max_attempts": 3}
    receivers = receivers_of(am={"type": "alertmanager", "url": http_receiver.url, "retry": policy})
    ticket = deliver(receivers, [sample_alert()])
    assert [(d.reason, d.attempts) for d in ticket.dead_letters] == [("http_404", 1)]
    assert http_receiver.calls == 1

    http_receiver.status = 500
    ticket = deliver(receivers, [sample_alert()])
    assert [(d.reason, d.attempts, d.receiver) for d in ticket.dead_letters] == [
        ("http_500", 3, "am")
    ]


def test_connection_refused_is_retryable_then_dead() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = {**FAST, "max_attempts": 2}
    receivers = webhook(f"http://127.0.0.1:{port}", retry=policy)
    ticket = deliver(receivers, [sample_alert()])
    assert [d.reason for d in ticket.dead_letters] == ["connect"]


def test_alertmanager_and_slack_payloads(http_receiver: HttpReceiver) -> None:
    receivers = receivers_of(
        am={"type": "alertmanager", "url": http_receiver.url + "/", "token": "t0ken"},
        slack={"type": "slack", "url": http_receiver.url + "/services/T/B/X"},
    )
    deliver(receivers, [sample_alert(AlertState.RESOLVED)])
    by_path = {r.path: r for r in http_receiver.accepted()}
    am = by_path["/api/v2/alerts"]
    assert am.headers["authorization"] == "Bearer t0ken"
    (alert,) = am.json()  # type: ignore[misc]
    assert alert["labels"]["alertname"] == "glass-breaking" and "endsAt" in alert
    slack = by_path["/services/T/B/X"].json()
    assert slack["text"].startswith(":white_check_mark: [RESOLVED]")  # type: ignore[index]


def test_undecodable_reply_is_retried_not_fatal(http_receiver: HttpReceiver) -> None:
    """A 200 whose gzip body does not decode (httpx.DecodingError) once, then a clean reply."""
    http_receiver.reply = lambda n: (
        ({"content-encoding": "gzip"}, b"not gzip") if n == 1 else ({}, b"ok")
    )
    receivers = webhook(http_receiver.url)
    alerts = [sample_alert(n=0), sample_alert(n=1)]
    ticket = deliver(receivers, alerts)
    assert ticket.dead_letters == []
    assert http_receiver.calls == 3  # the first alert twice (retried), the second once


@pytest.mark.parametrize("status", [408, 425, 429, 500, 503])
def test_retryable_statuses_are_retried_then_delivered(
    http_receiver: HttpReceiver, status: int
) -> None:
    http_receiver.reply = lambda n: ({}, b"ok")
    http_receiver.check = lambda request: status if http_receiver.calls == 1 else None
    receivers = webhook(http_receiver.url)
    ticket = deliver(receivers, [sample_alert()])
    assert ticket.dead_letters == []
    assert (http_receiver.calls, len(http_receiver.accepted())) == (2, 1)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_other_4xx_dead_letter_at_once(http_receiver: HttpReceiver, status: int) -> None:
    http_receiver.status = status
    receivers = webhook(http_receiver.url)
    ticket = deliver(receivers, [sample_alert()])
    assert [(d.reason, d.attempts) for d in ticket.dead_letters] == [(f"http_{status}", 1)]
    assert http_receiver.calls == 1


@pytest.mark.parametrize(
    ("retry_after", "least_s"),
    [(lambda: "2", 1.9), (lambda: email.utils.formatdate(time.time() + 3, usegmt=True), 1.5)],
    ids=["seconds", "http-date"],
)
def test_retry_after_is_waited_for(
    http_receiver: HttpReceiver, retry_after: Callable[[], str], least_s: float
) -> None:
    """429 with Retry-After, jitter capped at 0.2 s: the retry waits at least what it says."""
    times: list[float] = []

    def check(request: Received) -> int | None:
        times.append(time.monotonic())
        return 429 if len(times) == 1 else None

    header = retry_after()
    http_receiver.check = check
    http_receiver.reply = lambda n: (
        ({"retry-after": header}, b"slow down") if n == 1 else ({}, b"ok")
    )
    policy = {**FAST, "backoff_max_s": 10}
    receivers = webhook(http_receiver.url, retry=policy)
    ticket = deliver(receivers, [sample_alert()], wait_s=30)
    assert ticket.dead_letters == [] and len(times) == 2
    assert times[1] - times[0] >= least_s  # http-date: 3 s ahead, to the second
