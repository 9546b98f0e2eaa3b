"""Senders and delivery against real loopback receivers: HTTP servers, syslog sockets, files."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sinks import formats
from sinks.alerts import Alert, AlertState
from sinks.config import AlertsSettings
from sinks.delivery import Dispatcher, Resender, Ticket, backoff_s
from sinks.metrics import AlertMetrics
from sinks.receivers import Receiver, RetryPolicy, plaintext_warnings
from sinks.rules import Severity, parse_rules
from sinks.senders import build_sender
from tests.sinks.sinkutil import Received, sample_alert
from tests.sinks.sinkutil import Receiver as HttpReceiver
from tests.support.tls import TlsCollector, make_tls

KEY = b"k" * 32
SECRET = "whsec_" + base64.b64encode(KEY).decode()
FAST = {"timeout_s": 2.0, "max_attempts": 50, "backoff_initial_s": 0.02, "backoff_max_s": 0.2}
RULES = parse_rules({"rules": [{"id": "glass-breaking", "match": {"any": ["glass"]}}]})


def _receivers(**raw: dict[str, Any]) -> dict[str, Receiver]:
    return AlertsSettings(rules_path=Path("x"), receivers=raw).receivers


def _dispatcher(receivers: dict[str, Receiver]) -> tuple[Dispatcher, AlertMetrics]:
    metrics = AlertMetrics()
    senders = {n: build_sender(r, "localhost:1") for n, r in receivers.items()}
    dispatcher = Dispatcher(receivers, senders, RULES, metrics)
    dispatcher.start()
    return dispatcher, metrics


def _deliver(receivers: dict[str, Receiver], alerts: list[Alert], wait_s: float = 10) -> Ticket:
    dispatcher, _ = _dispatcher(receivers)
    try:
        ticket = dispatcher.dispatch([(a, n) for a in alerts for n in dispatcher.route(a)])
        assert ticket.wait(wait_s)
        return ticket
    finally:
        dispatcher.stop()


def _verify(request: Received) -> int | None:
    """The receiver's side of Standard Webhooks, written independently of sinks.formats."""
    headers = request.headers
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request.body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    offered = [s.removeprefix("v1,") for s in headers["webhook-signature"].split()]
    ok = any(hmac.compare_digest(expected, s) for s in offered)
    fresh = abs(time.time() - int(headers["webhook-timestamp"])) < 300
    return None if ok and fresh else 401


def test_webhook_signed_and_tampering_detected(http_receiver: HttpReceiver) -> None:
    http_receiver.check = _verify
    receivers = _receivers(
        ops={"type": "webhook", "url": http_receiver.url + "/hook", "secret": SECRET}
    )
    alert = sample_alert()
    _deliver(receivers, [alert])
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
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    assert not formats.verify_webhook(other, request.headers, request.body, now_s)


def test_webhook_rotation_sends_both_signatures(http_receiver: HttpReceiver) -> None:
    """During a rotation the new and the previous secret both sign; a receiver still on the
    old key (the independent verifier holds only KEY) accepts."""
    new = "whsec_" + base64.b64encode(b"n" * 32).decode()
    http_receiver.check = _verify
    hook = {
        "type": "webhook",
        "url": http_receiver.url,
        "secret": new,
        "previous_secrets": [SECRET],
    }
    _deliver(_receivers(ops=hook), [sample_alert()])
    (request,) = http_receiver.accepted()
    assert len(request.headers["webhook-signature"].split()) == 2
    now_s = int(request.headers["webhook-timestamp"])
    assert formats.verify_webhook(new, request.headers, request.body, now_s)


def test_outage_then_recovery_delivers_everything(http_receiver: HttpReceiver) -> None:
    http_receiver.status = 503
    receivers = _receivers(
        ops={"type": "webhook", "url": http_receiver.url, "secret": SECRET, "retry": FAST}
    )
    alerts = [sample_alert(state, n) for n in range(10) for state in AlertState]
    dispatcher, metrics = _dispatcher(receivers)
    try:
        ticket = dispatcher.dispatch([(a, "ops") for a in alerts])
        assert not ticket.wait(0.5)
        http_receiver.status = 200
        assert ticket.wait(10)
    finally:
        dispatcher.stop()
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
    receivers = _receivers(am={"type": "alertmanager", "url": http_receiver.url, "retry": policy})
    ticket = _deliver(receivers, [sample_alert()])
    assert [(d.reason, d.attempts) for d in ticket.dead_letters] == [("http_404", 1)]
    assert http_receiver.calls == 1

    http_receiver.status = 500
    ticket = _deliver(receivers, [sample_alert()])
    assert [(d.reason, d.attempts, d.receiver) for d in ticket.dead_letters] == [
        ("http_500", 3, "am")
    ]


def test_connection_refused_is_retryable_then_dead() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = {**FAST, "max_attempts": 2}
    receivers = _receivers(
        ops={
            "type": "webhook",
            "url": f"http://127.0.0.1:{port}",
            "secret": SECRET,
            "retry": policy,
        }
    )
    ticket = _deliver(receivers, [sample_alert()])
    assert [d.reason for d in ticket.dead_letters] == ["connect"]


def test_alertmanager_and_slack_payloads(http_receiver: HttpReceiver) -> None:
    receivers = _receivers(
        am={"type": "alertmanager", "url": http_receiver.url + "/", "token": "t0ken"},
        slack={"type": "slack", "url": http_receiver.url + "/services/T/B/X"},
    )
    _deliver(receivers, [sample_alert(AlertState.RESOLVED)])
    by_path = {r.path: r for r in http_receiver.accepted()}
    am = by_path["/api/v2/alerts"]
    assert am.headers["authorization"] == "Bearer t0ken"
    (alert,) = am.json()  # type: ignore[misc]
    assert alert["labels"]["alertname"] == "glass-breaking" and "endsAt" in alert
    slack = by_path["/services/T/B/X"].json()
    assert slack["text"].startswith(":white_check_mark: [RESOLVED]")  # type: ignore[index]


def test_routing_by_rule_and_severity(tmp_path: Path) -> None:
    rules = parse_rules(
        {
            "rules": [
                {"id": "a", "match": {"any": ["x"]}, "receivers": ["file"]},
                {"id": "b", "severity": "info", "match": {"any": ["x"]}},
            ]
        }
    )
    receivers = _receivers(
        file={"type": "jsonl", "path": str(tmp_path / "x")},
        pager={"type": "jsonl", "path": str(tmp_path / "y"), "min_severity": "critical"},
    )
    senders = {n: build_sender(r, "unused:1") for n, r in receivers.items()}
    dispatcher = Dispatcher(receivers, senders, rules, AlertMetrics())
    assert dispatcher.route(sample_alert(rule_id="a")) == ["file"]
    assert dispatcher.route(sample_alert(rule_id="b", severity=Severity.INFO)) == ["file"]
    assert dispatcher.route(sample_alert(rule_id="b")) == ["file", "pager"]


@pytest.fixture
def udp_socket() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


def test_syslog_udp(udp_socket: socket.socket) -> None:
    port = udp_socket.getsockname()[1]
    receivers = _receivers(
        siem={
            "type": "syslog",
            "host": "127.0.0.1",
            "port": port,
            "transport": "udp",
            "hostname": "ew1",
        }
    )
    _deliver(receivers, [sample_alert()])
    datagram = udp_socket.recv(65535).decode()
    assert (
        datagram.startswith("<130>1 ") and " ew1 earwitness - ALERT [earwitness@32473 " in datagram
    )
    assert "|glass-breaking|" in datagram and "externalId=" in datagram


def _read_octet_frames(conn: socket.socket, count: int) -> list[bytes]:
    buffer, frames = b"", []
    while len(frames) < count:
        chunk = conn.recv(65535)
        assert chunk, "connection closed early"
        buffer += chunk
        while b" " in buffer:
            length_text, rest = buffer.split(b" ", 1)
            length = int(length_text)
            if len(rest) < length:
                break
            frames.append(rest[:length])
            buffer = rest[length:]
    return frames


def test_syslog_tcp_octet_counting() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(5)
        port = server.getsockname()[1]
        receivers = _receivers(siem={"type": "syslog", "host": "127.0.0.1", "port": port})
        frames: list[bytes] = []

        def accept() -> None:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                frames.extend(_read_octet_frames(conn, 3))

        reader = threading.Thread(target=accept, name="test-syslog-tcp")
        reader.start()
        alerts = [sample_alert(n=n, caption=f"line {n}\nwith é") for n in range(3)]
        _deliver(receivers, alerts)
        reader.join(5)
    assert [f.decode().split("externalId=")[1].split(" ")[0] for f in frames] == [
        a.idempotency_key for a in alerts
    ]
    assert all(b"\n" not in f for f in frames)


def test_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    receivers = _receivers(file={"type": "jsonl", "path": str(path)})
    alerts = [sample_alert(), sample_alert(AlertState.RESOLVED)]
    _deliver(receivers, alerts)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["idempotency_key"] for line in lines] == [a.idempotency_key for a in alerts]


def test_secrets_stay_out_of_logs_metrics_and_dead_letters(
    http_receiver: HttpReceiver, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret in every place one can be: URL userinfo and query, the Slack URL, a bearer
    token, signing keys (current and previous). Logs at DEBUG (httpx logs every request
    URL at INFO), metrics, reprs and dead letters hold none of them."""
    requests: list[Received] = []
    http_receiver.check = lambda request: requests.append(request) or 500  # every attempt fails
    host = http_receiver.url.removeprefix("http://")
    previous = "whsec_" + base64.b64encode(b"PREVIOUSKEY" * 3).decode()
    retry = {**FAST, "max_attempts": 2}
    receivers = _receivers(
        ops={
            "type": "webhook",
            "url": f"http://hookuser:HOOKPASSWORD@{host}/hook?token=QUERYTOKEN",
            "secret": SECRET,
            "previous_secrets": [previous],
            "retry": retry,
        },
        slack={
            "type": "slack",
            "url": http_receiver.url + "/services/T0/B0/SLACKTOKEN",
            "retry": retry,
        },
        am={
            "type": "alertmanager",
            "url": f"http://{host}/?auth=AMQUERY",  # userinfo would win over the token
            "token": "BEARERTOKEN",
            "retry": retry,
        },
    )
    dispatcher, metrics = _dispatcher(receivers)
    # httpx logs each request's URL at INFO: make sure it does here, whatever an earlier test
    # (or a library's logging set-up) did to its logger
    monkeypatch.setattr(logging.getLogger("httpx"), "disabled", False)
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        try:
            ticket = dispatcher.dispatch([(sample_alert(), n) for n in receivers])
            assert ticket.wait(30)
        finally:
            dispatcher.stop()
    assert "HTTP Request: POST" in caplog.text  # httpx did log the requests
    assert len(ticket.dead_letters) == 3
    from prometheus_client import generate_latest

    text = "\n".join(
        [
            caplog.text,
            repr(receivers),
            str(receivers),
            generate_latest(metrics.registry).decode(),
            repr(ticket.dead_letters),
            *(r.body.decode() for r in requests),
        ]
    )
    secrets = ["HOOKPASSWORD", "QUERYTOKEN", "SLACKTOKEN", "AMQUERY", "BEARERTOKEN"]
    secrets += [SECRET, previous, base64.b64encode(KEY).decode(), "PREVIOUSKEY"]
    assert [secret for secret in secrets if secret in text] == []
    assert "Bearer BEARERTOKEN" in {r.headers.get("authorization") for r in requests}


def test_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET + "\n")
    receivers = _receivers(
        ops={"type": "webhook", "url": "http://x", "secret_file": str(tmp_path / "secret")}
    )
    assert receivers["ops"].secret.get_secret_value() == SECRET  # type: ignore[union-attr]


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(backoff_initial_s=1, backoff_max_s=8)
    rng = random.Random(7)
    for attempt, cap in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        delays = [backoff_s(policy, attempt, rng, None) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= cap and max(delays) > cap / 2
    assert backoff_s(policy, 1, rng, 5.0) == 5.0  # Retry-After wins over jitter
    assert backoff_s(policy, 1, rng, 60.0) == 8  # … up to the cap


def test_resender() -> None:
    receivers = _receivers(
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


# --- a sender error of any kind ends as a retry or a dead letter ---------------------------


def test_undecodable_reply_is_retried_not_fatal(http_receiver: HttpReceiver) -> None:
    """A 200 whose gzip body does not decode (httpx.DecodingError) once, then a clean reply."""
    http_receiver.reply = lambda n: (
        ({"content-encoding": "gzip"}, b"not gzip")
        if n == 1
        else (
            {},
            b"ok",
        )
    )
    receivers = _receivers(
        ops={"type": "webhook", "url": http_receiver.url, "secret": SECRET, "retry": FAST}
    )
    alerts = [sample_alert(n=0), sample_alert(n=1)]
    ticket = _deliver(receivers, alerts)
    assert ticket.dead_letters == []
    assert http_receiver.calls == 3  # the first alert twice (retried), the second once


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
    receivers = _receivers(
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


@pytest.mark.parametrize("kind", ["webhook", "alertmanager", "slack"])
@pytest.mark.parametrize(
    "url", ["http://hooks.example\n/x", "https://hooks.example/a b", "https://", "ftp://x/y"]
)
def test_bad_urls_refused_at_start_up(kind: str, url: str) -> None:
    raw: dict[str, Any] = {"type": kind, "url": url}
    if kind == "webhook":
        raw["secret"] = SECRET
    with pytest.raises(ValueError, match="receivers") as caught:
        _receivers(ops=raw)
    assert "hooks.example" not in str(caught.value)  # a Slack URL is a credential


def test_urls_and_secrets_from_the_environment_are_stripped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from earwitness.config import load_settings

    config = tmp_path / "alerts.yaml"
    config.write_text("rules_path: rules.yaml\nreceivers: {ops: {type: webhook}}\n")
    monkeypatch.setenv("EARWITNESS_ALERTS_RECEIVERS__OPS__URL", "https://hooks.example/x\n")
    monkeypatch.setenv("EARWITNESS_ALERTS_RECEIVERS__OPS__SECRET", SECRET + "\n")
    ops = load_settings(AlertsSettings, config).receivers["ops"]
    assert ops.url == "https://hooks.example/x"  # type: ignore[union-attr]
    assert ops.secret.get_secret_value() == SECRET  # type: ignore[union-attr]


# --- parking: a receiver that is down does not hold up the batch ---------------------------


def test_parked_jobs_settle_later_and_a_degraded_receiver_parks_at_once(
    http_receiver: HttpReceiver,
) -> None:
    http_receiver.status = 503
    receivers = _receivers(
        ops={"type": "webhook", "url": http_receiver.url, "secret": SECRET, "retry": FAST}
    )
    dispatcher, metrics = _dispatcher(receivers)
    try:
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
        deadline = time.monotonic() + 30
        settled: list[Any] = []
        while len(settled) < 2 and time.monotonic() < deadline:
            settled += dispatcher.take_settled()
            time.sleep(0.05)
    finally:
        dispatcher.stop()
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
    receivers = _receivers(
        ops={"type": "webhook", "url": http_receiver.url, "secret": SECRET, "retry": FAST}
    )
    dispatcher, metrics = _dispatcher(receivers)
    alert = sample_alert()
    try:
        dispatcher.resume([("ops", alert), ("gone", alert)])
        dispatcher.resume([("ops", alert)])  # a second rebalance: already queued, skipped
        gauge = metrics.registry.get_sample_value
        assert gauge("earwitness_alerts_parked_deliveries", {"receiver": "ops"}) == 1
        http_receiver.status = 200
        deadline = time.monotonic() + 30
        settled: list[Any] = []
        while len(settled) < 2 and time.monotonic() < deadline:
            settled += dispatcher.take_settled()
            time.sleep(0.05)
    finally:
        dispatcher.stop()
    outcome = {job.receiver: letter.reason if letter else "ok" for job, letter in settled}
    assert outcome == {"ops": "ok", "gone": "receiver_removed"}
    assert len(settled) == 2
    assert len(http_receiver.accepted()) == 1


# --- HTTP status codes and Retry-After ------------------------------------------------------


@pytest.mark.parametrize("status", [408, 425, 429, 500, 503])
def test_retryable_statuses_are_retried_then_delivered(
    http_receiver: HttpReceiver, status: int
) -> None:
    http_receiver.reply = lambda n: ({}, b"ok")
    http_receiver.check = lambda request: status if http_receiver.calls == 1 else None
    receivers = _receivers(
        ops={"type": "webhook", "url": http_receiver.url, "secret": SECRET, "retry": FAST}
    )
    ticket = _deliver(receivers, [sample_alert()])
    assert ticket.dead_letters == []
    assert (http_receiver.calls, len(http_receiver.accepted())) == (2, 1)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_other_4xx_dead_letter_at_once(http_receiver: HttpReceiver, status: int) -> None:
    http_receiver.status = status
    receivers = _receivers(
        ops={"type": "webhook", "url": http_receiver.url, "secret": SECRET, "retry": FAST}
    )
    ticket = _deliver(receivers, [sample_alert()])
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
    receivers = _receivers(
        ops={"type": "webhook", "url": http_receiver.url, "secret": SECRET, "retry": policy}
    )
    ticket = _deliver(receivers, [sample_alert()], wait_s=30)
    assert ticket.dead_letters == [] and len(times) == 2
    assert times[1] - times[0] >= least_s  # http-date: 3 s ahead, to the second


# --- syslog over TLS (RFC 5425), against a real TLS listener --------------------------------


def _siem(port: int, ca: Path, **extra: Any) -> dict[str, Receiver]:
    hook = {"type": "syslog", "host": "127.0.0.1", "port": port, "transport": "tls"}
    return _receivers(siem={**hook, "ca_file": str(ca), "retry": FAST, **extra})


def test_syslog_over_tls_verifies_the_collector_and_survives_its_restart(tmp_path: Path) -> None:
    files = make_tls(tmp_path / "siem")
    collector = TlsCollector(files)
    try:
        receivers = _siem(collector.port, files.ca)
        dispatcher, _ = _dispatcher(receivers)
        try:
            first = dispatcher.dispatch([(sample_alert(n=0), "siem")])
            assert first.wait(30)
            _wait(lambda: len(collector.frames) == 1)
            collector.close()  # the collector restarts: the kept connection breaks
            collector = TlsCollector(files, collector.port)
            second = dispatcher.dispatch([(sample_alert(n=1), "siem"), (sample_alert(n=2), "siem")])
            assert second.wait(30) and second.dead_letters == []
            last = sample_alert(n=2).idempotency_key.encode()
            _wait(lambda: any(last in frame for frame in collector.frames))
        finally:
            dispatcher.stop()
    finally:
        collector.close()
    assert first.dead_letters == []
    # n=1 may be lost: written into the dropped connection, accepted by the kernel (syslog
    # has no acknowledgement, as documented); the one after it notices and reconnects
    line = collector.frames[-1].decode()
    assert line.startswith("<130>1 ") and "externalId=" + sample_alert(n=2).idempotency_key in line


def test_syslog_over_tls_refuses_a_collector_it_cannot_verify(tmp_path: Path) -> None:
    files, stranger = make_tls(tmp_path / "siem"), make_tls(tmp_path / "other")
    collector = TlsCollector(files)
    try:
        receivers = _siem(collector.port, stranger.ca, retry={**FAST, "max_attempts": 2})
        ticket = _deliver(receivers, [sample_alert()], wait_s=30)
        wrong_name = _siem(collector.port, files.ca, server_name="siem.example.com")
        renamed = _deliver(
            _receivers(
                siem={**wrong_name["siem"].model_dump(), "retry": {**FAST, "max_attempts": 1}}
            ),
            [sample_alert()],
            wait_s=30,
        )
    finally:
        collector.close()
    assert [(d.reason, d.attempts) for d in ticket.dead_letters] == [("tls_verify", 2)]
    assert [d.reason for d in renamed.dead_letters] == ["tls_verify"]
    assert collector.frames == []


def test_plaintext_transports_and_http_urls_are_warned_about() -> None:
    receivers = _receivers(
        siem={"type": "syslog", "host": "siem", "port": 6514, "transport": "tcp"},
        udp={"type": "syslog", "host": "siem", "transport": "udp"},
        tls={"type": "syslog", "host": "siem", "transport": "tls"},
        hook={"type": "webhook", "url": "http://hooks.example/x", "secret": SECRET},
        safe={"type": "webhook", "url": "https://hooks.example/x", "secret": SECRET},
        slack={"type": "slack", "url": "http://hooks.slack.example/services/T/B/X"},
    )
    warnings = plaintext_warnings(receivers)
    assert [w.split(":")[0] for w in warnings] == [
        "receiver siem",
        "receiver udp",
        "receiver hook",
        "receiver slack",
    ]
    assert "6514, the syslog-over-TLS port" in warnings[0]
    assert receivers["tls"].address == ("siem", 6514)  # type: ignore[union-attr]
    assert receivers["udp"].address == ("siem", 514)  # type: ignore[union-attr]
    assert "hooks.slack.example" not in " ".join(warnings)


def _wait(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
