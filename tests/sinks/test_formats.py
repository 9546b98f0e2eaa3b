"""Wire formats: signatures, escaping, framing (pure functions)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from sinks import formats
from sinks.alerts import Alert, AlertState, Resolution
from sinks.prose.evidence import Evidence, Why
from tests.sinks.sinkutil import T0_NS, sample_alert

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_webhook_signature_matches_an_independent_hmac() -> None:
    body = formats.webhook_body(sample_alert())
    headers = formats.webhook_headers(formats.webhook_key(SECRET), "msg_1", 1_700_000_000, body)
    digest = hmac.new(
        b"0123456789abcdef0123456789abcdef", b"msg_1.1700000000." + body, hashlib.sha256
    ).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    assert formats.verify_webhook(SECRET, headers, body, now_s=1_700_000_010)
    assert not formats.verify_webhook(SECRET, headers, body + b" ", now_s=1_700_000_010)
    assert not formats.verify_webhook(SECRET, headers, body, now_s=1_700_001_000)


BAD_SECRETS = [
    "abc",
    "whsec_***",
    "whsec_" + base64.b64encode(b"x").decode(),
    "whsec_" + base64.b64encode(b"k" * 23).decode(),  # Standard Webhooks: at least 24 bytes
]


@pytest.mark.parametrize("secret", BAD_SECRETS)
def test_bad_webhook_secrets(secret: str) -> None:
    with pytest.raises(ValueError, match=r"secret|base64"):
        formats.webhook_key(secret)


@pytest.mark.parametrize("secret", BAD_SECRETS)
def test_verify_with_a_malformed_secret_is_false_not_an_exception(secret: str) -> None:
    body = formats.webhook_body(sample_alert())
    headers = formats.webhook_headers(formats.webhook_key(SECRET), "m", 1_700_000_000, body)
    assert formats.verify_webhook(secret, headers, body, now_s=1_700_000_000) is False
    assert formats.verify_webhook([secret, SECRET], headers, body, now_s=1_700_000_000)


def test_rotation_signs_with_every_key_and_either_verifies() -> None:
    old = "whsec_" + base64.b64encode(b"old-key-old-key-old-key-").decode()
    body = formats.webhook_body(sample_alert())
    keys = [formats.webhook_key(SECRET), formats.webhook_key(old)]
    headers = formats.webhook_headers(keys, "m", 1_700_000_000, body)
    offered = headers["webhook-signature"].split(" ")
    assert len(offered) == 2 and all(sig.startswith("v1,") for sig in offered)
    for secret in (SECRET, old):
        assert formats.verify_webhook(secret, headers, body, now_s=1_700_000_000)
    stranger = "whsec_" + base64.b64encode(b"s" * 32).decode()
    assert not formats.verify_webhook(stranger, headers, body, now_s=1_700_000_000)


@pytest.mark.parametrize("where", ["stream_id", "caption", "description"])
def test_slack_mentions_cannot_be_injected(where: str) -> None:
    alert = sample_alert(**{where: "x <!channel> <@U123|boss> <https://evil|click> & y"})
    payload = formats.slack_payload(alert).decode()
    for injected in ("<!channel>", "<@U123", "<https://evil"):
        assert injected not in payload
    assert "&lt;!channel&gt;" in payload


def test_webhook_body_carries_the_idempotency_key() -> None:
    alert = sample_alert(AlertState.RESOLVED)
    body = json.loads(formats.webhook_body(alert))
    assert body["type"] == "earwitness.alert.resolved"
    assert body["data"]["idempotency_key"] == f"{alert.alert_id}:resolved"


def test_cef_header_and_extension_escaping_differ() -> None:
    assert formats.cef_header_escape("a|b\\c=d\ne") == "a\\|b\\\\c=d e"
    assert formats.cef_extension_escape("a|b\\c=d\ne\r") == "a|b\\\\c\\=d\\ne\\r"


def test_cef_message_shape() -> None:
    message = formats.cef_message(sample_alert())
    header = message.split("|")
    assert header[:5] == [
        "CEF:0",
        "earwitness",
        "earwitness",
        formats.PRODUCT_VERSION,
        "glass-breaking",
    ]
    assert "Glass breaking \\| \\\\ = test" in message  # the name is a header field
    assert 'msg=A window shatters; "glass breaking" \\=\\nthen silence | end \\\\' in message
    assert "\n" not in message
    assert f"rt={(T0_NS + 30_000_000_000) // 1_000_000}" in message


def test_syslog_line_rfc5424() -> None:
    line = formats.syslog_line(
        sample_alert(),
        facility="local4",
        hostname="host a",
        app_name="earwitness",
        timestamp_ns=T0_NS,
    ).decode()
    pri_version, timestamp, host, app, procid, msgid, rest = line.split(" ", 6)
    assert pri_version == f"<{20 * 8 + 2}>1"  # local4, crit
    assert timestamp.endswith("Z") and host == "host_a" and app == "earwitness"
    assert (procid, msgid) == ("-", "ALERT")
    assert rest.startswith(
        '[earwitness@32473 idempotencyKey="00000000-0000-5000-8000-000000000000:firing"'
    )
    assert "] CEF:0|" in rest


def test_resolved_is_at_most_notice() -> None:
    line = formats.syslog_line(
        sample_alert(AlertState.RESOLVED),
        facility="local0",
        hostname="h",
        app_name="a",
        timestamp_ns=0,
    )
    assert line.startswith(b"<133>1 ")  # 16 * 8 + 5


def test_octet_counting_counts_bytes() -> None:
    assert formats.octet_counted("é".encode()) == b"2 \xc3\xa9"


def test_alertmanager_alert() -> None:
    firing = formats.alertmanager_alert(sample_alert(), "http://earwitness/alerts")
    assert firing["labels"] == {
        "team": "security",
        "alertname": "glass-breaking",
        "severity": "critical",
        "stream": "cam-12",
        "incident_id": "00000000-0000-5000-8000-000000000000",
    }
    assert "endsAt" not in firing and firing["generatorURL"] == "http://earwitness/alerts"
    resolved = formats.alertmanager_alert(sample_alert(AlertState.RESOLVED))
    assert resolved["endsAt"] > resolved["startsAt"]  # type: ignore[operator]


def test_slack_payload() -> None:
    payload = json.loads(formats.slack_payload(sample_alert()))
    assert payload["text"].startswith(":rotating_light: [FIRING]")
    assert "idempotency key" in payload["blocks"][-1]["elements"][0]["text"]


def test_jsonl_and_kafka() -> None:
    alert = sample_alert()
    line = formats.jsonl_line(alert)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    key, value, headers = formats.kafka_record(alert)
    assert key == alert.alert_id.encode() and json.loads(value)["state"] == "firing"
    assert ("idempotency-key", alert.idempotency_key.encode()) in headers


def test_stale_resolution_reaches_every_format() -> None:
    stale = sample_alert(
        AlertState.RESOLVED,
        resolution=Resolution.STALE,
        resolution_note="no audio from the stream for 330 s",
    )
    text = "stale: no audio from the stream for 330 s"
    annotations = formats.alertmanager_alert(stale)["annotations"]
    assert isinstance(annotations, dict) and annotations["resolution"] == text
    assert f"reason={text}" in formats.cef_message(stale)
    assert text in formats.slack_payload(stale).decode()
    assert json.loads(formats.jsonl_line(stale))["resolution"] == "stale"
    firing = formats.alertmanager_alert(sample_alert())["annotations"]
    assert isinstance(firing, dict) and "resolution" not in firing
    assert "reason=" not in formats.cef_message(sample_alert())


# --- evidence ---------------------------------------------------------------------------------


def _with_evidence() -> Alert:
    evidence = Evidence(
        phrase="glass shatters",
        sentence='The glass door shatters; a man says "no = way".',
        confidence=0.7,
        why=Why.HEDGED,
        cues=("hedged: 'likely'",),
    )
    return sample_alert(evidence=(evidence,))


def test_every_format_carries_the_evidence() -> None:
    alert = _with_evidence()
    text = '"The glass door shatters; a man says "no = way"." (hedged, confidence 0.7)'
    assert formats.evidence_text(alert) == text
    data = json.loads(formats.webhook_body(alert))["data"]
    assert data["evidence"] == [
        {
            "phrase": "glass shatters",
            "sentence": 'The glass door shatters; a man says "no = way".',
            "confidence": 0.7,
            "why": "hedged",
            "cues": ["hedged: 'likely'"],
        }
    ]
    assert formats.alertmanager_alert(alert)["annotations"]["evidence"] == text  # type: ignore[index]
    slack = json.loads(formats.slack_payload(alert))
    assert "*Evidence:* " + text.replace("&", "&amp;") in slack["blocks"][1]["text"]["text"]
    cef = formats.cef_message(alert)
    assert 'cs3Label=evidence cs3=The glass door shatters; a man says "no \\= way".' in cef
    assert "cs4Label=why cs4=hedged cfp1Label=confidence cfp1=0.70" in cef


def test_a_truncated_caption_is_said_in_every_format() -> None:
    alert = _with_evidence().model_copy(update={"caption_truncated": True})
    text = formats.evidence_text(alert)
    assert text is not None and text.endswith("; the caption was cut short at max_tokens")
    assert formats.alertmanager_alert(alert)["annotations"]["evidence"] == text  # type: ignore[index]
    assert (
        "cut short at max_tokens"
        in json.loads(formats.slack_payload(alert))["blocks"][1]["text"]["text"]
    )
    assert json.loads(formats.webhook_body(alert))["data"]["caption_truncated"] is True
    assert "cs5Label=caption cs5=truncated" in formats.cef_message(alert)
    assert "cs5Label" not in formats.cef_message(_with_evidence())


def test_without_evidence_the_formats_are_unchanged() -> None:
    alert = sample_alert()
    assert formats.evidence_text(alert) is None
    assert "evidence" not in formats.alertmanager_alert(alert)["annotations"]  # type: ignore[operator]
    assert "cs3Label" not in formats.cef_message(alert)
