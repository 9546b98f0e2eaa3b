"""Exactly-once restarts: restore a window's cursor, replay from its position, get the rest.

The analyzer commits offsets no further than ``cursor.position`` of the last window it has
finished. After a crash it calls ``restore(cursor)`` and the partition replays from there::

    arrivals   f0 f1 f2 f3 f4 f5 f6 f7 f8 …        position = arrival offset
    original   ──── w0 ─── w1 ──── w2 ─── w3 …      crash after w1 is finished
    replay                  f2 f3 f4 …               from w1.cursor.position (frame 2)
    restored                           w2 ─── w3 …   same index, grid, samples, positions
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.windowing.support import FRAME_NS, SMALL, T0_NS, frame
from windowing import Frame, Window, Windower


def _arrivals(seqs: list[int], ts_shift: dict[int, int] | None = None) -> list[Frame]:
    """Frames in arrival order; position = arrival offset, as Kafka would give it."""
    shift = ts_shift or {}
    return [
        frame(seq, ts_ns=T0_NS + seq * FRAME_NS + shift.get(seq, 0), position=(0, offset))
        for offset, seq in enumerate(seqs)
    ]


def _run(windower: Windower, frames: list[Frame]) -> list[Window]:
    return [w for f in frames for w in windower.push(f, 0.0)] + windower.flush_all()


def _key(window: Window) -> tuple[object, ...]:
    return (
        window.segment_id,
        window.index,
        window.start_ns,
        window.samples.tobytes(),
        window.gap_fraction,
        window.final,
        window.positions,
    )


def _replay(frames: list[Frame], done: Window, from_start: bool = False) -> list[Window]:
    position = done.cursor.position
    first = (
        0
        if from_start or position is None
        else next(i for i, f in enumerate(frames) if f.position == position)
    )
    windower = Windower(SMALL)
    windower.restore(done.cursor, 0.0)
    return _run(windower, frames[first:])


SCENARIOS = [
    # name              arrival order of seqs                       ew-ts shifts (ns)
    ("in order", list(range(14)), {}),
    ("reordered", [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 13], {}),
    ("hole at 5", [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12], {}),
    ("segment break", list(range(14)), {s: 10**9 for s in range(7, 14)}),
    ("duplicates", [0, 1, 1, 2, 3, 2, 4, 5, 6, 7, 8, 9, 9, 10], {}),
]


def _check_every_crash_point(seqs: list[int], shift: dict[int, int], from_start: bool) -> None:
    frames = _arrivals(seqs, shift)
    original = _run(Windower(SMALL), frames)
    assert len(original) >= 3
    for done_at, done in enumerate(original):
        rest = _replay(frames, done, from_start)
        assert [_key(w) for w in rest] == [_key(w) for w in original[done_at + 1 :]], done_at


def test_scenarios_resume_after_every_window() -> None:
    for name, seqs, shift in SCENARIOS:
        for from_start in (False, True):
            try:
                _check_every_crash_point(seqs, shift, from_start)
            except AssertionError as exc:
                raise AssertionError(f"{name}, from_start={from_start}: {exc}") from exc


def test_final_cursor_skips_the_closed_segment() -> None:
    frames = _arrivals(list(range(12)), {s: 10**9 for s in range(5, 12)})
    original = _run(Windower(SMALL), frames)
    closing = next(w for w in original if w.final)
    assert closing.cursor.final and closing.cursor.seq == 5
    rest = _replay(frames, closing, from_start=True)
    assert [_key(w) for w in rest] == [_key(w) for w in original if w.segment_id != T0_NS]


def test_cursor_is_readable_per_stream() -> None:
    windower = Windower(SMALL)
    assert windower.cursor("cam") is None
    out = [w for f in _arrivals(list(range(6))) for w in windower.push(f, 0.0)]
    cursor = windower.cursor("cam")
    assert cursor == out[-1].cursor
    assert cursor is not None
    assert (cursor.segment_id, cursor.window_index, cursor.final) == (T0_NS, 1, False)
    assert (cursor.seq, cursor.in_sample, cursor.position) == (4, 640, (0, 4))


@settings(max_examples=60, deadline=None)
@given(
    jitter_order=st.lists(st.integers(0, 3), min_size=8, max_size=24),
    missing=st.sets(st.integers(1, 23), max_size=3),
    data=st.data(),
)
def test_any_crash_point_of_a_jittered_stream_resumes_exactly(
    jitter_order: list[int], missing: set[int], data: st.DataObject
) -> None:
    present = [s for s in range(len(jitter_order)) if s not in missing]
    seqs = sorted(present, key=lambda s: s + jitter_order[s])
    frames = _arrivals(seqs)
    original = _run(Windower(SMALL), frames)
    if not original:
        return
    done_at = data.draw(st.integers(0, len(original) - 1))
    rest = _replay(frames, original[done_at])
    assert [_key(w) for w in rest] == [_key(w) for w in original[done_at + 1 :]]


def test_replayed_frames_of_a_closed_segment_stay_dropped_after_a_seq_reset() -> None:
    """The producer restarted (ew-seq back to 0, ew-ts onward); replay begins before that."""
    first = [frame(s, position=(0, s)) for s in range(7)]
    second = [frame(s, ts_ns=T0_NS + (20 + s) * FRAME_NS, position=(0, 7 + s)) for s in range(7)]
    frames = first + second
    original = _run(Windower(SMALL), frames)
    closing = next(w for w in original if w.final)
    assert (closing.segment_id, closing.cursor.seq) == (T0_NS, 0)
    rest = _replay(frames, closing, from_start=True)
    assert [_key(w) for w in rest] == [_key(w) for w in original if w.segment_id != T0_NS]
