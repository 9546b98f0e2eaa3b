"""What comes out of ``windowing/``: :class:`Window`, its :class:`Cursor`, and the counters."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from windowing.config import OUT_RATE_HZ

FLOOR_DBFS = -120.0
"""Levels of digital silence (-inf dBFS) are clamped here."""
CEILING_DBFS = 400.0
"""Levels are clamped here too: f32 PCM may hold any value, and an event must stay finite."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a stream stands once a window is out: what to hand back to ``Windower.restore``.

    ``(segment_id, window_index)`` is the last window emitted. ``seq``/``ts_ns`` name the oldest
    frame the stream still needs (the *anchor*: replay restarts there) and ``in_sample`` is its
    first sample counted at ``rate_hz`` from the segment start, so a replay that begins with the
    anchor rebuilds the same grid. ``final`` means the segment is closed: the next frame starts a
    new one. ``position`` is the lowest Kafka position still needed (``None``: none); commit no
    further than it.
    """

    stream_id: str
    segment_id: int
    window_index: int
    final: bool
    seq: int
    ts_ns: int
    in_sample: int
    rate_hz: int
    channels: int
    fmt: str
    position: object
    noise_floor_dbfs: float = FLOOR_DBFS
    """The stream's noise floor after that window (carried so a replay computes the same)."""


@dataclass(frozen=True, slots=True, eq=False)
class Window:
    """Window ``index`` of segment ``segment_id``: 16 kHz mono samples of ``[start_ns, end_ns)``.

    ``samples`` is read-only and owned by this window (one copy, made at emission).

    A *marker* (``marker=True``) closes its segment without new audio (the audio ended on the
    last window's end, or the tail was shorter than ``min_window_s``): it has no samples and
    exists only to carry the segment's final cursor, in order after the stream's windows, so
    that what is published records the close. Publish nothing for it.
    """

    stream_id: str
    segment_id: int
    index: int
    start_ns: int
    end_ns: int
    samples: np.ndarray
    gap_fraction: float
    rms_dbfs: float
    peak_dbfs: float
    silent: bool
    final: bool
    positions: tuple[object, ...]
    cursor: Cursor
    noise_floor_dbfs: float = FLOOR_DBFS
    """The stream's adaptive noise floor (dBFS) when this window was cut."""
    marker: bool = False
    """A zero-length window that only closes the segment (see the class docstring)."""

    @property
    def activity_db(self) -> float:
        """How far the window's RMS level is above its stream's noise floor (dB, ≥ 0)."""
        return max(0.0, self.rms_dbfs - self.noise_floor_dbfs)

    @property
    def key(self) -> tuple[str, int, int]:
        """``(stream_id, segment_id, index)``: which window this is, across replays."""
        return (self.stream_id, self.segment_id, self.index)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / OUT_RATE_HZ


@dataclass(slots=True)
class WindowStats:
    """Running totals since start; the analyzer exports them as counters."""

    frames: int = 0
    """Frames pushed."""
    duplicates: int = 0
    """Frames dropped because the same ew-seq was already held or emitted."""
    late: int = 0
    """Frames dropped because their ew-seq had been given up as a gap already."""
    frames_missing: int = 0
    """ew-seq numbers never seen (given up after the jitter bound)."""
    gaps_filled: int = 0
    """Holes filled with silence."""
    gap_samples: int = 0
    """16 kHz samples of silence filled in."""
    segments_started: int = 0
    """Segments opened (first frame, hole > max_gap_s, seq reset, ts jump, format change)."""
    seq_resets: int = 0
    """Times a stream's ew-seq went back while its ew-ts went forward."""
    windows: int = 0
    """Windows emitted, final ones included."""
    final_windows: int = 0
    """Tails flushed on idle, eos, segment end or eviction."""
    silent_windows: int = 0
    """Windows below silence_dbfs."""
    short_tails_dropped: int = 0
    """Tails with new audio shorter than min_window_s, not emitted (a marker closes them)."""
    empty_tails: int = 0
    """Segments that ended on a window's end: no tail, a marker closes them."""
    streams_evicted_idle: int = 0
    """Streams flushed and forgotten after idle_timeout_s."""
    streams_evicted_lru: int = 0
    """Streams flushed and forgotten to make room under max_streams."""


def levels(samples: np.ndarray) -> tuple[float, float]:
    """``(rms_dbfs, peak_dbfs)`` of float samples in [-1, 1], clamped at :data:`FLOOR_DBFS`."""
    if len(samples) == 0:
        return FLOOR_DBFS, FLOOR_DBFS
    wide = samples.astype(np.float64)  # float32 squares overflow to inf from ~1.8e19
    mean_square = float(np.dot(wide, wide)) / len(wide)
    peak = max(float(wide.max()), -float(wide.min()))
    return _dbfs(mean_square, 10.0), _dbfs(peak, 20.0)


def _dbfs(value: float, factor: float) -> float:
    if not value > 0.0:  # zero, or NaN
        return FLOOR_DBFS
    if math.isinf(value):
        return CEILING_DBFS
    return min(CEILING_DBFS, max(FLOOR_DBFS, factor * math.log10(value)))
