"""Incidents: one per rule + stream, opened and resolved across overlapping windows.

Windows overlap (30 s windows, 10 s hop), so one bang shows up in three captions. The tracker
turns those into one incident, in stream time (``window_end_ns``), never wall time::

    stream time (s)    0    10   20   30   40   50   60   70   80   90
    window 0  [0,30)   |=========match=|
    window 1 [10,40)        |=========match=|
    window 2 [20,50)             |=========match=|        last_match_end = 50
    window 3 [30,60)                  |======quiet====|   60 - 50 < 30: still firing
    window 4 [40,70)                       |======quiet====|
    window 5 [50,80)                            |======quiet====|  80 - 50 >= 30: resolved
                        ^ firing (window 0, min_windows=1)        ^ resolved

* **match** (a caption the rule matches, or a ``silence`` window for a rule whose ``events``
  list ``silence``, e.g. dead air): opens a *pending* incident, or updates it; the incident
  *fires* once ``min_windows`` matching windows were seen. The incident keeps the last match's
  evidence (sentence, confidence, why) and every alert carries it.
* **quiet** (a caption it does not match, or a ``silence`` window for any other rule: quiet
  audio is evidence the sound is not happening; for a silence rule, any caption is): once
  ``window_end_ns - last_match_end_ns >= resolve_after_s``, a firing incident resolves and a
  pending one is dropped silently.
* **unknown** (``shed`` and ``error`` windows, or a caption with no text): no evidence either
  way; neither counts toward ``min_windows`` nor resolves. The next real window decides, and
  the gap they covered counts as non-matching time.
* **stale** (no event at all): stream time stops when a stream stops sending, so the rules
  above never resolve. :meth:`IncidentTracker.resolve_stale`, called on the runner's tick,
  resolves an incident whose stream sent no event of any kind for ``resolve_after_s +
  stale_grace_s`` of **wall clock** (``last_seen_ns``: when the runner received the stream's
  last event), with ``resolution=stale``; a pending one is dropped. Only incidents on
  partitions the caller has read to their end count (``caught_up``): a runner working through
  a backlog, or one that does not own the stream's partition, must not call a live stream
  silent. Nor while the analyzer is behind on the partition (:meth:`IncidentTracker.behind`:
  its latest caption arrived ``stale_grace_s`` later after its window than the most punctual
  one there), so a backlog's gap is not taken for a stopped stream and late captions do not
  re-open a live incident under a new id. This is the one wall-clock rule, so a replay may
  resolve differently.

::

    wall clock      t0 (last event of cam-12)      t0 + resolve_after_s + stale_grace_s
                    |-- no event from cam-12 ------------------|
                                                               ^ tick: resolved (stale)

The incident id is the UUIDv5 of rule id, stream id and the first matching window's
(segment id, window index), so replaying the same captions yields the same ids. State is a
plain frozen model per (rule, stream) (``sinks/incident_state.py``);
:meth:`IncidentTracker.take_changes` hands out what changed (``None`` = deleted) for the
compacted state topic.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from dataclasses import dataclass

from earwitness.events import CaptionEvent, EventKind
from sinks.alerts import Alert, AlertState, Resolution
from sinks.incident_state import IncidentState, Status, incident_id, state_key
from sinks.prose.evidence import Evidence, Why
from sinks.rules import Rule, RuleSet

logger = logging.getLogger(__name__)

_NS_PER_S = 1_000_000_000


class IncidentTracker:
    """Rule + stream incidents. Single-threaded: owned by the runner's poll loop."""

    def __init__(self, rules: RuleSet, stale_grace_s: float | None = None) -> None:
        self._rules = rules
        self._stale_grace_s = stale_grace_s
        self._states: dict[str, IncidentState] = {}
        self._changes: dict[str, IncidentState | None] = {}
        # per captions partition: (smallest, latest) reception lag = seen_ns - window_end_ns
        self._lag_ns: dict[int, tuple[int, int]] = {}

    def observe(
        self, event: CaptionEvent, *, seen_ns: int | None = None, partition: int | None = None
    ) -> tuple[list[Alert], list[str]]:
        """Feed one caption event; returns (alerts to send, ids of rules it matched).

        ``seen_ns`` (wall clock, Unix ns) and ``partition`` say when and where the event was
        received; they keep incidents of a live stream from going stale (None: not tracked).
        """
        alerts: list[Alert] = []
        matched_rules: list[str] = []
        if seen_ns is not None and partition is not None:
            self._note_lag(partition, seen_ns - event.window_end_ns)
        outcomes = _outcomes(self._rules, event)
        for rule in self._rules.for_stream(event.stream_id):
            key = state_key(rule.id, event.stream_id)
            if (state := self._states.get(key)) is not None:
                self._put_if_changed(key, state, _seen(state, seen_ns, partition))
            if outcomes is None:
                continue
            outcome = outcomes.get(rule.id, _QUIET)
            if outcome.matched:
                matched_rules.append(rule.id)
                alerts.extend(self._on_match(rule, event, outcome, seen_ns, partition))
            else:
                alerts.extend(self._on_quiet(rule, event))
        return alerts, matched_rules

    def resolve_stale(self, now_ns: int, caught_up: Container[int]) -> list[Alert]:
        """Resolve incidents whose stream sent nothing for ``resolve_after_s + stale_grace_s``.

        ``now_ns`` is the wall clock (Unix ns); only incidents whose stream's partition is in
        ``caught_up`` (owned and read to its end) are considered. Firing incidents resolve
        with ``resolution=stale``; pending ones are dropped.
        """
        alerts = []
        for key, state in list(self._states.items()):
            silent_ns = self._silent_ns(state, now_ns, caught_up)
            if silent_ns is None:
                continue
            self._put(key, None)
            logger.info(
                "%s: no event from its stream for %d s; resolved", key, silent_ns // _NS_PER_S
            )
            if state.status is Status.FIRING:
                alerts.append(_stale_resolved(self._rules.by_id[state.rule_id], state, silent_ns))
        return alerts

    def _silent_ns(
        self, state: IncidentState, now_ns: int, caught_up: Container[int]
    ) -> int | None:
        """How long the stream has been silent, if that makes the incident stale."""
        if self._stale_grace_s is None or state.last_seen_ns is None:
            return None
        if state.partition not in caught_up or self.behind(state.partition):
            return None
        silent_ns = now_ns - state.last_seen_ns
        rule = self._rules.by_id[state.rule_id]
        if silent_ns < (rule.resolve_after_s + self._stale_grace_s) * _NS_PER_S:
            return None
        return silent_ns

    def behind(self, partition: int | None) -> bool:
        """The analyzer is behind on ``partition``: its latest caption came ``stale_grace_s``
        later (after its window closed) than the most punctual one seen there. Stale
        resolution waits then: a stream's silence is the analyzer's backlog, not the stream."""
        if partition is None or self._stale_grace_s is None or partition not in self._lag_ns:
            return False
        least_ns, latest_ns = self._lag_ns[partition]
        return latest_ns - least_ns > self._stale_grace_s * _NS_PER_S

    def _note_lag(self, partition: int, lag_ns: int) -> None:
        least_ns, _ = self._lag_ns.get(partition, (lag_ns, lag_ns))
        self._lag_ns[partition] = (min(least_ns, lag_ns), lag_ns)

    def firing(self) -> list[Alert]:
        """A ``firing`` alert for every open incident (for periodic re-sends)."""
        return [
            _alert(self._rules.by_id[s.rule_id], s, AlertState.FIRING)
            for s in self._states.values()
            if s.status is Status.FIRING
        ]

    def open_count(self) -> dict[str, int]:
        counts = {rule.id: 0 for rule in self._rules.rules}
        for state in self._states.values():
            if state.status is Status.FIRING:
                counts[state.rule_id] += 1
        return counts

    def take_changes(self) -> dict[str, IncidentState | None]:
        changes, self._changes = self._changes, {}
        return changes

    def restore(
        self, states: dict[str, IncidentState], owned: Container[int] | None = None
    ) -> list[Alert]:
        """Replace all state; firing incidents of rules no longer in the file resolve now.

        With ``owned`` (the captions partitions this runner holds), only the incidents of
        those partitions are kept: every replica reads the whole state topic, and one that
        kept another's incidents would re-send (re-open) them after their owner resolved them.
        A state written before partitions were recorded (``partition`` None) belongs to
        whoever holds partition 0.
        """
        self._states, self._changes = {}, {}
        alerts: list[Alert] = []
        for key, state in states.items():
            if owned is not None and (state.partition or 0) not in owned:
                continue
            rule = self._rules.by_id.get(state.rule_id)
            if rule is not None:
                self._states[key] = state
                continue
            logger.warning("rule %s is gone; dropping its incident %s", state.rule_id, key)
            self._changes[key] = None
            if state.status is Status.FIRING:
                alerts.append(_orphan_resolved(state))
        return alerts

    def _on_match(
        self,
        rule: Rule,
        event: CaptionEvent,
        outcome: Outcome,
        seen_ns: int | None,
        partition: int | None,
    ) -> list[Alert]:
        key = state_key(rule.id, event.stream_id)
        state = self._states.get(key)
        if state is None:
            state = _opened(rule, event, outcome, seen_ns, partition)
        else:
            state = state.model_copy(
                update={
                    "last_match_ns": max(state.last_match_ns, event.window_end_ns),
                    "windows": state.windows + 1,
                    "matched": outcome.matched,
                    "caption": event.caption or "",
                    "evidence": outcome.evidence,
                    "caption_truncated": event.truncated is True,
                    "last_event_id": event.event_id,
                }
            )
        alerts = []
        if state.status is Status.PENDING and state.windows >= rule.min_windows:
            state = state.model_copy(update={"status": Status.FIRING})
            alerts.append(_alert(rule, state, AlertState.FIRING))
        self._put(key, state)
        return alerts

    def _on_quiet(self, rule: Rule, event: CaptionEvent) -> list[Alert]:
        key = state_key(rule.id, event.stream_id)
        state = self._states.get(key)
        if state is None:
            return []
        quiet_ns = event.window_end_ns - state.last_match_ns
        if quiet_ns < rule.resolve_after_s * _NS_PER_S:
            return []
        self._put(key, None)
        if state.status is Status.PENDING:
            return []
        end_ns = event.window_end_ns
        return [_alert(rule, state, AlertState.RESOLVED, end_ns, resolution=Resolution.QUIET)]

    def _put_if_changed(self, key: str, old: IncidentState, new: IncidentState) -> None:
        if new is not old:
            self._put(key, new)

    def _put(self, key: str, state: IncidentState | None) -> None:
        if state is None:
            self._states.pop(key, None)
        else:
            self._states[key] = state
        self._changes[key] = state


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one window says for one rule: matched phrases (none: quiet) and their evidence."""

    matched: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()


_QUIET = Outcome()


def _outcomes(rules: RuleSet, event: CaptionEvent) -> dict[str, Outcome] | None:
    """Per rule id, what the event says; None when the window tells nothing (shed, error,
    no text). Rules missing from the dict are quiet."""
    if event.kind is EventKind.SILENCE:
        silent = _silence_outcome(event)
        return {rule.id: silent for rule in rules.for_stream(event.stream_id) if rule.on_silence}
    if event.kind is not EventKind.CAPTION or not event.caption:
        return None
    decisions = rules.decide(event.caption, event.stream_id)
    return {
        rule_id: Outcome(decision.matched, decision.evidence)
        for rule_id, decision in decisions.items()
        if decision.fired
    }


def _silence_outcome(event: CaptionEvent) -> Outcome:
    sentence = f"silence window: {event.audio.rms_dbfs:.1f} dBFS RMS, below the silence gate"
    evidence = Evidence(phrase="silence", sentence=sentence, confidence=1.0, why=Why.SILENCE)
    return Outcome(("silence",), (evidence,))


def _seen(state: IncidentState, seen_ns: int | None, partition: int | None) -> IncidentState:
    """The state with the stream's last reception recorded (the same object if nothing moved)."""
    update: dict[str, int] = {}
    if seen_ns is not None and (state.last_seen_ns is None or seen_ns > state.last_seen_ns):
        update["last_seen_ns"] = seen_ns
    if partition is not None and partition != state.partition:
        update["partition"] = partition
    return state.model_copy(update=update) if update else state


def _opened(
    rule: Rule,
    event: CaptionEvent,
    outcome: Outcome,
    seen_ns: int | None,
    partition: int | None,
) -> IncidentState:
    return IncidentState(
        rule_id=rule.id,
        stream_id=event.stream_id,
        incident_id=incident_id(rule.id, event.stream_id, event.segment_id, event.window_index),
        status=Status.PENDING,
        started_ns=event.window_start_ns,
        last_match_ns=event.window_end_ns,
        windows=1,
        matched=outcome.matched,
        caption=event.caption or "",
        evidence=outcome.evidence,
        caption_truncated=event.truncated is True,
        first_segment_id=event.segment_id,
        first_window_index=event.window_index,
        last_event_id=event.event_id,
        partition=partition,
        last_seen_ns=seen_ns,
    )


def _alert(
    rule: Rule,
    state: IncidentState,
    alert_state: AlertState,
    ended_ns: int | None = None,
    *,
    resolution: Resolution | None = None,
    note: str | None = None,
) -> Alert:
    return Alert(
        alert_id=state.incident_id,
        state=alert_state,
        rule_id=rule.id,
        description=rule.description,
        severity=rule.severity,
        stream_id=state.stream_id,
        labels=rule.labels,
        started_ns=state.started_ns,
        last_match_ns=state.last_match_ns,
        ended_ns=ended_ns,
        windows=state.windows,
        matched=state.matched,
        caption=state.caption,
        evidence=state.evidence,
        caption_truncated=state.caption_truncated,
        first_segment_id=state.first_segment_id,
        first_window_index=state.first_window_index,
        last_event_id=state.last_event_id,
        resolution=resolution,
        resolution_note=note,
        partition=state.partition,
    )


def _stale_resolved(rule: Rule, state: IncidentState, silent_ns: int) -> Alert:
    """Resolved for silence: ``ended_ns`` is the end of the last matching window."""
    return _alert(
        rule,
        state,
        AlertState.RESOLVED,
        ended_ns=state.last_match_ns,
        resolution=Resolution.STALE,
        note=f"no audio from the stream for {silent_ns // _NS_PER_S} s",
    )


def _orphan_resolved(state: IncidentState) -> Alert:
    orphan = Rule.model_validate(
        {"id": state.rule_id, "description": "rule removed", "events": ["silence"]}
    )
    return _alert(
        orphan,
        state,
        AlertState.RESOLVED,
        ended_ns=state.last_match_ns,
        resolution=Resolution.RULE_REMOVED,
        note="the rule was removed from the rules file",
    )
