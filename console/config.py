"""Settings of ``earwitness console``: one frozen tree, from a file and ``EARWITNESS_CONSOLE_*``.

::

    ConsoleSettings             (root; the only class that reads the environment)
    ├── kafka: ConsoleKafka     the cluster (earwitness/kafka.py) and the four topics it reads
    ├── store: StoreSettings    the SQLite file, retention, the live-update journal
    ├── http: HttpSettings      where the web page is served, and how live updates batch
    ├── auth: AuthSettings      none (loopback only), bearer token, basic, or a proxy header
    └── listen: ListenSettings  window audio from the frames topic (windowing/config.py)

The rule the root enforces: bound anywhere but loopback, ``auth.mode`` may not be ``none``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from earwitness.config import Settings, secret_from_file
from earwitness.events import ALERTS_TOPIC
from earwitness.kafka import KafkaClientSettings, captions_topic_field, frames_topic_field
from earwitness.retention import CompactedRetention
from windowing.config import WindowSettings

ACKS_TOPIC = "earwitness.acks"
"""Default topic of acknowledgements (compacted, key = alert id), written by every console."""

_FROZEN = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class ConsoleRetention(BaseModel):
    """Retention of the topic the console creates (earwitness/retention.py, docs/privacy.md)."""

    model_config = _FROZEN

    acks: CompactedRetention = Field(
        default_factory=CompactedRetention, description="The compacted acks topic."
    )


class ConsoleKafka(KafkaClientSettings):
    """What the console reads (every replica reads every partition: no consumer group)."""

    captions_topic: str = captions_topic_field()
    alerts_topic: str = Field(
        default=ALERTS_TOPIC, description="Topic the alert runner's Kafka receiver writes."
    )
    acks_topic: str = Field(
        default=ACKS_TOPIC, description="Compacted topic of acknowledgements (read and written)."
    )
    frames_topic: str = frames_topic_field()
    create_topics: bool = Field(
        default=True, description="Create the acks topic (compacted) if it is missing."
    )
    replication_factor: int = Field(
        default=-1, description="Replication of the acks topic if created; -1 = broker default."
    )
    retention: ConsoleRetention = Field(
        default_factory=ConsoleRetention,
        description="Retention of the acks topic if created (applied at creation only).",
    )
    batch_max_records: int = Field(
        default=2_000, ge=1, description="Records applied to the database in one transaction."
    )
    batch_wait_ms: int = Field(
        default=100, ge=1, description="Longest wait for a batch to fill (ms): live latency."
    )
    metadata_refresh_s: float = Field(
        default=30.0, gt=0, description="How often new partitions of the topics are looked for."
    )
    timeout_s: float = Field(
        default=30.0, gt=0, description="Timeout of metadata calls and of producing an ack."
    )


class StoreSettings(BaseModel):
    """The embedded database: a file on a volume, rebuilt from Kafka when it is gone."""

    model_config = _FROZEN

    path: Path = Field(default=Path("console.db"), description="The SQLite database file.")
    retention_days: float = Field(
        default=7.0, gt=0, description="Windows older than this (stream time) are deleted."
    )
    purge_interval_s: float = Field(
        default=300.0, gt=0, description="How often expired rows are deleted."
    )
    journal_rows: int = Field(
        default=200_000,
        ge=1_000,
        description="Live updates kept for clients that resume (older ones reload the page).",
    )


class HttpSettings(BaseModel):
    """The web page."""

    model_config = _FROZEN

    host: str = Field(default="127.0.0.1", description="Address to bind (loopback by default).")
    port: int = Field(default=8470, ge=0, le=65535, description="Port of the web page.")
    stale_after_s: float = Field(
        default=60.0, gt=0, description="A stream with no event for this long is 'stale'."
    )
    page_windows: int = Field(
        default=2_000, ge=10, description="Most windows one stream page shows."
    )
    search_results: int = Field(default=50, ge=1, le=1_000, description="Results per page.")
    sse_ping_s: float = Field(default=15.0, gt=0, description="Keep-alive comment interval.")
    sse_catch_up_rows: int = Field(
        default=20_000,
        ge=100,
        description="Most missed updates replayed to a resuming client; further behind, reload.",
    )
    cookie_secure: bool | None = Field(
        default=None, description="Mark cookies Secure; default: when the request is https."
    )

    def loopback(self) -> bool:
        """Whether ``host`` is a loopback address (or ``localhost``)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class AuthSettings(BaseModel):
    """Who may see the console. ``none`` is only allowed on loopback.

    * ``bearer``: ``Authorization: Bearer <token>``; browsers sign in once at ``/login`` and
      get a cookie holding an HMAC of the token (never the token itself).
    * ``basic``: HTTP basic auth against ``users`` (``user:password`` lines, from a secret file).
    * ``proxy``: the user name in ``proxy_header``, set by a reverse proxy (oauth2-proxy);
      only believed from ``trusted_proxies``.
    """

    model_config = _FROZEN

    mode: Literal["none", "bearer", "basic", "proxy"] = Field(
        default="none", description="How requests are authenticated."
    )
    token: SecretStr | None = Field(default=None, description="The bearer token (a secret).")
    token_file: Path | None = Field(default=None, description="File holding the bearer token.")
    users: SecretStr | None = Field(
        default=None, description="Basic-auth users, 'user:password' per line (a secret)."
    )
    users_file: Path | None = Field(default=None, description="File holding the users.")
    proxy_header: str = Field(
        default="X-Forwarded-User", description="Header with the user name (oauth2-proxy)."
    )
    trusted_proxies: tuple[str, ...] = Field(
        default=("127.0.0.1/32", "::1/128"),
        description="Networks (CIDR) whose proxy header is believed.",
    )

    _token_from_file = model_validator(mode="before")(
        lambda values: secret_from_file(values, "token", "token_file")
    )
    _users_from_file = model_validator(mode="before")(
        lambda values: secret_from_file(values, "users", "users_file")
    )

    @model_validator(mode="after")
    def _credentials_for_mode(self) -> Self:
        if self.mode == "bearer" and not (self.token and self.token.get_secret_value()):
            raise ValueError("auth.mode bearer needs auth.token or auth.token_file")
        if self.mode == "basic" and not self.basic_users():
            raise ValueError("auth.mode basic needs auth.users or auth.users_file (user:password)")
        for network in self.trusted_proxies:
            ipaddress.ip_network(network, strict=False)
        return self

    def basic_users(self) -> dict[str, str]:
        """User name → password, from ``users``."""
        text = self.users.get_secret_value() if self.users is not None else ""
        pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
        return {user.strip(): password.strip() for user, password in pairs if user.strip()}


class ListenSettings(BaseModel):
    """Playing a window: its frames are read back from the frames topic, nothing is stored."""

    model_config = _FROZEN

    enabled: bool = Field(default=True, description="Offer window audio at all.")
    max_concurrent: int = Field(default=4, ge=1, description="Audio requests served at once.")
    timeout_s: float = Field(default=20.0, gt=0, description="Longest time to read the frames.")
    max_records: int = Field(
        default=2_000_000, ge=1, description="Most records read for one window (all streams)."
    )
    windowing: WindowSettings = Field(
        default_factory=WindowSettings,
        description="The analyzer's windowing section: the window is rebuilt the same way.",
    )


class ConsoleSettings(Settings):
    """Root settings of ``earwitness console``.

    Environment: ``EARWITNESS_CONSOLE_<SECTION>__<FIELD>`` (``earwitness/environment.py``).
    """

    ENV_PREFIXES: ClassVar[tuple[str, ...]] = ("EARWITNESS_CONSOLE_",)
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    kafka: ConsoleKafka = Field(default_factory=ConsoleKafka)
    store: StoreSettings = Field(default_factory=StoreSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    listen: ListenSettings = Field(default_factory=ListenSettings)
    metrics_port: int | None = Field(
        default=9465, ge=0, le=65535, description="/metrics, /healthz, /readyz; null = off."
    )
    metrics_host: str = Field(default="127.0.0.1", description="Address of the metrics port.")
    health_stall_s: float = Field(
        default=120.0, gt=0, description="/healthz fails after this long without a poll."
    )

    @model_validator(mode="after")
    def _auth_off_loopback(self) -> Self:
        if self.auth.mode == "none" and not self.http.loopback():
            raise ValueError(
                f"http.host {self.http.host} is not loopback: set auth.mode "
                "(bearer, basic or proxy)"
            )
        return self
