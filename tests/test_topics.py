"""Topics that must be compacted (the analyzer's changelog, the alert runner's incident state,
the console's acks) are refused when they exist with another cleanup policy: a topic that
deletes old records would forget cursors, open incidents or acks once its retention passed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from console.acks import ensure_acks_topic
from console.config import ConsoleKafka
from earwitness.errors import ConfigError
from sinks.config import KafkaSettings as AlertsKafka
from sinks.topics import ensure_topics as ensure_alerts_topics

DELETE = {"cleanup.policy": "delete"}
COMPACT = {"cleanup.policy": "compact"}


def test_the_alert_runners_state_topic_must_be_compacted(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    dlq = new_topic()
    wrong = AlertsKafka(
        bootstrap_servers=kafka_bootstrap, state_topic=new_topic(config=DELETE),
        dead_letter_topic=dlq,
    )  # fmt: skip
    with pytest.raises(ConfigError, match=rf"{wrong.state_topic} has cleanup.policy=delete"):
        ensure_alerts_topics(wrong)
    right = wrong.model_copy(update={"state_topic": new_topic(config=COMPACT)})
    ensure_alerts_topics(right)


def test_the_consoles_acks_topic_must_be_compacted(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    wrong = ConsoleKafka(bootstrap_servers=kafka_bootstrap, acks_topic=new_topic(config=DELETE))
    with pytest.raises(ConfigError, match=rf"{wrong.acks_topic} has cleanup.policy=delete"):
        ensure_acks_topic(wrong)
    ensure_acks_topic(wrong.model_copy(update={"acks_topic": new_topic(config=COMPACT)}))
    ensure_acks_topic(wrong.model_copy(update={"acks_topic": f"{wrong.acks_topic}-new"}))
