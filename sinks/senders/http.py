"""HTTP senders: signed webhook, Slack incoming webhook, Alertmanager v2 (``httpx``, sync).

Status codes: 2xx delivered; 408, 425, 429 and 5xx retryable (``Retry-After`` honoured);
any other 4xx is a rejection that goes straight to the dead-letter topic. Every request
carries an ``Idempotency-Key`` header; URLs and secrets are never logged.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable

import httpx

from sinks import formats
from sinks.alerts import Alert
from sinks.errors import DeliveryFailed, DeliveryRejected
from sinks.receivers import AlertmanagerReceiver, SlackReceiver, WebhookReceiver, redact_urls

_RETRYABLE = {408, 425, 429}

Encoder = Callable[[Alert], tuple[bytes, dict[str, str]]]


class _Redact(logging.Filter):
    """Blanks secrets out of ``httpx``'s own request log lines (``HTTP Request: POST <url>``):
    registered secrets (Slack URLs, tokens), and every URL's userinfo and query string."""

    def __init__(self) -> None:
        super().__init__("earwitness-redact")
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for secret in sorted(self.secrets, key=len, reverse=True):
            redacted = redacted.replace(secret, "**********")
        redacted = redact_urls(redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACT = _Redact()


def redact_in_http_logs(*secrets: str) -> None:
    """Register secrets with the filter on the ``httpx`` and ``httpcore`` loggers (added once,
    at first use; URLs' userinfo and query are redacted from then on even when unregistered)."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)
    _REDACT.secrets.update(s for s in secrets if s)


class HttpSender:
    """POSTs what ``encode`` builds to ``url``, one attempt per ``send``."""

    def __init__(self, url: str, encode: Encoder, timeout_s: float) -> None:
        self._url = url
        self._encode = encode
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def send(self, alert: Alert) -> None:
        body, headers = self._encode(alert)
        headers = {"idempotency-key": alert.idempotency_key, **headers}
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryFailed("timeout", type(exc).__name__) from exc
        except httpx.TransportError as exc:
            raise DeliveryFailed("connect", type(exc).__name__) from exc
        except httpx.HTTPError as exc:  # e.g. DecodingError: a body that does not decode
            raise DeliveryFailed("http_error", type(exc).__name__) from exc
        except httpx.InvalidURL as exc:  # start-up validation should have caught it
            raise DeliveryRejected("invalid_url", type(exc).__name__) from exc
        _check(response)

    def close(self) -> None:
        self._client.close()


def _check(response: httpx.Response) -> None:
    status = response.status_code
    if status < 300:
        return
    reason = f"http_{status}"
    if status in _RETRYABLE or status >= 500:
        raise DeliveryFailed(reason, response.reason_phrase, _retry_after_s(response))
    raise DeliveryRejected(reason, f"receiver refused the alert: {response.reason_phrase}")


def _retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds: delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def build(receiver: WebhookReceiver | SlackReceiver | AlertmanagerReceiver) -> HttpSender:
    timeout_s = receiver.retry.timeout_s
    if isinstance(receiver, WebhookReceiver):
        redact_in_http_logs(*_url_secrets(receiver.url))
        return HttpSender(receiver.url, _webhook_encoder(receiver), timeout_s)
    if isinstance(receiver, SlackReceiver):
        url = receiver.url.get_secret_value()
        redact_in_http_logs(url)
        return HttpSender(url, _slack, timeout_s)
    token = receiver.token.get_secret_value() if receiver.token else ""
    redact_in_http_logs(token, *_url_secrets(receiver.url))
    url = _with_path(receiver.url, "/api/v2/alerts")
    return HttpSender(url, _alertmanager_encoder(receiver), timeout_s)


def _url_secrets(url: str) -> list[str]:
    """The parts of a URL that may be credentials: password, user, query string."""
    parsed = httpx.URL(url)
    parts = [parsed.password or "", parsed.username, parsed.query.decode()]
    return [p for p in parts if len(p) >= 4]  # too short to be a secret; would blank words


def _with_path(base: str, suffix: str) -> str:
    """``base`` with ``suffix`` appended to its path (query string kept in its place)."""
    parsed = httpx.URL(base)
    return str(parsed.copy_with(path=parsed.path.rstrip("/") + suffix))


def _webhook_encoder(receiver: WebhookReceiver) -> Encoder:
    keys = receiver.signing_keys()

    def encode(alert: Alert) -> tuple[bytes, dict[str, str]]:
        body = formats.webhook_body(alert)
        return body, formats.webhook_headers(keys, alert.idempotency_key, int(time.time()), body)

    return encode


def _slack(alert: Alert) -> tuple[bytes, dict[str, str]]:
    return formats.slack_payload(alert), {"content-type": "application/json"}


def _alertmanager_encoder(receiver: AlertmanagerReceiver) -> Encoder:
    headers = {"content-type": "application/json"}
    if receiver.token is not None:
        headers["authorization"] = f"Bearer {receiver.token.get_secret_value()}"

    def encode(alert: Alert) -> tuple[bytes, dict[str, str]]:
        return formats.alertmanager_payload([alert], receiver.generator_url), headers

    return encode
