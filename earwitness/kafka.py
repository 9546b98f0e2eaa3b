"""Kafka plumbing shared by every service: client settings, record positions, client errors.

Every Kafka client earwitness makes (consumers, transactional and plain producers, admin
clients, the changelog and state readers, the alert runner's Kafka receiver, ``publish``,
``tail``) is configured from one :class:`KafkaClientSettings`, so TLS and SASL settings reach
all of them::

    KafkaClientSettings            bootstrap_servers, client (librdkafka properties), sasl_password
    ├── stream.config.KafkaSettings      the analyzer's topics, group, transactions
    ├── sinks.config.KafkaSettings       the alert runner's topics, group, batching
    └── (ingest, tail ...)               what each command adds

``client`` holds any librdkafka property (``security.protocol``, ``ssl.ca.location``,
``sasl.mechanism``, ``sasl.username`` ...); the SASL password is a secret and comes apart, as
:class:`~pydantic.SecretStr` (set it from the environment or a mounted secret, never the file).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

from confluent_kafka import KafkaError, Message
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from earwitness.config import Settings, load_settings
from earwitness.errors import KafkaFatalError
from earwitness.events import CAPTIONS_TOPIC, FRAMES_TOPIC

logger = logging.getLogger(__name__)

ClientConfig = dict[str, str | int | float | bool]
"""librdkafka properties, as confluent-kafka takes them."""

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


class KafkaClientSettings(BaseModel):
    """How to reach the cluster: the part of every service's ``kafka`` section that is shared."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    bootstrap_servers: str = Field(
        default=DEFAULT_BOOTSTRAP, description="Kafka bootstrap servers, comma-separated."
    )
    client: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("client", "client_config"),
        description="Extra librdkafka properties for every client (security.protocol, "
        "ssl.*, sasl.mechanism, sasl.username ...). 'client_config' is accepted as an old name.",
    )
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password; set it from a secret, never from the file."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_password_in_client(cls, values: Any) -> Any:
        if isinstance(values, dict):
            client = values.get("client") or values.get("client_config") or {}
            if isinstance(client, dict) and "sasl.password" in client:
                raise ValueError("put the SASL password in sasl_password (a secret), not in client")
        return values

    def client_config(self) -> ClientConfig:
        """Properties common to every client of this service (the password included)."""
        config: ClientConfig = {"bootstrap.servers": self.bootstrap_servers, **self.client}
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        return config


def position(msg: Message) -> tuple[str, int, int]:
    """``(topic, partition, offset)`` of a consumed record.

    The stubs allow None for all three; librdkafka sets them on every record it hands out, so a
    None here is a broken client.
    """
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise KafkaFatalError(
            f"consumed a record without a position: {topic}[{partition}]@{offset}"
        )
    return topic, partition, offset


def transactional_consumer_config(
    client: dict[str, Any],
    group_id: str,
    *,
    session_timeout_ms: int,
    max_poll_interval_ms: int,
    group_instance_id: str | None = None,
) -> dict[str, Any]:
    """A consumer of a read-process-write loop that commits through its producer's
    transactions: no auto-commit, committed data only, cooperative rebalances, static
    membership when ``group_instance_id`` is set."""
    config: dict[str, Any] = {
        **client,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": session_timeout_ms,
        "max.poll.interval.ms": max_poll_interval_ms,
    }
    if group_instance_id:
        config["group.instance.id"] = group_instance_id
    return config


def check_consumer_error(error: KafkaError, who: str = "consumer") -> None:
    """A consumer error event: fatal ones raise :class:`KafkaFatalError`, the rest are logged.

    librdkafka reports transient trouble (a broker down, a rebalance in progress) as error
    events and recovers by itself; only ``fatal()`` errors need the process to stop.
    """
    if error.fatal():
        raise KafkaFatalError(f"{who}: {error.str()}")
    logger.warning("%s: %s", who, error.str())


def frames_topic_field() -> Any:
    """The ``frames_topic`` field, one definition for every settings class that names it."""
    return Field(
        default=FRAMES_TOPIC,
        validation_alias=AliasChoices("frames_topic", "input_topic"),
        description="Topic of audio frames ('input_topic' is accepted as an old name).",
    )


def captions_topic_field() -> Any:
    """The ``captions_topic`` field, one definition for every settings class that names it."""
    return Field(
        default=CAPTIONS_TOPIC,
        validation_alias=AliasChoices("captions_topic", "output_topic"),
        description="Topic of caption events ('output_topic' is accepted as an old name).",
    )


class ToolKafka(KafkaClientSettings):
    """The ``kafka`` section as the command-line tools read it, from any service's settings
    file: the client settings and the topic names, every other key ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    frames_topic: str = frames_topic_field()
    captions_topic: str = captions_topic_field()


class ToolSettings(Settings):
    """What ``publish``, ``tail`` (and the like) need of a service's settings file; the
    analyzer's environment, then the alert runner's, override it."""

    ENV_PREFIXES: ClassVar[tuple[str, ...]] = ("EARWITNESS_ANALYZER_", "EARWITNESS_ALERTS_")
    ENV_STRICT: ClassVar[bool] = False
    model_config = SettingsConfigDict(extra="ignore")

    kafka: ToolKafka = Field(default_factory=ToolKafka)


def load_tool_settings(path: Path | None) -> ToolSettings:
    """The ``kafka`` section of ``path`` (an analyzer or alert runner config; optional) and
    the environment's (``EARWITNESS_ANALYZER_KAFKA__*``)."""
    return load_settings(ToolSettings, path)
