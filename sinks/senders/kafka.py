"""Kafka sender: the alert as JSON on an alerts topic, keyed by alert id.

An idempotent producer (acks=all); ``send`` produces and flushes within the timeout, so a
return means the broker has it. A timed-out message may still land later: a duplicate with
the same ``idempotency-key`` header, never a loss.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from earwitness.kafka import ClientConfig
from sinks import formats
from sinks.alerts import Alert
from sinks.errors import DeliveryFailed, DeliveryRejected
from sinks.receivers import KafkaReceiver


class KafkaSender:
    def __init__(self, receiver: KafkaReceiver, client_config: ClientConfig) -> None:
        """``client_config``: the runner's client properties (TLS and SASL included)."""
        self._topic = receiver.topic
        self._timeout_s = receiver.retry.timeout_s
        bootstrap = receiver.bootstrap_servers or client_config["bootstrap.servers"]
        self._producer = Producer(
            {
                **client_config,
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
                "message.timeout.ms": max(1000, int(self._timeout_s * 1000)),
            }
        )

    def send(self, alert: Alert) -> None:
        key, value, headers = formats.kafka_record(alert)
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        try:
            self._producer.produce(
                self._topic, value, key, headers=headers, on_delivery=on_delivery
            )
        except (BufferError, KafkaException) as exc:
            raise DeliveryFailed("kafka_produce", str(exc)) from exc
        if self._producer.flush(self._timeout_s) > 0:
            raise DeliveryFailed("timeout", "alert not acknowledged in time")
        if errors:
            _raise(errors[0])

    def close(self) -> None:
        self._producer.flush(self._timeout_s)


def _raise(err: KafkaError) -> None:
    if err.retriable() or err.code() == KafkaError._MSG_TIMED_OUT:
        raise DeliveryFailed(f"kafka_{err.name().lower()}", err.str())
    raise DeliveryRejected(f"kafka_{err.name().lower()}", err.str())
