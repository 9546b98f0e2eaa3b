"""Receiver settings: secrets kept out of logs, metrics and dead letters, secrets from files and
the environment, URLs refused at start-up, and the warnings about plaintext transports."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest

from sinks.config import AlertsSettings
from sinks.receivers import plaintext_warnings
from tests.sinks.sinkutil import Received, sample_alert
from tests.sinks.sinkutil import Receiver as HttpReceiver
from tests.support.delivery import (
    FAST,
    KEY,
    SECRET,
    receivers_of,
    secret_of,
    start_dispatcher,
)


def test_secrets_stay_out_of_logs_metrics_and_dead_letters(
    http_receiver: HttpReceiver, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret in every place one can be: URL userinfo and query, the Slack URL, a bearer
    token, signing keys (current and previous). Logs at DEBUG (httpx logs every request
    URL at INFO), metrics, reprs and dead letters hold none of them."""
    requests: list[Received] = []
    http_receiver.check = lambda request: requests.append(request) or 500  # every attempt fails
    host = http_receiver.url.removeprefix("http://")
    previous = secret_of(b"PREVIOUSKEY" * 3)
    retry = {**FAST, "max_attempts": 2}
    receivers = receivers_of(
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
    dispatcher, metrics = start_dispatcher(receivers)
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
    receivers = receivers_of(
        ops={"type": "webhook", "url": "http://x", "secret_file": str(tmp_path / "secret")}
    )
    assert receivers["ops"].secret.get_secret_value() == SECRET  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["webhook", "alertmanager", "slack"])
@pytest.mark.parametrize(
    "url", ["http://hooks.example\n/x", "https://hooks.example/a b", "https://", "ftp://x/y"]
)
def test_bad_urls_refused_at_start_up(kind: str, url: str) -> None:
    raw: dict[str, Any] = {"type": kind, "url": url}
    if kind == "webhook":
        raw["secret"] = SECRET
    with pytest.raises(ValueError, match="receivers") as caught:
        receivers_of(ops=raw)
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


def test_plaintext_transports_and_http_urls_are_warned_about() -> None:
    receivers = receivers_of(
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
