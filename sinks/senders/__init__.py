"""One sender per receiver type: ship one alert, or raise.

A sender's ``send(alert)`` makes **one** attempt within the receiver's ``timeout_s`` and
either returns (delivered), raises :class:`~sinks.errors.DeliveryFailed` (try again later) or
:class:`~sinks.errors.DeliveryRejected` (never retry). Retries, backoff and dead-lettering
belong to :mod:`sinks.delivery`. Senders are used by one delivery thread each, so they need no
locks; ``close()`` releases sockets, files and clients.
"""

from __future__ import annotations

from typing import Protocol

from earwitness.kafka import ClientConfig
from sinks.alerts import Alert
from sinks.receivers import (
    AlertmanagerReceiver,
    JsonlReceiver,
    KafkaReceiver,
    Receiver,
    SlackReceiver,
    SyslogReceiver,
    WebhookReceiver,
)


class Sender(Protocol):
    def send(self, alert: Alert) -> None: ...

    def close(self) -> None: ...


def build_sender(receiver: Receiver, client_config: ClientConfig) -> Sender:
    """The sender for a receiver's config (imports only what that type needs).

    ``client_config`` holds the runner's Kafka client properties, for the Kafka receiver.
    """
    if isinstance(receiver, WebhookReceiver | SlackReceiver | AlertmanagerReceiver):
        from sinks.senders import http

        return http.build(receiver)
    if isinstance(receiver, SyslogReceiver):
        from sinks.senders.syslog import SyslogSender

        return SyslogSender(receiver)
    if isinstance(receiver, JsonlReceiver):
        from sinks.senders.jsonl import JsonlSender

        return JsonlSender(receiver)
    if isinstance(receiver, KafkaReceiver):
        from sinks.senders.kafka import KafkaSender

        return KafkaSender(receiver, client_config)
    raise TypeError(f"no sender for {type(receiver).__name__}")
