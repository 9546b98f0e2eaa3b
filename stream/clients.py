"""The analyzer's Kafka client configurations, and retrying a broker round trip.

Every client starts from ``settings.kafka.client_config()`` (``earwitness/kafka.py``: bootstrap,
TLS, SASL), so security settings reach all of them: the consumer, the transactional producer,
the changelog reader and the admin client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import KafkaException

from earwitness.errors import KafkaFatalError, TransientError
from earwitness.kafka import transactional_consumer_config
from stream.config import AnalyzerSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")


def consumer_config(settings: AnalyzerSettings) -> dict[str, object]:
    kafka = settings.kafka
    config = transactional_consumer_config(
        kafka.client_config(),
        kafka.group_id,
        session_timeout_ms=kafka.session_timeout_ms,
        max_poll_interval_ms=kafka.max_poll_interval_ms,
        group_instance_id=kafka.group_instance_id,
    )
    return {**config, "statistics.interval.ms": 5000}


def retrying(what: str, step: Callable[[], T], deadline_s: float = 120.0) -> T:
    """Retry a broker round trip while the broker comes back (after a restart, say)."""
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            return step()
        except (KafkaException, TransientError) as exc:
            if time.monotonic() > give_up:
                raise KafkaFatalError(f"{what}: broker unreachable for {deadline_s:.0f} s") from exc
            logger.warning("%s failed, retrying: %s", what, exc)
            time.sleep(1.0)


def txn_call_timeout_s(settings: AnalyzerSettings) -> float:
    """A transactional call must end well inside the transaction's own broker-side timeout."""
    return min(30.0, settings.kafka.transaction_timeout_ms / 2000)


def producer_config(settings: AnalyzerSettings) -> dict[str, object]:
    return {
        **settings.kafka.client_config(),
        "transaction.timeout.ms": settings.kafka.transaction_timeout_ms,
        "linger.ms": 5,
        "compression.type": "zstd",
    }
