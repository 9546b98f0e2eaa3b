"""Pure builders: an :class:`~sinks.alerts.Alert` in each receiver's wire format.

No I/O here; senders (:mod:`sinks.senders`) call these and ship the bytes. Every format
carries the alert's idempotency key (``<alert_id>:<state>``) and its evidence (the sentence
that matched, why and how confidently; all of it in the JSON formats, the first item elsewhere):

==============  =====================================================================
webhook         JSON body; Standard Webhooks headers, ``webhook-id`` = idempotency key
Slack           ``{"text", "blocks"}``; the key in a context block
Alertmanager    v2 alert object; ``incident_id`` label, key in annotations
syslog          RFC 5424 line, structured data ``[earwitness@32473 key=...]``, CEF message
JSONL           one JSON object per line with ``idempotency_key``
Kafka           key = alert id, value = JSON, header ``idempotency-key``
==============  =====================================================================
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping

import orjson

from earwitness.events import rfc3339
from sinks.alerts import Alert, AlertState
from sinks.rules import Severity

Headers = list[tuple[str, str | bytes | None]]
"""Kafka record headers, as confluent-kafka takes them."""

PRODUCT_VERSION = "0.1.0"
SD_ID = "earwitness@32473"  # 32473: the example enterprise number of RFC 5612
CEF_MSG_MAX_CHARS = 1023  # ArcSight's limit on the msg extension
WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_KEY_MIN_BYTES = 24  # Standard Webhooks: 24 to 64 bytes

# --- Standard Webhooks -----------------------------------------------------------------------


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError when it is not one."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError("a webhook secret must look like whsec_<base64>")
    try:
        key = base64.b64decode(secret[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("the part after whsec_ is not valid base64") from exc
    if len(key) < WEBHOOK_KEY_MIN_BYTES:
        raise ValueError(f"a webhook secret needs at least {WEBHOOK_KEY_MIN_BYTES} bytes of key")
    return key


def webhook_signature(key: bytes, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    signed = f"{msg_id}.{timestamp_s}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(
    key: bytes | Iterable[bytes], msg_id: str, timestamp_s: int, body: bytes
) -> dict[str, str]:
    """Standard Webhooks headers; several keys (a rotation) give several signatures,
    space-separated, so receivers holding either key verify."""
    keys = [key] if isinstance(key, bytes) else list(key)
    signatures = " ".join(webhook_signature(k, msg_id, timestamp_s, body) for k in keys)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }


def verify_webhook(
    secret: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    now_s: int,
    tolerance_s: int = 300,
) -> bool:
    """What a receiver does: recompute the signature, compare in constant time, check age.

    ``secret`` may be several (a receiver in the middle of a rotation); any match verifies.
    False, never an exception, for malformed headers; a malformed secret matches nothing.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    keys = [key for key in map(_key_or_none, secrets) if key is not None]
    try:
        msg_id, timestamp = headers["webhook-id"], int(headers["webhook-timestamp"])
        offered = headers["webhook-signature"].split()
    except (KeyError, ValueError, AttributeError, TypeError):
        return False
    if abs(now_s - timestamp) > tolerance_s:
        return False
    expected = [webhook_signature(key, msg_id, timestamp, body) for key in keys]
    return any(hmac.compare_digest(e, candidate) for e in expected for candidate in offered)


def _key_or_none(secret: str) -> bytes | None:
    try:
        return webhook_key(secret)
    except (ValueError, AttributeError):
        return None


def webhook_body(alert: Alert) -> bytes:
    return orjson.dumps({"type": f"earwitness.alert.{alert.state}", "data": alert.to_dict()})


# --- Slack ------------------------------------------------------------------------------------

_SLACK_EMOJI = {Severity.INFO: ":information_source:", Severity.WARNING: ":warning:"}


def slack_payload(alert: Alert) -> bytes:
    """An incoming-webhook message: fallback ``text`` plus Block Kit blocks."""
    emoji = _SLACK_EMOJI.get(alert.severity, ":rotating_light:")
    if alert.state is AlertState.RESOLVED:
        emoji = ":white_check_mark:"
    headline = f"{emoji} {alert.summary}"
    detail = (
        f"*Rule:* `{alert.rule_id}` ({alert.severity})   *Since:* {rfc3339(alert.started_ns)}\n"
        f"*Caption:* {_slack_escape(alert.caption)}"
    )
    if (evidence := evidence_text(alert)) is not None:
        detail = f"{detail}\n*Evidence:* {_slack_escape(evidence)}"
    if alert.resolution is not None:
        detail = f"*Resolved:* {_slack_escape(resolution_text(alert))}\n{detail}"
    headline = _slack_escape(headline)  # the fallback text is mrkdwn too: <!channel> works there
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
        {"type": "section", "text": {"type": "mrkdwn", "text": detail[:2900]}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"idempotency key `{alert.idempotency_key}`"}],
        },
    ]
    return orjson.dumps({"text": headline, "blocks": blocks})


TRUNCATED_NOTE = "the caption was cut short at max_tokens"
"""What an alert says when its caption was truncated (``Alert.caption_truncated``)."""


def evidence_text(alert: Alert) -> str | None:
    """``"<sentence>" (hedged, confidence 0.7)`` for the first evidence item; None without.

    A truncated caption adds ``; the caption was cut short at max_tokens``."""
    if not alert.evidence:
        return TRUNCATED_NOTE if alert.caption_truncated else None
    first = alert.evidence[0]
    text = f'"{first.sentence}" ({first.why}, confidence {first.confidence:.1f})'
    return f"{text}; {TRUNCATED_NOTE}" if alert.caption_truncated else text


def resolution_text(alert: Alert) -> str:
    """``stale: no audio from the stream for 330 s``; just the resolution when no note."""
    if alert.resolution_note:
        return f"{alert.resolution}: {alert.resolution_note}"
    return str(alert.resolution)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- Alertmanager v2 --------------------------------------------------------------------------


def alertmanager_alert(alert: Alert, generator_url: str | None = None) -> dict[str, object]:
    """One element of the ``POST /api/v2/alerts`` array."""
    labels = {
        **alert.labels,
        "alertname": alert.rule_id,
        "severity": str(alert.severity),
        "stream": alert.stream_id,
        "incident_id": alert.alert_id,
    }
    annotations = {
        "summary": alert.summary,
        "description": alert.description,
        "caption": alert.caption,
        "idempotency_key": alert.idempotency_key,
    }
    if alert.resolution is not None:
        annotations["resolution"] = resolution_text(alert)
    if (evidence := evidence_text(alert)) is not None:
        annotations["evidence"] = evidence
    body: dict[str, object] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(alert.started_ns),
    }
    if alert.ended_ns is not None:
        body["endsAt"] = rfc3339(alert.ended_ns)
    if generator_url:
        body["generatorURL"] = generator_url
    return body


def alertmanager_payload(alerts: list[Alert], generator_url: str | None = None) -> bytes:
    return orjson.dumps([alertmanager_alert(a, generator_url) for a in alerts])


# --- syslog RFC 5424 + CEF --------------------------------------------------------------------

FACILITIES = {
    "user": 1,
    "daemon": 3,
    "auth": 4,
    "security": 13,
    **{f"local{i}": 16 + i for i in range(8)},
}
_SYSLOG_SEVERITY = {Severity.INFO: 6, Severity.WARNING: 4, Severity.CRITICAL: 2}
_CEF_SEVERITY = {Severity.INFO: 3, Severity.WARNING: 6, Severity.CRITICAL: 10}
_SYSLOG_NOTICE = 5
_HEADER_TOKEN = re.compile(r"[^\x21-\x7e]")


def cef_header_escape(value: str) -> str:
    """CEF header fields: escape ``\\`` and ``|``; no line breaks allowed (become spaces)."""
    value = value.replace("\\", "\\\\").replace("|", "\\|")
    return re.sub(r"[\r\n]+", " ", value)


def cef_extension_escape(value: str) -> str:
    """CEF extension values: escape ``\\`` and ``=``; line breaks as ``\\n`` / ``\\r``."""
    value = value.replace("\\", "\\\\").replace("=", "\\=")
    return value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")


def cef_message(alert: Alert) -> str:
    """``CEF:0|earwitness|earwitness|<version>|<rule>|<name>|<severity>|<extension>``."""
    header = [
        "CEF:0",
        "earwitness",
        "earwitness",
        PRODUCT_VERSION,
        cef_header_escape(alert.rule_id),
        cef_header_escape(alert.summary),
        str(_CEF_SEVERITY[alert.severity]),
    ]
    extension = {
        "rt": str(alert.last_match_ns // 1_000_000),
        "start": str(alert.started_ns // 1_000_000),
        **({"end": str(alert.ended_ns // 1_000_000)} if alert.ended_ns else {}),
        "externalId": alert.idempotency_key,
        "act": str(alert.state),
        **({"reason": resolution_text(alert)} if alert.resolution is not None else {}),
        "deviceExternalId": alert.stream_id,
        "cs1Label": "incidentId",
        "cs1": alert.alert_id,
        "cs2Label": "matched",
        "cs2": ", ".join(alert.matched),
        "cnt": str(alert.windows),
        **_cef_evidence(alert),
        "msg": alert.caption[:CEF_MSG_MAX_CHARS],
    }
    ext = " ".join(f"{k}={cef_extension_escape(v)}" for k, v in extension.items())
    return "|".join(header) + "|" + ext


def _cef_evidence(alert: Alert) -> dict[str, str]:
    """``cs3`` the matched sentence, ``cs4`` why, ``cfp1`` the confidence (first item);
    ``cs5`` = ``truncated`` when the caption was cut at max_tokens."""
    cut = {"cs5Label": "caption", "cs5": "truncated"} if alert.caption_truncated else {}
    if not alert.evidence:
        return cut
    first = alert.evidence[0]
    return {
        **cut,
        "cs3Label": "evidence",
        "cs3": first.sentence,
        "cs4Label": "why",
        "cs4": str(first.why),
        "cfp1Label": "confidence",
        "cfp1": f"{first.confidence:.2f}",
    }


def syslog_line(
    alert: Alert, *, facility: str, hostname: str, app_name: str, timestamp_ns: int
) -> bytes:
    """``<PRI>1 TIMESTAMP HOST APP - MSGID [SD] CEF:...`` (RFC 5424, no BOM, no trailer)."""
    severity = _SYSLOG_SEVERITY[alert.severity]
    if alert.state is AlertState.RESOLVED:
        severity = max(severity, _SYSLOG_NOTICE)
    pri = FACILITIES[facility] * 8 + severity
    sd = (
        f'[{SD_ID} idempotencyKey="{_sd_escape(alert.idempotency_key)}"'
        f' state="{alert.state}" stream="{_sd_escape(alert.stream_id)}"]'
    )
    fields = [
        f"<{pri}>1",
        rfc3339(timestamp_ns),
        _header_token(hostname, 255),
        _header_token(app_name, 48),
        "-",
        "ALERT",
        sd,
        cef_message(alert),
    ]
    return " ".join(fields).encode("utf-8")


def octet_counted(line: bytes) -> bytes:
    """RFC 6587 octet-counting frame for syslog over TCP: ``<length> <line>``."""
    return str(len(line)).encode() + b" " + line


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_token(value: str, max_len: int) -> str:
    cleaned = _HEADER_TOKEN.sub("_", value)[:max_len]
    return cleaned or "-"


# --- JSONL and Kafka --------------------------------------------------------------------------


def jsonl_line(alert: Alert) -> bytes:
    return alert.to_json() + b"\n"


def kafka_record(alert: Alert) -> tuple[bytes, bytes, Headers]:
    """(key, value, headers) for the alerts topic; keyed by alert id so states stay in order."""
    headers: Headers = [
        ("idempotency-key", alert.idempotency_key.encode()),
        ("content-type", b"application/json"),
    ]
    return alert.alert_id.encode(), alert.to_json(), headers
