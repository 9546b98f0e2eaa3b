"""The alert runner's state on a compacted Kafka topic: open incidents and parked deliveries.

Two kinds of record, told apart by the key (``@`` never starts a rule id):

* ``<rule_id>|<stream_id>``: the :class:`~sinks.incident_state.IncidentState` as JSON;
* ``@parked|<receiver>|<idempotency_key>``: a delivery parked while its receiver was down
  (:mod:`sinks.jobs`): ``{"receiver", "partition", "alert"}``.

A tombstone (no value) deletes either. The runner writes these records in the same
transaction as the consumed offsets, so state and offsets always agree; :func:`load` reads
the topic back (``read_committed``) to its end (:mod:`earwitness.compacted`). A record that
does not parse (a poison record: bad JSON, bad UTF-8, a newer major format) is set aside in
:attr:`Stored.bad`, never a crash; the runner dead-letters and deletes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
from pydantic import ValidationError

from earwitness.compacted import read_to_end
from sinks.alerts import Alert
from sinks.incident_state import IncidentState
from sinks.jobs import Job

logger = logging.getLogger(__name__)

PARKED_PREFIX = "@parked|"
_UNPARSED = (ValidationError, ValueError, KeyError, TypeError)  # UnicodeDecodeError: ValueError


@dataclass(frozen=True)
class Parked:
    """A delivery parked in the state topic."""

    receiver: str
    alert: Alert


@dataclass(frozen=True)
class BadRecord:
    """A state record that does not parse."""

    key: bytes | None
    value: bytes
    detail: str


@dataclass
class Stored:
    """What the state topic holds, by key."""

    incidents: dict[str, IncidentState] = field(default_factory=dict)
    parked: dict[str, Parked] = field(default_factory=dict)
    bad: dict[bytes, BadRecord] = field(default_factory=dict)
    """By raw key; a later record or tombstone of the key replaces it."""


def encode(state: IncidentState | None) -> bytes | None:
    return None if state is None else state.model_dump_json().encode()


def parked_key(job: Job) -> str:
    return f"{PARKED_PREFIX}{job.receiver}|{job.alert.idempotency_key}"


def parked_record(job: Job) -> bytes:
    alert = job.alert
    return orjson.dumps(
        {
            "receiver": job.receiver,
            "partition": alert.partition,
            "alert": alert.model_dump(mode="json"),
        }
    )


def load(
    client_config: Mapping[str, str | int | float | bool], topic: str, timeout_s: float = 60.0
) -> Stored:
    """Every live record of ``topic``; tombstones delete, later records win."""
    stored = Stored()
    for _, key, value in read_to_end(client_config, topic, timeout_s=timeout_s):
        stored.bad.pop(key or b"", None)
        try:
            _apply(stored, key, value)
        except _UNPARSED as exc:
            logger.warning("state record %r does not parse; set aside", (key or b"")[:200])
            stored.bad[key or b""] = BadRecord(key, value or b"", _short(exc))
    return stored


def load_state(
    client_config: Mapping[str, str | int | float | bool], topic: str, timeout_s: float = 60.0
) -> dict[str, IncidentState]:
    """The open incidents only."""
    return load(client_config, topic, timeout_s).incidents


def _apply(stored: Stored, raw_key: bytes | None, value: bytes | None) -> None:
    key = (raw_key or b"").decode()
    parked = key.startswith(PARKED_PREFIX)
    target: dict[str, object] = stored.parked if parked else stored.incidents  # type: ignore[assignment]
    if value is None:
        target.pop(key, None)
    elif parked:
        stored.parked[key] = _parked(value)
    else:
        stored.incidents[key] = IncidentState.model_validate_json(value)


def _parked(value: bytes) -> Parked:
    raw = orjson.loads(value)
    fields = {k: v for k, v in raw["alert"].items() if k in Alert.model_fields}  # newer: ignored
    alert = Alert.model_validate(fields).model_copy(update={"partition": raw["partition"]})
    return Parked(str(raw["receiver"]), alert)


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
