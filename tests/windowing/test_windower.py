"""Windower behaviour as scenario tables. Settings: ``SMALL`` (support.py)::

frames of 160 samples (10 ms); window W = 640 (4 frames); hop H = 320 (2 frames)

sample  0    160  320  480  640  800  960
frame   |─0──|─1──|─2──|─3──|─4──|─5──|
w0      ├───────────────────┤                 out when frame 3 is in
w1                ├───────────────────┤       out when frame 5 is in
tail                        ├─────────…       final, on flush/idle/eos, if it holds new audio
marker                                        final, no samples, when it holds none (or too
                                              little): only the final cursor, so the close is
                                              published and a replay rebuilds the same windows
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.windowing.support import (
    FRAME_N,
    FRAME_NS,
    SMALL,
    T0_NS,
    expected_samples,
    frame,
    run,
    shape,
    tone,
)
from windowing import Windower, WindowSettings
from windowing.segment import RING_SLACK_SAMPLES

GRID = [
    # frames  windows: (index, start sample, samples, final)
    (1, [(0, 0, 160, True)]),
    (3, [(0, 0, 480, True)]),
    (4, [(0, 0, 640, False), (1, 640, 0, True)]),  # no new audio after w0: a marker closes
    #                                                the segment (final cursor, no samples)
    (5, [(0, 0, 640, False), (1, 320, 480, True)]),
    (6, [(0, 0, 640, False), (1, 320, 640, False), (2, 960, 0, True)]),
    (7, [(0, 0, 640, False), (1, 320, 640, False), (2, 640, 480, True)]),
]


@pytest.mark.parametrize(("n_frames", "windows"), GRID)
def test_grid(n_frames: int, windows: list[tuple[int, int, int, bool]]) -> None:
    out = run([frame(seq) for seq in range(n_frames)])
    assert shape(out) == windows
    for window in out:
        start = (window.start_ns - T0_NS) // 62_500
        whole = expected_samples(range(n_frames))
        np.testing.assert_array_equal(window.samples, whole[start : start + len(window.samples)])
        assert window.end_ns - window.start_ns == len(window.samples) * 62_500
        assert window.segment_id == T0_NS and window.gap_fraction == 0.0


def test_window_comes_out_with_the_frame_that_completes_it() -> None:
    windower = Windower(SMALL)
    emitted = [len(windower.push(frame(seq), 0.0)) for seq in range(8)]
    assert emitted == [0, 0, 0, 1, 0, 1, 0, 1]


def _ts(seq: int, shift_ms: float = 0.0) -> int:
    return T0_NS + seq * FRAME_NS + round(shift_ms * 1e6)


# Holes and segment breaks. Each row: frames as (seq, ts shift ms, rate), then the windows
# (segment id as ms after T0, index, samples, final, gap fraction) and counters.
#
#   hole      0 1 _ 3 4 5 6      seq 2 never comes: given up at 6 (2 + jitter 4), filled
#   ts hole   0 1 2 3 4 5        seq contiguous, ew-ts of 3.. is 10 ms late: 160 samples filled
#   big hole  0 1 2 │ 9 10 11    ew-ts jumps 60 ms > max_gap 50 ms: new segment at 9
#   back      0 1 2 3 │ 4 5      ew-ts of 4.. goes back 20 ms: new segment
#   drift     0 1 2 3 4 5        each ew-ts ±1 ms off (< 2 ms): absorbed, no gap
#   format    0 1 2 │ 3 4        rate 8 kHz from 3: new segment
BREAKS = [
    (
        "hole",
        [(s, 0, 16_000) for s in (0, 1, 3, 4, 5, 6)],
        [(0, 0, 640, False, 0.25), (0, 1, 640, False, 0.25), (0, 2, 480, True, 0.0)],
        {"frames_missing": 1, "gaps_filled": 1, "gap_samples": 160},
    ),
    (
        "ts hole",
        [(s, 10 if s >= 3 else 0, 16_000) for s in range(6)],
        [(0, 0, 640, False, 0.25), (0, 1, 640, False, 0.25), (0, 2, 480, True, 0.0)],
        {"frames_missing": 0, "gaps_filled": 1, "gap_samples": 160},
    ),
    (
        "big hole",
        [(s, 0, 16_000) for s in (0, 1, 2, 9, 10, 11)],
        [(0, 0, 480, True, 0.0), (90, 0, 480, True, 0.0)],
        {"segments_started": 2, "gaps_filled": 0},
    ),
    (
        "back",
        [(s, -20 if s >= 4 else 0, 16_000) for s in range(6)],
        [(0, 0, 640, False, 0.0), (0, 1, 0, True, 0.0), (20, 0, 320, True, 0.0)],
        {"segments_started": 2, "empty_tails": 1},
    ),
    (
        "drift",
        [(s, (-1) ** s, 16_000) for s in range(6)],
        [(1, 0, 640, False, 0.0), (1, 1, 640, False, 0.0), (1, 2, 0, True, 0.0)],
        {"segments_started": 1, "gaps_filled": 0, "empty_tails": 1},
    ),
    (
        "format",
        [(s, 0, 16_000 if s < 3 else 8_000) for s in range(5)],
        [(0, 0, 480, True, 0.0), (30, 0, 320, True, 0.0)],
        {"segments_started": 2},
    ),
]


@pytest.mark.parametrize(("name", "frames", "windows", "counters"), BREAKS)
def test_holes_and_segment_breaks(
    name: str,
    frames: list[tuple[int, float, int]],
    windows: list[tuple[int, int, int, bool, float]],
    counters: dict[str, int],
) -> None:
    windower = Windower(SMALL)
    out = []
    for seq, shift_ms, rate in frames:
        n = FRAME_N * rate // 16_000
        out += windower.push(frame(seq, ts_ns=_ts(seq, shift_ms), rate=rate, n=n), 0.0)
    out += windower.flush_all()
    got = [
        (
            (w.segment_id - T0_NS) // 1_000_000,
            w.index,
            len(w.samples),
            w.final,
            round(w.gap_fraction, 3),
        )
        for w in out
    ]
    assert got == windows, name
    for counter, value in counters.items():
        assert getattr(windower.stats, counter) == value, (name, counter)


def test_hole_is_silence_and_the_rest_stays_in_place() -> None:
    out = run([frame(s) for s in (0, 1, 3, 4, 5, 6)])
    expected = expected_samples(range(7))
    expected[320:480] = 0.0
    np.testing.assert_array_equal(out[0].samples, expected[:640])
    np.testing.assert_array_equal(out[1].samples, expected[320:960])


def test_late_frame_is_counted_and_never_reordered_into_emitted_audio() -> None:
    windower = Windower(SMALL)
    out = []
    for seq in (0, 1, 3, 4, 5, 6, 2, 7):  # 2 is given up when 6 arrives, then comes late
        out += windower.push(frame(seq), 0.0)
    assert windower.stats.late == 1
    assert out[0].gap_fraction == 0.25
    assert np.all(out[0].samples[320:480] == 0.0)


def test_seq_reset_starts_a_segment() -> None:
    windower = Windower(SMALL)
    frames = [frame(s) for s in range(5)] + [frame(s, ts_ns=_ts(20 + s)) for s in range(3)]
    out = [w for f in frames for w in windower.push(f, 0.0)] + windower.flush_all()
    assert [(w.segment_id, w.index, w.final) for w in out] == [
        (T0_NS, 0, False),
        (T0_NS, 1, True),
        (_ts(20), 0, True),
    ]
    assert (windower.stats.seq_resets, windower.stats.segments_started) == (1, 2)


def test_exact_duplicates_are_dropped() -> None:
    frames = [frame(s) for s in range(7)]
    windower = Windower(SMALL)
    doubled = [w for f in frames for _ in range(2) for w in windower.push(f, 0.0)]
    assert shape(doubled) == shape(run(frames, flush=False))
    assert windower.stats.duplicates == 7


def test_eos_flushes_at_once() -> None:
    windower = Windower(SMALL)
    for seq in range(4):
        windower.push(frame(seq), 0.0)
    out = windower.push(frame(4, eos=True), 0.0)
    assert shape(out) == [(1, 320, 480, True)]
    assert out[0].cursor.final and out[0].cursor.seq == 5
    assert windower.push(frame(5, pcm=b"", eos=True), 0.0) == []  # nothing new to flush


def test_empty_eos_frame_after_a_full_window_closes_with_a_marker() -> None:
    windower = Windower(SMALL)
    out = [w for seq in range(4) for w in windower.push(frame(seq), 0.0)]
    out += windower.push(frame(4, pcm=b"", eos=True), 0.0)
    assert shape(out) == [(0, 0, 640, False), (1, 640, 0, True)]
    marker = out[1]
    assert marker.marker and marker.silent and marker.positions == ()
    assert marker.cursor.final and (marker.cursor.seq, marker.cursor.window_index) == (5, 1)
    assert windower.cursor("cam") == marker.cursor, "the final cursor, not window 0's"
    assert windower.stats.empty_tails == 1


def test_idle_stream_is_flushed_then_forgotten() -> None:
    windower = Windower(SMALL)
    for seq in range(5):
        windower.push(frame(seq), 10.0)
    assert windower.tick(14.9) == []
    out = windower.tick(15.0)
    assert shape(out) == [(1, 320, 480, True)]
    assert len(windower) == 0 and windower.stats.streams_evicted_idle == 1


def test_max_streams_evicts_the_least_recently_active() -> None:
    windower = Windower(SMALL.model_copy(update={"max_streams": 2}))
    windower.push(frame(0, stream="a"), 1.0)
    windower.push(frame(0, stream="b"), 2.0)
    windower.push(frame(1, stream="a"), 3.0)
    out = windower.push(frame(0, stream="c"), 4.0)  # b is the least recently active
    assert [(w.stream_id, w.final, len(w.samples)) for w in out] == [("b", True, 160)]
    assert len(windower) == 2 and windower.stats.streams_evicted_lru == 1


def test_short_tail_is_dropped_and_counted() -> None:
    settings = SMALL.model_copy(update={"min_window_s": 0.02})
    windower = Windower(settings)
    windower.push(frame(0), 0.0)
    (marker,) = windower.flush_all()
    assert marker.marker and len(marker.samples) == 0 and marker.cursor.final
    assert windower.stats.short_tails_dropped == 1


def test_silence_gate_and_levels() -> None:
    square = np.tile(np.array([32767, -32768], dtype="<i2"), FRAME_N // 2).tobytes()
    loud = run([frame(s, pcm=square) for s in range(4)])[0]
    quiet = run([frame(s, pcm=bytes(2 * FRAME_N)) for s in range(4)])[0]
    assert loud.peak_dbfs == pytest.approx(0.0, abs=1e-3)
    assert loud.rms_dbfs == pytest.approx(0.0, abs=1e-3)
    assert not loud.silent
    assert (quiet.rms_dbfs, quiet.peak_dbfs, quiet.silent) == (-120.0, -120.0, True)


def test_window_carries_the_positions_of_the_frames_it_used() -> None:
    out = run([frame(s, position=(3, 100 + s)) for s in range(6)])
    assert out[0].positions == tuple((3, 100 + s) for s in range(4))
    assert out[1].positions == tuple((3, 100 + s) for s in range(2, 6))


def test_oldest_needed_is_the_lowest_position_still_needed() -> None:
    windower = Windower(SMALL)
    for seq in range(4):
        windower.push(frame(seq, position=(0, 10 + seq)), 0.0)
    # w0 is out; w1 starts at sample 320, in frame 2.
    assert windower.oldest_needed() == {"cam": (0, 12)}
    windower.push(frame(6, position=(0, 9)), 0.0)  # held for reordering, lower offset
    assert windower.oldest_needed() == {"cam": (0, 9)}
    windower.flush_all()
    assert windower.oldest_needed() == {}


def test_samples_are_read_only_copies() -> None:
    window = run([frame(s) for s in range(4)])[0]
    with pytest.raises(ValueError, match="read-only"):
        window.samples[0] = 1.0


def test_f32_mono_is_taken_as_is() -> None:
    out = run([frame(s, fmt="f32le") for s in range(4)])
    whole = np.concatenate([np.frombuffer(frame(s, fmt="f32le").pcm, "<f4") for s in range(4)])
    np.testing.assert_array_equal(out[0].samples, whole)


def test_stereo_48k_is_downmixed_and_resampled_on_the_same_grid() -> None:
    """A 48 kHz stereo tone gives the same windows as the same tone at 16 kHz mono."""
    n48 = FRAME_N * 3
    t = np.arange(n48 * 12) / 48_000
    wave = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    stereo = np.repeat(wave, 2)
    frames = [
        frame(
            s, rate=48_000, channels=2, n=n48, pcm=stereo[s * 2 * n48 : (s + 1) * 2 * n48].tobytes()
        )
        for s in range(12)
    ]
    out = run(frames)
    assert [(w.index, len(w.samples), w.final) for w in out] == [
        *((k, 640, False) for k in range(5)),
        (5, 0, True),  # the audio ends on window 4's end: a marker closes the segment
    ]
    reference = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000)
    middle = out[2].samples  # away from the segment's start, the filter has settled
    np.testing.assert_allclose(middle, reference[640 : 640 + 640], atol=2e-3)
    assert out[-2].end_ns == out[-1].end_ns == T0_NS + 12 * FRAME_NS


def test_memory_stays_bounded_by_one_window_and_slack() -> None:
    settings = WindowSettings(window_s=1.0, hop_s=0.5, jitter_frames=2)
    windower = Windower(settings)
    for seq in range(600):  # 6 s of 10 ms frames
        windower.push(frame(seq), 0.0)
    assert windower.held_bytes() <= 2 * (settings.window_samples + RING_SLACK_SAMPLES)


def test_frames_of_many_streams_stay_apart() -> None:
    """Each stream has audio of its own (its frames' samples offset by 100 per stream), so a
    frame ending up in another stream's window would show."""
    windower = Windower(SMALL)
    out = []
    audio = {s: [tone(seq) + 100 * k for seq in range(4)] for k, s in enumerate("abc")}
    for seq in range(4):
        for stream in ("a", "b", "c"):
            pcm = audio[stream][seq].astype("<i2").tobytes()
            out += windower.push(frame(seq, stream=stream, pcm=pcm), 0.0)
    assert sorted(w.stream_id for w in out) == ["a", "b", "c"]
    for window in out:
        own = np.concatenate(audio[window.stream_id]).astype(np.float32) / 32768
        np.testing.assert_array_equal(window.samples, own)


def test_eos_waits_for_missing_earlier_frames_then_flushes() -> None:
    """docs/windowing.md: eos flushes once released in order; frames missing before it are
    waited for (within the jitter bound), not dropped."""
    windower = Windower(SMALL)
    out = [w for seq in (0, 1, 2) for w in windower.push(frame(seq), 0.0)]
    assert windower.push(frame(4, eos=True), 0.0) == [], "3 is missing: eos is held"
    out += windower.push(frame(3), 0.0)  # the late frame: the stream completes and closes
    assert shape(out) == [(0, 0, 640, False), (1, 320, 480, True)]
    np.testing.assert_array_equal(out[1].samples, expected_samples(range(2, 5)))
    assert windower.stats.frames_missing == 0 and out[1].cursor.final


def test_eos_with_a_frame_that_never_comes_flushes_after_the_jitter_bound() -> None:
    windower = Windower(SMALL)  # jitter_frames 4
    out = [w for seq in (0, 1, 2) for w in windower.push(frame(seq), 0.0)]
    assert windower.push(frame(4, eos=True), 0.0) == [], "held while 3 may still come"
    out += windower.flush_all()  # idle close: the hole is given up, filled, and eos applied
    assert shape(out)[-1][3] is True and windower.stats.frames_missing == 1
