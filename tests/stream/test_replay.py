"""Exactly once at EVERY crash point, by simulation: no broker, no engine, the real bookkeeping.

The analyzer's commit rule is pure: a checkpoint writes the published cursors to the changelog
and commits, per partition, the lowest offset that the windower or any unpublished window still
needs (``stream/state.py``: offsets, pending windows, cursors). This test runs that
rule over every prefix of a partition (one checkpoint after every record), "crashes" there,
replays the rest from the committed offset with the changelog's cursors restored, and checks
that the events published before the crash plus those after are exactly the crash-free run's::

    offsets   0 1 2 3 4 5 6 7 8 9 ...            (several streams interleaved on one partition)
    crash-free run            → events E
    crash after checkpoint k  → events published ≤ k  +  replay from commit_k  ==  E, each once

The engine is a delay line: a window is finished ``delay`` records after it was emitted, so
unpublished windows hold the commit back as they do in the analyzer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.changelog import Restored
from stream.config import AnalyzerSettings
from stream.state import AnalyzerState
from windowing import Frame, WindowSettings, decode_frame, encode_frame
from windowing.window import Cursor, Window

T0_NS = 1_700_000_000_000_000_000
FRAME_N = 160  # 10 ms
SETTINGS = WindowSettings(
    window_s=0.08,  # 8 frames: as in production, far longer than max_gap_s
    hop_s=0.02,  # 2 frames
    min_window_s=0.01,
    jitter_frames=2,
    max_gap_s=0.02,  # 2 frames
    max_ts_drift_ms=2.0,
)


@dataclass
class State:
    """What survives a crash: the changelog and the committed offset."""

    committed: int
    changelog: dict[str, Cursor]
    events: list[tuple[str, int, int]]


@dataclass
class Run:
    """The analyzer's bookkeeping (:class:`AnalyzerState`) for one partition, checkpointing
    after every record; the publication step is the analyzer's own (finish → cursor)."""

    delay: int
    settings: WindowSettings = SETTINGS
    state: AnalyzerState = field(init=False)
    engine: deque[tuple[int, tuple[str, int, int]]] = field(default_factory=deque)
    changelog: dict[str, Cursor] = field(default_factory=dict)
    events: list[tuple[str, int, int]] = field(default_factory=list)
    committed: int = 0

    def __post_init__(self) -> None:
        self.state = AnalyzerState(AnalyzerSettings(windowing=self.settings))

    def restore(self, state: State) -> None:
        self.changelog = dict(state.changelog)
        self.committed = state.committed
        restored = Restored(dict(state.changelog), dict.fromkeys(state.changelog, 0))
        self.route(self.state.restored(restored, [0], 0.0), 0)

    def feed(self, frames: list[Frame], start: int) -> list[State]:
        states = []
        for offset in range(start, len(frames)):
            frame = frames[offset]
            self.state.offsets.consumed(0, offset)
            self.state.seen(frame.stream_id, 0, offset, frame.ts_ns, float(offset))
            self.route(self.state.windower.push(frame, float(offset)), offset)
            self.engine_step(offset)
            states.append(self.checkpoint())
        self.route(self.state.windower.flush_all(), len(frames))
        self.engine_step(len(frames) + self.delay)
        states.append(self.checkpoint())
        return states

    def route(self, windows: list[Window], now: int) -> None:
        for window in windows:
            entry = self.state.pending.add(window, 0)
            if window.marker or window.silent:
                self.publish(entry.key)
            else:
                self.engine.append((now + self.delay, entry.key))

    def engine_step(self, now: int) -> None:
        while self.engine and self.engine[0][0] <= now:
            self.publish(self.engine.popleft()[1])

    def publish(self, key: tuple[str, int, int]) -> None:
        for entry in self.state.pending.finish(key):
            if not entry.window.marker:
                self.events.append(entry.key)
            self.state.cursors.on_published(entry.window.cursor)

    def checkpoint(self) -> State:
        offsets = self.state.committable()
        for cursor, _ in self.state.cursors.changed():
            self.changelog[cursor.stream_id] = cursor
        for stream_id, _ in self.state.cursors.tombstones():
            self.changelog.pop(stream_id, None)
        self.state.checkpointed(offsets)
        self.committed = offsets.get(0, self.committed)
        return State(self.committed, dict(self.changelog), list(self.events))


def frames_of(streams: dict[str, tuple[int, int | None]], order: list[str]) -> list[Frame]:
    """Interleave streams' frames in ``order`` (stream ids); (frames, eos after n or None)."""
    sent = dict.fromkeys(streams, 0)
    out = []
    for stream_id in order:
        total, eos_at = streams[stream_id]
        seq = sent[stream_id]
        if seq >= total:
            continue
        sent[stream_id] += 1
        pcm = (np.arange(FRAME_N) % 500 + 100 + seq).astype("<i2").tobytes()
        key, value, headers = encode_frame(
            stream_id,
            seq,
            T0_NS + seq * 10_000_000,
            16_000,
            1,
            "s16le",
            pcm,
            eos=eos_at is not None and seq + 1 == eos_at,
        )
        out.append(decode_frame(key, value, headers, (0, len(out))))
    return out


def assert_exactly_once_at_every_crash_point(
    frames: list[Frame], delay: int, config: WindowSettings = SETTINGS
) -> None:
    crash_free = Run(delay, config)
    states = crash_free.feed(frames, 0)
    expected = crash_free.events
    assert len(expected) == len(set(expected))
    for point, state in enumerate(states):
        replay = Run(delay, config)
        replay.restore(state)
        replay.feed(frames, state.committed)
        got = state.events + replay.events
        assert sorted(got) == sorted(expected), f"crash after record {point}"


def test_a_stream_ending_on_a_window_boundary_while_another_holds_the_commit() -> None:
    """The case the issue found: A's audio ends exactly on its window's end (eos), B's window
    sits in the engine and holds the commit inside A's old frames. Without the marker a replay
    from there re-opened A's closed segment and invented an extra final window."""
    streams = {"a": (8, 8), "b": (24, None)}
    order = ["b", "b"] + ["a", "b"] * 8 + ["b"] * 16
    assert_exactly_once_at_every_crash_point(frames_of(streams, order), delay=10)


def test_a_short_tail_dropped_on_close_is_never_invented_by_a_replay() -> None:
    streams = {"a": (9, 9), "b": (24, None)}  # a: one full window, then a 1-frame tail
    order = ["b"] + ["a", "b"] * 9 + ["b"] * 16
    short = SETTINGS.model_copy(update={"min_window_s": 0.02})
    assert_exactly_once_at_every_crash_point(frames_of(streams, order), delay=10, config=short)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 20), min_size=2, max_size=3),
    eos=st.lists(st.booleans(), min_size=3, max_size=3),
    picks=st.lists(st.integers(0, 2), min_size=10, max_size=60),
    delay=st.integers(0, 12),
)
def test_any_interleaving_is_exactly_once_at_every_crash_point(
    lengths: list[int], eos: list[bool], picks: list[int], delay: int
) -> None:
    names = [f"s{i}" for i in range(len(lengths))]
    streams = {n: (k, k if e else None) for n, k, e in zip(names, lengths, eos, strict=False)}
    order = [names[p % len(names)] for p in picks] + [n for n in names for _ in range(20)]
    assert_exactly_once_at_every_crash_point(frames_of(streams, order), delay)
