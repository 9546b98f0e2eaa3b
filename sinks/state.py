"""Incident state on a compacted Kafka topic: one record per rule + stream, tombstone on close.

Key ``<rule_id>|<stream_id>``, value the :class:`~sinks.incidents.IncidentState` as JSON, or
no value once the incident resolved. The runner writes these records in the same transaction
as the consumed offsets, so state and offsets always agree; :func:`load_state` reads the topic
back (``read_committed``) to its end (:mod:`earwitness.compacted`).
"""

from __future__ import annotations

from collections.abc import Mapping

from earwitness.compacted import read_to_end
from sinks.incidents import IncidentState


def encode(state: IncidentState | None) -> bytes | None:
    return None if state is None else state.model_dump_json().encode()


def load_state(
    client_config: Mapping[str, str | int | float | bool], topic: str, timeout_s: float = 60.0
) -> dict[str, IncidentState]:
    """Every live incident in ``topic``; tombstones delete, later records win."""
    states: dict[str, IncidentState] = {}
    for _, key, value in read_to_end(client_config, topic, timeout_s=timeout_s):
        name = (key or b"").decode()
        if value is None:
            states.pop(name, None)
        else:
            states[name] = IncidentState.model_validate_json(value)
    return states
