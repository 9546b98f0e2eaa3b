"""Settings of ``earwitness alerts``: rules path, Kafka topics, receivers, delivery policy.

Loaded with ``earwitness.config.load_settings(AlertsSettings, path)``; ``EARWITNESS_ALERTS_*``
variables override the file, e.g. ``EARWITNESS_ALERTS_RECEIVERS__OPS__SECRET=whsec_...`` sets
the secret of the receiver named ``ops``. Secrets are ``SecretStr`` (``**********`` in reprs and
logs) and may also come from a file (``secret_file``, ``url_file``, ``token_file``), read once
at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from earwitness.config import Settings
from earwitness.events import ALERTS_TOPIC
from earwitness.kafka import KafkaClientSettings, captions_topic_field
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


def _secret_from_file(values: Any, field: str, file_field: str) -> Any:
    """``<field>_file: PATH`` → ``<field>``: the file's content, stripped (unless set)."""
    if not isinstance(values, dict) or values.get(file_field) is None:
        return values
    if values.get(field) is not None:  # e.g. from the environment: it wins over the file
        return values
    path = Path(values[file_field])
    try:
        return {**values, field: path.read_text(encoding="utf-8").strip()}
    except OSError as exc:
        raise ValueError(f"{file_field}: cannot read {path}: {exc.strerror}") from exc


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
        lambda values: _secret_from_file(values, "secret", "secret_file")
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
        lambda values: _secret_from_file(values, "url", "url_file")
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
        lambda values: _secret_from_file(values, "token", "token_file")
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


class KafkaSettings(KafkaClientSettings):
    """Topics and group of the runner (the cluster itself: :class:`KafkaClientSettings`)."""

    captions_topic: str = captions_topic_field()
    group_id: str = Field(default="earwitness-alerts", description="Consumer group id.")
    state_topic: str = Field(
        default="earwitness-alerts-state", description="Compacted topic of incident state."
    )
    dead_letter_topic: str = Field(
        default="earwitness-alerts-dlq", description="Undeliverable alerts and bad captions."
    )
    start_at: Literal["end", "beginning"] = Field(
        default="end",
        description=(
            "Where the group starts on a partition it has never committed: 'end' = captions"
            " from now on (a new group does not fire every old alert); 'beginning' = replay"
            " the whole captions topic."
        ),
    )
    transactional_id: str = Field(
        default="earwitness-alerts-0", description="Unique per runner instance (pod ordinal)."
    )
    max_poll_interval_ms: int = Field(
        default=300_000, ge=10_000, description="Longest gap between polls before eviction."
    )
    session_timeout_ms: int = Field(default=45_000, ge=6_000, description="Group session timeout.")
    batch_max_events: int = Field(default=500, ge=1, description="Captions per checkpoint.")
    batch_wait_ms: int = Field(default=500, ge=1, description="Wait for a batch to fill (ms).")
    create_topics: bool = Field(
        default=True, description="Create the state and dead-letter topics if they are missing."
    )


class AlertsSettings(Settings):
    """Root settings of ``earwitness alerts``.

    Environment: ``EARWITNESS_ALERTS_<SECTION>__<FIELD>`` (``earwitness/environment.py``).
    """

    ENV_PREFIXES: ClassVar[tuple[str, ...]] = ("EARWITNESS_ALERTS_",)

    # Validation errors must not echo secrets back (they end up in logs).
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    rules_path: Path = Field(description="The rules file (YAML).")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    receivers: dict[str, Receiver] = Field(
        default_factory=dict, description="Receivers by name; rules refer to these names."
    )
    metrics_port: int | None = Field(
        default=9464, description="Port of /metrics, /healthz and /readyz; null = off."
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address of the metrics port: loopback unless told (the chart sets 0.0.0.0).",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, /metrics needs 'Authorization: Bearer <token>' (probes stay open).",
    )
    metrics_token_file: Path | None = Field(default=None, description="File holding the token.")

    _metrics_token_file = model_validator(mode="before")(
        lambda values: _secret_from_file(values, "metrics_token", "metrics_token_file")
    )
    drain_timeout_s: float = Field(
        default=30.0, gt=0, description="On SIGTERM: time to finish in-flight deliveries."
    )
    tick_interval_s: float = Field(
        default=1.0, gt=0, description="How often re-sends and stale incidents are considered (s)."
    )
    stale_grace_s: float | None = Field(
        default=300.0,
        ge=0,
        description=(
            "Resolve an incident (resolution 'stale') whose stream sent no event at all for its"
            " rule's resolve_after_s plus this many seconds of wall clock (a stopped stream);"
            " null = never."
        ),
    )
    park_after_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "A delivery still not done this long after hand-off is parked: committed to the"
            " state topic and retried by its receiver alone, so one receiver's outage never"
            " holds up the batch, the commit or the other receivers (seconds)."
        ),
    )
    health_stall_s: float = Field(
        default=180.0,
        ge=10,
        description=(
            "/healthz turns 503 once the poll loop has not turned for this long (seconds); it"
            " must cover a state reload (up to 60 s) plus a checkpoint (up to 30 s)."
        ),
    )

    @model_validator(mode="after")
    def _park_before_stall(self) -> AlertsSettings:
        if self.park_after_s >= self.health_stall_s:
            raise ValueError("park_after_s must be below health_stall_s")
        return self

    @field_validator("receivers")
    @classmethod
    def _names(cls, receivers: dict[str, Any]) -> dict[str, Any]:
        for name in receivers:
            if not name.replace("-", "_").isidentifier():
                raise ValueError(f"receiver name {name!r}: letters, digits, '-' and '_' only")
        return receivers
