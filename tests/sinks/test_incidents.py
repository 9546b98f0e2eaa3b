"""Incident lifecycle across overlapping 30 s / 10 s windows, scenario tables."""

from __future__ import annotations

import pytest

from earwitness.events import EventKind
from sinks.alerts import AlertState
from sinks.incidents import IncidentState, IncidentTracker, incident_id
from sinks.rules import RuleSet, parse_rules
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
    incident = incident_id("gunshot", "cam-12", T0_NS, 0)
    assert [(a.idempotency_key, a.resolution, a.resolution_note) for a in alerts] == [
        (f"{incident}:resolved", "rule_removed", "the rule was removed from the rules file")
    ]
    assert other.take_changes() == {"gunshot|cam-12": None}


def test_restore_keeps_only_the_owned_partitions_incidents() -> None:
    """Replicas split the partitions; each keeps (and re-sends, resolves) only its own."""
    writer = IncidentTracker(_rules())
    for stream, partition in (("cam-a", 0), ("cam-b", 1), ("cam-c", 2)):
        writer.observe(_event(0, "M", stream), partition=partition)
    states = {k: v for k, v in writer.take_changes().items() if v is not None}
    states["gunshot|cam-c"] = states["gunshot|cam-c"].model_copy(update={"partition": None})
    owner_0, owner_1 = IncidentTracker(_rules()), IncidentTracker(_rules())
    assert owner_0.restore(states, owned={0}) == []
    assert owner_1.restore(states, owned={1}) == []
    assert sorted(a.stream_id for a in owner_0.firing()) == ["cam-a", "cam-c"]  # c: no partition
    assert [a.stream_id for a in owner_1.firing()] == ["cam-b"]


def test_firing_lists_open_incidents_for_resends() -> None:
    tracker = IncidentTracker(_rules(min_windows=2))
    _run("M", tracker)
    assert tracker.firing() == []
    _run("M", tracker, start=1)
    assert [a.state for a in tracker.firing()] == [AlertState.FIRING]


# --- stale: the stream stops sending (wall clock) -------------------------------------------

WALL0_NS = 1_800_000_000 * 10**9  # the runner's wall clock, unrelated to stream time
STEPS = {"M", "Q", S, X, E}


def _script(tracker: IncidentTracker, script: str) -> list[tuple[int, str]]:
    """Tokens ``<step>@<wall s>``: an event (next window, partition 0) received then;
    ``T@s`` a tick with partition 0 read to its end, ``B@s`` a tick while still behind.
    Returns (wall s, alert state, with ``:stale``/``:quiet`` for resolutions)."""
    out, index = [], 0
    for token in script.split():
        step, at = token.split("@")
        now_ns = WALL0_NS + int(at) * 10**9
        if step in STEPS:
            alerts, _ = tracker.observe(_event(index, step), seen_ns=now_ns, partition=0)
            index += 1
        else:
            alerts = tracker.resolve_stale(now_ns, {0} if step == "T" else set())
        for a in alerts:
            out.append((int(at), a.state.value + (f":{a.resolution}" if a.resolution else "")))
    return out


@pytest.mark.parametrize(
    ("script", "min_windows", "grace_s", "expected"),
    [
        # the stream stops after a match: resolved at resolve_after_s + grace = 330 s
        ("M@0 T@329 T@330", 1, 300.0, [(0, "firing"), (330, "resolved:stale")]),
        # any event keeps it alive, shed/error included: the clock restarts at 200
        ("M@0 X@200 T@529 T@530", 1, 300.0, [(0, "firing"), (530, "resolved:stale")]),
        ("M@0 E@100 S@150 T@479 T@480", 1, 300.0, [(0, "firing"), (480, "resolved:stale")]),
        # quiet audio resolves first (stream time); nothing is left to go stale
        ("M@0 Q@10 Q@20 Q@30 T@1000", 1, 300.0, [(0, "firing"), (30, "resolved:quiet")]),
        # behind on the partition (a backlog): never stale, however long; then at the tick
        ("M@0 B@400 B@9000 T@9001", 1, 300.0, [(0, "firing"), (9001, "resolved:stale")]),
        # a pending incident is dropped without alerts
        ("M@0 T@330 M@340 T@341", 2, 300.0, []),
        # stale_grace_s = 0: resolve_after_s of wall clock; null: never
        ("M@0 T@29 T@30", 1, 0.0, [(0, "firing"), (30, "resolved:stale")]),
        ("M@0 T@100000", 1, None, [(0, "firing")]),
        # after a stale resolution the next match opens a new incident
        (
            "M@0 T@330 M@400 T@401",
            1,
            300.0,
            [(0, "firing"), (330, "resolved:stale"), (400, "firing")],
        ),
    ],
)
def test_stale_lifecycle(
    script: str, min_windows: int, grace_s: float | None, expected: list[tuple[int, str]]
) -> None:
    tracker = IncidentTracker(_rules(min_windows), stale_grace_s=grace_s)
    assert _script(tracker, script) == expected


def test_stale_resolution_is_recorded_and_keeps_the_incident_id() -> None:
    tracker = IncidentTracker(_rules(), stale_grace_s=300.0)
    _script(tracker, "Q@0 M@5 M@15")
    tracker.take_changes()
    (resolved,) = tracker.resolve_stale(WALL0_NS + 360 * 10**9, {0})
    assert resolved.alert_id == incident_id("gunshot", "cam-12", T0_NS, 1)
    assert (resolved.state, resolved.resolution) == (AlertState.RESOLVED, "stale")
    assert resolved.resolution_note == "no audio from the stream for 345 s"
    assert resolved.ended_ns == resolved.last_match_ns == T0_NS + 50 * 10**9
    assert tracker.take_changes() == {"gunshot|cam-12": None}
    assert tracker.open_count() == {"gunshot": 0}


def test_only_partitions_read_to_their_end_go_stale() -> None:
    """A runner that does not own the stream's partition (or lags on it) never calls it silent."""
    tracker = IncidentTracker(_rules(), stale_grace_s=0.0)
    tracker.observe(_event(0, "M", "cam-1"), seen_ns=WALL0_NS, partition=0)
    tracker.observe(_event(0, "M", "cam-2"), seen_ns=WALL0_NS, partition=1)
    later = WALL0_NS + 3600 * 10**9
    assert [a.stream_id for a in tracker.resolve_stale(later, {1})] == ["cam-2"]
    assert tracker.resolve_stale(later, set()) == []
    assert [a.stream_id for a in tracker.resolve_stale(later, {0, 1})] == ["cam-1"]


def test_events_move_the_partition_and_the_last_seen_time() -> None:
    tracker = IncidentTracker(_rules(), stale_grace_s=300.0)
    tracker.observe(_event(0, "M"), seen_ns=WALL0_NS, partition=0)
    tracker.observe(_event(1, X), seen_ns=WALL0_NS + 100 * 10**9, partition=3)
    (state,) = (s for s in tracker.take_changes().values() if s is not None)
    assert (state.partition, state.last_seen_ns) == (3, WALL0_NS + 100 * 10**9)
    # an event without a new reception changes nothing to persist
    tracker.observe(_event(2, X))
    assert tracker.take_changes() == {}


def test_stale_clock_survives_a_restart() -> None:
    """The restored runner resolves at the same wall-clock moment as one that never stopped."""
    script = "M@0 M@10 Q@20"
    steady = IncidentTracker(_rules(), stale_grace_s=300.0)
    _script(steady, script)
    before = IncidentTracker(_rules(), stale_grace_s=300.0)
    _script(before, script)
    wire = {k: v.model_dump_json() for k, v in before.take_changes().items() if v is not None}

    after = IncidentTracker(_rules(), stale_grace_s=300.0)
    after.restore({k: IncidentState.model_validate_json(v) for k, v in wire.items()})
    for tracker in (steady, after):
        assert _script(tracker, "T@349") == []
    assert _script(steady, "T@350") == _script(after, "T@350") == [(350, "resolved:stale")]


def test_states_without_reception_data_are_not_swept() -> None:
    """State written before stale resolution existed has no partition: it waits for an event."""
    tracker = IncidentTracker(_rules(), stale_grace_s=0.0)
    tracker.observe(_event(0, "M"))
    assert tracker.resolve_stale(WALL0_NS + 10**15, {0}) == []


# --- evidence, and rules that fire on silence -------------------------------------------------

HEDGED = "The street is quiet.\n\nA sharp crack, likely a gunshot, echoes off the walls."


def test_alerts_and_state_carry_the_evidence_of_the_last_match() -> None:
    tracker = IncidentTracker(_rules())
    (firing,), _ = tracker.observe(caption_event(0, HEDGED))
    (evidence,) = firing.evidence
    assert evidence.sentence == "A sharp crack, likely a gunshot, echoes off the walls."
    assert (evidence.confidence, evidence.why, evidence.cues) == (
        0.7,
        "hedged",
        ("hedged: 'likely'",),
    )
    tracker.observe(caption_event(1, BANG))
    (state,) = (s for s in tracker.take_changes().values() if s is not None)
    assert [e.why for e in state.evidence] == ["affirmed"]
    assert state.evidence[0].sentence == BANG
    assert firing.alert_id == incident_id("gunshot", "cam-12", T0_NS, 0)  # ids do not move


def test_state_written_before_evidence_existed_still_restores() -> None:
    old = IncidentTracker(_rules())
    _run("M", old)
    (state,) = (s for s in old.take_changes().values() if s is not None)
    raw = state.model_dump(mode="json")
    del raw["evidence"]
    restored = IncidentState.model_validate(raw)
    assert restored.evidence == ()
    tracker = IncidentTracker(_rules())
    assert tracker.restore({restored.key: restored}) == []
    assert _run("MQQQQ", tracker, start=1) == [(4, "resolved")]


def _dead_air() -> RuleSet:
    rule = {
        "id": "dead-air",
        "streams": ["channel-*"],
        "events": ["caption", "silence"],
        "match": {"any": ["dead air"]},
        "min_windows": 2,
        "resolve_after_s": 20,
    }
    return parse_rules({"rules": [rule]})


def _broadcast(steps: str, tracker: IncidentTracker) -> list[tuple[int, str]]:
    """S = silence window, D = caption saying dead air, T = a caption of programme sound."""
    out: list[tuple[int, str]] = []
    for index, step in enumerate(steps):
        if step == S:
            event = caption_event(index, None, kind=EventKind.SILENCE, stream_id="channel-1")
        else:
            text = "Dead air: only hiss." if step == "D" else "A presenter reads the news."
            event = caption_event(index, text, stream_id="channel-1")
        out.extend((index, a.state.value) for a in tracker.observe(event)[0])
    return out


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # two silence windows fire it; programme sound for resolve_after_s resolves it
        ("TSSTTT", [(2, "firing"), (4, "resolved")]),
        # a caption that says dead air counts like a silence window
        ("TSDTTT", [(2, "firing"), (4, "resolved")]),
        # one silent window is not enough
        ("TSTTT", []),
    ],
)
def test_a_silence_rule_fires_on_silence_windows(
    steps: str, expected: list[tuple[int, str]]
) -> None:
    assert _broadcast(steps, IncidentTracker(_dead_air())) == expected


def test_silence_evidence_says_it_was_a_silence_window() -> None:
    tracker = IncidentTracker(_dead_air())
    _broadcast("S", tracker)
    (state,) = (s for s in tracker.take_changes().values() if s is not None)
    assert state.matched == ("silence",)
    (evidence,) = state.evidence
    assert evidence.why == "silence"
    assert evidence.sentence == "silence window: -30.0 dBFS RMS, below the silence gate"


def test_silence_is_still_quiet_evidence_for_sound_rules() -> None:
    tracker = IncidentTracker(_rules())
    assert _run("MMMSSS", tracker) == [(0, "firing"), (5, "resolved")]


def test_a_truncated_caption_is_evidence_and_the_alert_says_so() -> None:
    tracker = IncidentTracker(_rules())
    cut = caption_event(0, BANG).model_copy(update={"truncated": True, "finish_reason": "length"})
    (firing,), _ = tracker.observe(cut)
    assert firing.state is AlertState.FIRING and firing.caption_truncated is True
    assert firing.evidence[0].sentence == BANG
    tracker.observe(caption_event(1, BANG))  # a whole caption: the next alert is not marked
    (state,) = (s for s in tracker.take_changes().values() if s is not None)
    assert state.caption_truncated is False


def test_a_lagging_analyzer_holds_stale_resolution_and_late_captions_continue() -> None:
    """cam-1 and cam-2 share partition 0, captions arrive 5 s after their window (the
    baseline). The analyzer then falls 380 s behind: cam-1's incident is held (before: stale
    at 330 s, and cam-1's late caption re-opened it under a new id). Once the analyzer is
    punctual again and cam-1 really is silent, it resolves as stale, once, same id."""
    tracker = IncidentTracker(_rules(), stale_grace_s=300.0)
    out: list[tuple[int, str, str]] = []

    def event(stream: str, index: int, step: str, lag_s: int) -> None:
        e = _event(index, step, stream)
        seen_ns = WALL0_NS + (e.window_end_ns - T0_NS) + lag_s * 10**9
        alerts, _ = tracker.observe(e, seen_ns=seen_ns, partition=0)
        out.extend((index, a.stream_id, a.idempotency_key) for a in alerts)

    def tick(wall_s: int) -> None:
        for a in tracker.resolve_stale(WALL0_NS + wall_s * 10**9, {0}):
            out.append((wall_s, a.stream_id, f"{a.idempotency_key}:{a.resolution}"))

    event("cam-1", 0, "M", 5)  # window [0, 30) received at wall 35
    event("cam-2", 0, "Q", 5)
    event("cam-2", 1, "Q", 385)  # window [10, 40) received at wall 425: 380 s behind
    tick(430)  # cam-1 silent 395 s of wall clock; held: the analyzer is behind
    assert tracker.behind(0)
    event("cam-1", 1, "M", 390)  # cam-1's late caption: the same incident goes on
    for index in range(2, 45):  # the analyzer catches up: punctual again by window 44
        event("cam-2", index, "Q", max(5, 390 - 10 * index))
    assert not tracker.behind(0)
    tick(800)  # cam-1 silent since wall 430 (370 s): stale now
    incident = incident_id("gunshot", "cam-1", T0_NS, 0)
    assert out == [
        (0, "cam-1", f"{incident}:firing"),
        (800, "cam-1", f"{incident}:resolved:stale"),
    ]
