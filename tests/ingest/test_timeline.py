"""``ingest.timeline`` and ``ingest.framer``: PTS in, segments and wire frames out (pure).

Scenario tables: chunks of 20 ms (pts in ms), tolerance 40 ms, max gap 2 s::

    pts   0  20  40  60    200        5000       1000
          └ START   CONT   GAP 120 ms  BREAK fwd  BREAK back
"""

from __future__ import annotations

import pytest

from ingest.framer import Framer, OutFrame
from ingest.timeline import Step, Timeline
from windowing import Windower, WindowSettings, decode_frame

MS = 1_000_000
T0 = 1_700_000_000_000 * MS

PTS_CASES = [
    ("steady", [0, 20, 40, 60], ["start", "continue", "continue", "continue"], [0, 0, 0, 0]),
    ("jitter", [0, 25, 38, 65], ["start", "continue", "continue", "continue"], [0, 0, 0, 0]),
    ("hole", [0, 20, 160, 180], ["start", "continue", "gap", "continue"], [0, 0, 120, 0]),
    ("jump ahead", [0, 20, 5000, 5020], ["start", "continue", "break", "continue"], [0] * 4),
    ("jump back", [0, 20, 40, 0], ["start", "continue", "continue", "break"], [0] * 4),
    ("no pts", [None, None, None], ["start", "continue", "continue"], [0, 0, 0]),
    ("slow drift", [0, 19, 38, 57, 76, 95], ["start"] + ["continue"] * 5, [0] * 6),
]


@pytest.mark.parametrize(
    ("name", "pts", "steps", "gaps_ms"), PTS_CASES, ids=[c[0] for c in PTS_CASES]
)
def test_pts_scenarios(name: str, pts: list[int | None], steps: list[str], gaps_ms: list[int]):
    timeline = Timeline(40 * MS, 2000 * MS)
    got = [
        timeline.place(None if p is None else p * MS, 20 * MS, T0 + i, None)
        for i, p in enumerate(pts)
    ]
    assert [p.step.value for p in got] == steps
    assert [p.gap_ns // MS for p in got] == gaps_ms


def test_anchor_prefers_the_source_clock():
    timeline = Timeline(40 * MS, 2000 * MS)
    assert timeline.place(0, 20 * MS, T0, T0 - 700 * MS).wall_ns == T0 - 700 * MS
    assert timeline.place(9000 * MS, 20 * MS, T0 + 5, None).wall_ns == T0 + 5  # arrival
    assert timeline.place(9020 * MS, 20 * MS, T0, None).step is Step.CONTINUE


def _headers(frame: OutFrame) -> dict[str, bytes]:
    return dict(frame.headers)


def test_framer_seq_ts_holes_segments_and_eos():
    """
    16 kHz mono s16, frames of 20 ms (640 bytes); pushes of 30 ms:
      start(T0) 30 30 | gap 100 ms | 30 | start(T0 - 1 s: earlier, so moved to the end) 30 | close
    """
    framer, out = Framer("cam", "s16le", 20), []
    framer.start(T0, 16_000, 1, out)
    for _ in range(2):
        framer.push(b"\x01\x00" * 480, 1.0, out)  # 60 ms → frames 0, 1, 2 (20 each)
    framer.gap(100 * MS, out)
    framer.push(b"\x01\x00" * 480, 2.0, out)  # 30 ms → one frame + 10 ms buffered
    end_before = framer.end_ns
    framer.start(T0 - 1000 * MS, 16_000, 1, out)  # the buffered 10 ms go out first
    framer.push(b"\x01\x00" * 480, 3.0, out)
    framer.close(out, 4.0)
    heads = [_headers(f) for f in out]
    seqs = [int(h["ew-seq"]) for h in heads]
    ts_ms = [(int(h["ew-ts"]) - T0) / MS for h in heads]
    sizes = [len(f.value) // 2 for f in out]
    assert seqs == [0, 1, 2, 3, 4, 0, 1]
    assert sizes == [320, 320, 320, 320, 160, 320, 160]
    assert ts_ms == [0, 20, 40, 160, 180, 190, 210]  # hole of 100 ms after 60 ms of audio
    assert end_before == T0 + 190 * MS
    assert [h.get("ew-eos") for h in heads] == [None] * 6 + [b"1"]
    assert out[3].captured_mono == 2.0 and out[0].captured_mono == 1.0


def test_framer_close_sends_an_empty_eos_frame_and_only_once():
    framer, out = Framer("cam", "s16le", 20), []
    framer.close(out, 0.0)
    assert out == []  # nothing open
    framer.start(T0, 8000, 1, out)
    framer.push(b"\x00\x00" * 160, 0.0, out)
    framer.close(out, 0.0)
    framer.close(out, 0.0)
    assert [len(f.value) for f in out] == [320, 0]
    assert _headers(out[-1])["ew-eos"] == b"1"


def test_the_real_windower_sees_a_hole_and_a_new_segment():
    """What the framer writes decodes as v1 frames; the windower fills the hole as a gap and
    starts a second segment at the reset."""
    framer, out = Framer("cam", "s16le", 20), []
    framer.start(T0, 16_000, 1, out)
    tone = (b"\x00\x10" * 320) * 150  # 3 s
    framer.push(tone, 0.0, out)
    framer.gap(500 * MS, out)
    framer.push(tone, 0.0, out)
    framer.start(T0 + 60_000 * MS, 16_000, 1, out)
    framer.push(tone, 0.0, out)
    framer.close(out, 0.0)
    windower = Windower(WindowSettings(window_s=2, hop_s=1, min_window_s=0.5))
    windows = []
    for n, f in enumerate(out):
        windows += windower.push(decode_frame(f.key, f.value, f.headers, (0, n)), 0.0)
    segments = sorted({w.segment_id for w in windows})
    assert segments == [T0, T0 + 60_000 * MS]
    assert windower.stats.gaps_filled == 1 and windower.stats.seq_resets == 1
    assert max(w.gap_fraction for w in windows) > 0
