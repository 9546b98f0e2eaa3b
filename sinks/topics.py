"""The alert runner's topics: checked (and, if allowed, created) before it joins the group.

The state topic is compacted (one record per open incident); the dead-letter topic holds
alerts no receiver took and captions that did not parse. The captions topic is the analyzer's.
"""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from earwitness.topics import (
    create_missing,
    existing_topics,
    require_compacted,
    warn_config_drift,
)
from sinks.config import KafkaSettings


def ensure_topics(kafka: KafkaSettings) -> None:
    """Create the state and dead-letter topics when missing (if ``kafka.create_topics``); an
    existing state topic must be compacted."""
    admin = AdminClient(kafka.client_config())
    retention = kafka.retention
    wanted = [
        NewTopic(kafka.state_topic, 1, -1, config=retention.state.topic_config()),
        NewTopic(kafka.dead_letter_topic, 1, -1, config=retention.dead_letters.topic_config()),
    ]
    existing = existing_topics(admin)
    require_compacted(admin, kafka.state_topic, existing)
    warn_config_drift(admin, wanted, existing)
    create_missing(admin, wanted, existing, allowed=kafka.create_topics)
