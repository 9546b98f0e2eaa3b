"""Incident lifecycle across overlapping 30 s / 10 s windows, scenario tables."""

from __future__ import annotations

import pytest

from sinks.alerts import AlertState
from sinks.incidents import IncidentState, IncidentTracker, incident_id
from sinks.rules import RuleSet, parse_rules
from stream.events import EventKind
from tests.sinks.sinkutil import T0_NS, caption_event

BANG = "A loud gunshot echoes through the parking garage, followed by hurried footsteps."
CALM = "Rain falls steadily on a car roof; no gunshots or voices are heard."
S, Q, X, E = "S", "Q", "X", "E"  # silence, quiet caption, shed, error


def _rules(min_windows: int = 1, resolve_after_s: float = 30.0) -> RuleSet:
    rule = {
        "id": "gunshot",
        "severity": "critical",
        "match": {"any": ["gunshot"]},
        "min_windows": min_windows,
        "resolve_after_s": resolve_after_s,
    }
    return parse_rules({"rules": [rule]})


def _event(index: int, step: str, stream_id: str = "cam-12"):  # type: ignore[no-untyped-def]
    kinds = {S: EventKind.SILENCE, X: EventKind.SHED, E: EventKind.ERROR}
    if step in kinds:
        return caption_event(index, None, kind=kinds[step], stream_id=stream_id)
    return caption_event(index, BANG if step == "M" else CALM, stream_id=stream_id)


def _run(steps: str, tracker: IncidentTracker, start: int = 0) -> list[tuple[int, str]]:
    """Feed windows (M = match, Q = quiet caption, S/X/E); return (window, alert state)."""
    out = []
    for offset, step in enumerate(steps):
        alerts, _ = tracker.observe(_event(start + offset, step))
        out.extend((start + offset, a.state.value) for a in alerts)
    return out


@pytest.mark.parametrize(
    ("steps", "min_windows", "expected"),
    [
        # three overlapping matching windows, then quiet: one firing, one resolved
        ("MMMQQQQ", 1, [(0, "firing"), (5, "resolved")]),
        # resolve_after_s counts from the last matching window's end: 50 s → 80 s
        ("MMMQQ", 1, [(0, "firing")]),
        # silence is quiet evidence too
        ("MMMSSS", 1, [(0, "firing"), (5, "resolved")]),
        # shed / error windows tell nothing: the next real window decides
        ("MMMXXXQ", 1, [(0, "firing"), (6, "resolved")]),
        ("MMMEEEE", 1, [(0, "firing")]),
        # a gap shorter than resolve_after_s keeps the same incident
        ("MMQQMMQQQ", 1, [(0, "firing"), (8, "resolved")]),
        # min_windows: needs two matches before the gap; one stray match never fires
        ("MQQQQMMQQQ", 2, [(6, "firing"), (9, "resolved")]),
        ("MQQQMQQQ", 2, []),
    ],
)
def test_lifecycle(steps: str, min_windows: int, expected: list[tuple[int, str]]) -> None:
    assert _run(steps, IncidentTracker(_rules(min_windows))) == expected


def test_one_incident_one_firing_one_resolved_with_stable_ids() -> None:
    tracker = IncidentTracker(_rules())
    alerts = []
    for index, step in enumerate("QMMMQQQQ"):
        alerts.extend(tracker.observe(_event(index, step))[0])
    firing, resolved = alerts
    assert (firing.state, resolved.state) == (AlertState.FIRING, AlertState.RESOLVED)
    assert firing.alert_id == resolved.alert_id == incident_id("gunshot", "cam-12", T0_NS, 1)
    assert firing.idempotency_key != resolved.idempotency_key
    assert firing.started_ns == T0_NS + 10 * 10**9
    assert resolved.last_match_ns == T0_NS + 60 * 10**9
    assert resolved.ended_ns == T0_NS + 90 * 10**9
    assert resolved.windows == 3
    assert firing.matched == ("gunshot",)


def test_streams_are_independent() -> None:
    tracker = IncidentTracker(_rules())
    a = tracker.observe(_event(0, "M", "cam-1"))[0]
    b = tracker.observe(_event(0, "M", "cam-2"))[0]
    assert a[0].alert_id != b[0].alert_id
    assert tracker.open_count() == {"gunshot": 2}


def test_state_round_trip_continues_the_incident() -> None:
    first = IncidentTracker(_rules())
    _run("MM", first)
    changes = first.take_changes()
    assert list(changes) == ["gunshot|cam-12"]
    wire = {k: v.model_dump_json() for k, v in changes.items() if v is not None}

    second = IncidentTracker(_rules())
    assert second.restore({k: IncidentState.model_validate_json(v) for k, v in wire.items()}) == []
    assert _run("MQQQQ", second, start=2) == [(5, "resolved")]
    assert second.take_changes() == {"gunshot|cam-12": None}


def test_replay_yields_identical_alerts() -> None:
    steps = "QMMXMQQQQMQQQ"
    one, two = IncidentTracker(_rules()), IncidentTracker(_rules())
    first = [a for i, s in enumerate(steps) for a in one.observe(_event(i, s))[0]]
    again = [a for i, s in enumerate(steps) for a in two.observe(_event(i, s))[0]]
    assert first == again
    incident_1 = incident_id("gunshot", "cam-12", T0_NS, 1)
    incident_9 = incident_id("gunshot", "cam-12", T0_NS, 9)
    assert [a.idempotency_key for a in again] == [
        f"{incident_1}:firing",
        f"{incident_1}:resolved",
        f"{incident_9}:firing",
        f"{incident_9}:resolved",
    ]


def test_restore_resolves_incidents_of_removed_rules() -> None:
    old = IncidentTracker(_rules())
    _run("M", old)
    state = old.take_changes()
    other = IncidentTracker(parse_rules({"rules": [{"id": "x", "match": {"any": ["y"]}}]}))
    alerts = other.restore({k: v for k, v in state.items() if v is not None})
    assert [a.state for a in alerts] == [AlertState.RESOLVED]
    assert other.take_changes() == {"gunshot|cam-12": None}


def test_firing_lists_open_incidents_for_resends() -> None:
    tracker = IncidentTracker(_rules(min_windows=2))
    _run("M", tracker)
    assert tracker.firing() == []
    _run("M", tracker, start=1)
    assert [a.state for a in tracker.firing()] == [AlertState.FIRING]
