"""The alert runner's receivers as settings: where alerts go (webhook, Slack, Alertmanager,
syslog/CEF, JSONL file, Kafka), how each is retried, and the checks that keep their secrets and
URLs out of logs (``sinks/senders/`` delivers to them; ``sinks/config.py`` holds the rest of the
alert runner's settings).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from earwitness.config import secret_from_file
from earwitness.events import ALERTS_TOPIC
from sinks import formats
from sinks.rules import Severity

_FROZEN = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.I)
_QUERY = re.compile(r"(?P<path>https?://[^\s?#\"']*)\?[^\s#\"']*", re.I)


def redact_urls(text: str) -> str:
    """Userinfo (``user:password@``) and query strings (``?token=…``) of URLs in ``text``."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _QUERY.sub(r"\g<path>?***", text)


class RetryPolicy(BaseModel):
    """Per-attempt timeout, then exponential backoff with full jitter, then dead-letter."""

    model_config = _FROZEN

    timeout_s: float = Field(default=5.0, gt=0, description="Timeout of one attempt (seconds).")
    max_attempts: int = Field(default=8, ge=1, description="Attempts before dead-lettering.")
    backoff_initial_s: float = Field(
        default=0.5, ge=0, description="Backoff cap after the first failure (seconds)."
    )
    backoff_max_s: float = Field(
        default=30.0, ge=0, description="Largest backoff between attempts (seconds)."
    )


class _Receiver(BaseModel):
    model_config = _FROZEN

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """A URL's userinfo and query string stay out of reprs (and so out of logs)."""
        for name, value in super().__repr_args__():
            yield name, redact_urls(value) if name == "url" and isinstance(value, str) else value

    min_severity: Severity = Field(
        default=Severity.INFO, description="Alerts below this severity skip this receiver."
    )
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy, description="Timeouts and backoff of deliveries to it."
    )
    resend_every_s: float | None = Field(
        default=None, gt=0, description="Re-send firing alerts this often (seconds); null = never."
    )


def _stripped(value: Any) -> Any:
    """Values from files and the environment often end in a newline: never part of a URL/key."""
    return value.strip() if isinstance(value, str) else value


def http_url(url: str) -> str:
    """``url`` if httpx can send to it: http(s), a host, no whitespace or control character.

    The message never repeats the URL (a Slack URL is a credential).
    """
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValueError("the URL holds whitespace or a control character")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ValueError("not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("must be an http:// or https:// URL with a host")
    return url


class WebhookReceiver(_Receiver):
    """POST a JSON body signed per Standard Webhooks."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", description="Endpoint URL.")
    secret: SecretStr = Field(description="Signing secret, whsec_<base64> (24 to 64 bytes).")
    secret_file: Path | None = Field(default=None, description="File holding the secret.")
    previous_secrets: tuple[SecretStr, ...] = Field(
        default=(),
        description="Older secrets still signed with during a key rotation (each adds a"
        " signature); remove once every receiver verifies with the new one.",
    )

    _from_file = model_validator(mode="before")(
        lambda values: secret_from_file(values, "secret", "secret_file")
    )
    _strip = field_validator("url", "secret", mode="before")(_stripped)
    _url = field_validator("url")(http_url)

    @field_validator("secret")
    @classmethod
    def _whsec(cls, secret: SecretStr) -> SecretStr:
        formats.webhook_key(secret.get_secret_value())
        return secret

    @field_validator("previous_secrets", mode="before")
    @classmethod
    def _previous_stripped(cls, secrets: Any) -> Any:
        if isinstance(secrets, str):  # from the environment: space- or comma-separated
            return tuple(s for s in secrets.replace(",", " ").split() if s)
        return (
            tuple(_stripped(s) for s in secrets) if isinstance(secrets, list | tuple) else secrets
        )

    @field_validator("previous_secrets")
    @classmethod
    def _previous_whsec(cls, secrets: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for secret in secrets:
            formats.webhook_key(secret.get_secret_value())
        return secrets

    def signing_keys(self) -> list[bytes]:
        """The HMAC keys to sign with: the secret, then the previous ones."""
        return [
            formats.webhook_key(s.get_secret_value()) for s in (self.secret, *self.previous_secrets)
        ]


class SlackReceiver(_Receiver):
    """A Slack incoming webhook; its URL is the credential."""

    type: Literal["slack"]
    url: SecretStr = Field(description="Incoming webhook URL (secret).")
    url_file: Path | None = Field(default=None, description="File holding the URL.")

    _from_file = model_validator(mode="before")(
        lambda values: secret_from_file(values, "url", "url_file")
    )
    _strip = field_validator("url", mode="before")(_stripped)

    @field_validator("url")
    @classmethod
    def _url(cls, url: SecretStr) -> SecretStr:
        http_url(url.get_secret_value())
        return url


class AlertmanagerReceiver(_Receiver):
    """Alertmanager v2: ``POST <url>/api/v2/alerts``; firing alerts are re-sent."""

    type: Literal["alertmanager"]
    url: str = Field(pattern=r"^https?://", description="Base URL, e.g. http://am:9093.")
    token: SecretStr | None = Field(default=None, description="Bearer token, if any.")
    token_file: Path | None = Field(default=None, description="File holding the token.")
    generator_url: str | None = Field(default=None, description="Link back to the source.")
    resend_every_s: float | None = Field(
        default=60.0,
        gt=0,
        description="Re-send firing alerts this often (seconds), so Alertmanager keeps them.",
    )

    _from_file = model_validator(mode="before")(
        lambda values: secret_from_file(values, "token", "token_file")
    )
    _strip = field_validator("url", "token", mode="before")(_stripped)
    _url = field_validator("url")(http_url)


class SyslogReceiver(_Receiver):
    """RFC 5424 lines with a CEF message: over TLS (RFC 5425, the collector's certificate
    verified), TCP (RFC 6587 octet counting) or UDP. TCP and UDP are plaintext."""

    type: Literal["syslog"]
    host: str = Field(description="Syslog server (SIEM collector) host name or address.")
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Default: 6514 for tls, 514 otherwise."
    )
    transport: Literal["tls", "tcp", "udp"] = Field(
        default="tcp", description="tls (RFC 5425), tcp (plaintext) or udp (plaintext)."
    )
    ca_file: Path | None = Field(
        default=None,
        description="CA bundle that signed the collector's certificate (tls);"
        " default: the system's CAs.",
    )
    server_name: str | None = Field(
        default=None, description="Name the collector's certificate must hold; default: host."
    )
    cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(default=None, description="Its private key (mutual TLS).")
    facility: str = Field(default="local0", description="Syslog facility name.")
    hostname: str | None = Field(default=None, description="HOSTNAME field; default: this host.")
    app_name: str = Field(default="earwitness", max_length=48, description="APP-NAME field.")

    @field_validator("facility")
    @classmethod
    def _known_facility(cls, facility: str) -> str:
        if facility not in formats.FACILITIES:
            raise ValueError(f"unknown facility; one of {sorted(formats.FACILITIES)}")
        return facility

    @model_validator(mode="after")
    def _tls_fields(self) -> SyslogReceiver:
        tls_only = (self.ca_file, self.server_name, self.cert_file, self.key_file)
        if self.transport != "tls" and any(v is not None for v in tls_only):
            raise ValueError("ca_file, server_name, cert_file and key_file need transport: tls")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port or (6514 if self.transport == "tls" else 514)


class JsonlReceiver(_Receiver):
    """Append one JSON object per line to a file."""

    type: Literal["jsonl"]
    path: Path = Field(description="The file lines are appended to (created if missing).")
    fsync: bool = Field(default=True, description="fsync after each line (durable delivery).")


class KafkaReceiver(_Receiver):
    """Produce alerts to a Kafka topic (idempotent producer, acks=all)."""

    type: Literal["kafka"]
    topic: str = Field(default=ALERTS_TOPIC, description="Topic the alerts go to.")
    bootstrap_servers: str | None = Field(
        default=None,
        description="Another cluster's bootstrap servers; default: kafka's. The client "
        "properties (TLS, SASL) of the kafka section apply either way.",
    )


Receiver = Annotated[
    WebhookReceiver
    | SlackReceiver
    | AlertmanagerReceiver
    | SyslogReceiver
    | JsonlReceiver
    | KafkaReceiver,
    Field(discriminator="type"),
]


def plaintext_warnings(receivers: dict[str, Any]) -> list[str]:
    """What goes out unencrypted: http:// URLs, syslog over TCP or UDP (said at start-up)."""
    warnings = []
    for name, receiver in receivers.items():
        url: object = getattr(receiver, "url", None)
        if isinstance(url, SecretStr):
            url = url.get_secret_value()
        if isinstance(url, str) and url.lower().startswith("http://"):
            warnings.append(f"receiver {name}: http:// sends alerts (and any token) in the clear")
        if isinstance(receiver, SyslogReceiver) and receiver.transport != "tls":
            port = receiver.address[1]
            hint = (
                " to 6514, the syslog-over-TLS port: a TLS collector drops every line"
                if port == 6514
                else ""
            )
            warnings.append(
                f"receiver {name}: syslog over {receiver.transport}{hint} is plaintext;"
                " use transport: tls"
            )
    return warnings
