"""One segment: continuous audio of one format on one grid, cut into windows as it grows.

::

    16 kHz sample   0         H         2H        3H     end
                    ├──────── window 0 ─────────┤
                              ├──────── window 1 ─────────┤
                                        ├─ tail (final, on close) ─┤
    ring            [ trimmed ][ held: next window's start → end   ]

Window ``k`` covers samples ``[k·H, k·H + W)`` counted from the segment's first sample (t0, the
first frame's ew-ts), so its stream time is ``[t0 + k·H·62.5 µs, t0 + (k·H + W)·62.5 µs)``. It is
emitted as soon as ``end`` reaches ``k·H + W``. Positions come from sample counts; ew-ts only
decides, one level up, whether a frame continues the segment.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice
from operator import itemgetter

import numpy as np

from windowing.config import NS_PER_OUT_SAMPLE, OUT_RATE_HZ, WindowSettings
from windowing.convert import Converter
from windowing.floor import NoiseFloor
from windowing.ring import SampleRing
from windowing.window import FLOOR_DBFS, Cursor, Window, WindowStats, levels
from windowing.wire import SAMPLE_WIDTH, Frame

_POSITION = itemgetter(4)
"""A span's Kafka position (spans are ``(out_start, in_start, seq, ts_ns, position)``)."""

RING_SLACK_SAMPLES = OUT_RATE_HZ // 2
"""Room beyond one window, so a frame always fits once ready windows are out."""

_NO_SAMPLES = np.zeros(0, np.float32)
_NO_SAMPLES.flags.writeable = False

Span = tuple[int, int, int, int, object]
"""A frame in the segment: (16 kHz start, input-rate start, ew-seq, ew-ts, position)."""


class Segment:
    """Builds the windows of one segment; the stream decides which frames belong to it."""

    __slots__ = (
        "_channels",
        "_converter",
        "_drift_ns",
        "_floor",
        "_fmt",
        "_gaps",
        "_held",
        "_hop",
        "_max_gap_ns",
        "_min",
        "_next_end",
        "_raw",
        "_ring",
        "_silence_dbfs",
        "_spans",
        "_stats",
        "_width",
        "_window",
        "expected_ts_ns",
        "id",
        "in_samples",
        "last_seq",
        "next_index",
        "rate_hz",
        "stream_id",
    )

    def __init__(
        self,
        stream_id: str,
        segment_id: int,
        fmt: tuple[int, int, str],
        *,
        settings: WindowSettings,
        stats: WindowStats,
        held: Callable[[], Iterable[object]],
        floor: NoiseFloor,
        first_seq: int,
        first_ts_ns: int,
        next_index: int = 0,
        in_sample: int = 0,
    ) -> None:
        """``first_seq``/``first_ts_ns``: the ew-seq and ew-ts the next frame must carry to
        continue the segment (its first frame's, or a restored cursor's anchor)."""
        self.stream_id, self.id = stream_id, segment_id
        self.rate_hz, self._channels, self._fmt = fmt
        self._width = self._channels * SAMPLE_WIDTH[self._fmt]
        self._window, self._hop = settings.window_samples, settings.hop_samples
        self._min, self._silence_dbfs = settings.min_window_samples, settings.silence_dbfs
        self._drift_ns = round(settings.max_ts_drift_ms * 1e6)
        self._max_gap_ns = round(settings.max_gap_s * 1e9)
        self._stats, self._held, self._floor = stats, held, floor
        self._converter = Converter(
            self.rate_hz, self._channels, self._fmt, settings.resample_quality
        )
        self._raw = self._converter.raw
        capacity = self._window + RING_SLACK_SAMPLES
        self._ring = SampleRing(capacity, self._out(in_sample), self._converter.dtype)
        self.in_samples = in_sample
        self.next_index = next_index
        self._next_end = next_index * self._hop + self._window
        self._gaps: deque[tuple[int, int]] = deque()
        self._spans: deque[Span] = deque()
        self.last_seq = first_seq - 1
        self.expected_ts_ns = first_ts_ns

    @property
    def format(self) -> tuple[int, int, str]:
        return self.rate_hz, self._channels, self._fmt

    @property
    def held_bytes(self) -> int:
        return self._ring.nbytes

    def positions(self) -> Iterable[object]:
        """Positions of the frames the next windows still need."""
        return (span[4] for span in self._spans)

    def extend(self, frame: Frame, out: list[Window]) -> bool:
        """Append ``frame`` if it continues the segment (the hot path), else say False.

        The continuity rule, the one place it is decided (``delta`` = the frame's ew-ts minus
        where the sample count expects it; ``drift`` = ``max_ts_drift_ms``)::

            format changed, or ew-seq not after the last one        → False: a new segment
            next ew-seq and |delta| ≤ drift                         → appended (drift absorbed)
            -drift ≤ delta ≤ max_gap_s (ew-seq skipped or late ts)  → hole filled with
                                                                      max(0, delta) of silence
            otherwise (a jump back, or a hole over max_gap_s)       → False: a new segment
        """
        if (
            frame.seq <= self.last_seq
            or frame.rate_hz != self.rate_hz
            or frame.channels != self._channels
            or frame.fmt != self._fmt
        ):
            return False
        delta = frame.ts_ns - self.expected_ts_ns
        if frame.seq != self.last_seq + 1 or abs(delta) > self._drift_ns:
            if not -self._drift_ns <= delta <= self._max_gap_ns:
                return False
            self._stats.frames_missing += frame.seq - self.last_seq - 1
            self.add(frame, max(0, delta) * self.rate_hz // 1_000_000_000, out)
            return True
        start = self.in_samples
        out_start = start * OUT_RATE_HZ // self.rate_hz
        self._spans.append((out_start, start, frame.seq, frame.ts_ns, frame.position))
        pcm = frame.pcm
        n = len(pcm) // self._width
        self.in_samples = start + n
        self.last_seq = frame.seq
        self.expected_ts_ns = frame.ts_ns + n * 1_000_000_000 // self.rate_hz
        ring = self._ring
        if self._raw and n <= ring.free:
            ring.append_bytes(pcm)
            if ring.end >= self._next_end:
                self._emit_ready(out)
        else:
            self._write(self._converter.convert(pcm), out)
        return True

    def add(self, frame: Frame, gap_in: int, out: list[Window]) -> None:
        """Append ``gap_in`` input-rate samples of silence, then ``frame``."""
        lo = self._out(self.in_samples)
        self.in_samples += gap_in
        hi = self._out(self.in_samples)
        self._spans.append((hi, self.in_samples, frame.seq, frame.ts_ns, frame.position))
        if hi > lo:
            self._gaps.append((lo, hi))
            self._stats.gaps_filled += 1
            self._stats.gap_samples += hi - lo
            self._write(self._converter.silence(gap_in), out)
        self._append(frame, out)

    def close(self, out: list[Window], next_frame: Frame | None = None) -> None:
        """Flush the resampler; emit the tail as a final window if it is long enough, else a
        marker (no samples, the final cursor): the close is always published, so a replay
        after any crash point rebuilds exactly the same windows."""
        self._write(self._converter.flush(), out)
        lo, hi = self.next_index * self._hop, self._ring.end
        emitted_end = lo if self.next_index == 0 else self._next_end - self._hop
        if hi > emitted_end and hi - lo >= self._min:
            out.append(self._emit(lo, hi, next_frame, final=True))
        elif hi > 0:  # (a segment that never held audio has nothing to record)
            if hi > emitted_end:
                self._stats.short_tails_dropped += 1
            else:
                self._stats.empty_tails += 1
            out.append(self._marker(hi, next_frame))
        self._ring = SampleRing(0, hi)

    def _marker(self, hi: int, next_frame: Frame | None) -> Window:
        """A zero-length final window at ``hi`` that carries only the final cursor."""
        end_ns = self.id + hi * NS_PER_OUT_SAMPLE
        cursor = self._final_cursor(self.next_index, next_frame)
        return Window(
            self.stream_id,
            self.id,
            self.next_index,
            end_ns,
            end_ns,
            _NO_SAMPLES,
            0.0,
            FLOOR_DBFS,
            FLOOR_DBFS,
            True,
            True,
            (),
            cursor,
            self._floor.value,
            marker=True,
        )

    def _append(self, frame: Frame, out: list[Window]) -> None:
        """The unhurried twin of :meth:`extend`'s tail."""
        n = len(frame.pcm) // self._width
        self.in_samples += n
        self.last_seq = frame.seq
        self.expected_ts_ns = frame.ts_ns + n * 1_000_000_000 // self.rate_hz
        self._write(self._converter.convert(frame.pcm), out)

    def _write(self, samples: np.ndarray, out: list[Window]) -> None:
        ring = self._ring
        while len(samples) > ring.free:
            ring.trim(self._next_end - self._window)
            part = ring.free
            ring.append(samples[:part])
            samples = samples[part:]
            self._emit_ready(out)
        ring.append(samples)
        self._emit_ready(out)

    def _emit_ready(self, out: list[Window]) -> None:
        while self._ring.end >= self._next_end:
            out.append(self._emit(self._next_end - self._window, self._next_end))

    def _emit(
        self, lo: int, hi: int, next_frame: Frame | None = None, final: bool = False
    ) -> Window:
        """Window ``next_index`` over ``[lo, hi)``; full ones advance the grid, tails close it."""
        samples = self._ring.copy(lo, hi, self._converter.scale)
        samples.flags.writeable = False
        rms, peak = levels(samples)
        floor = self._floor.update(rms)
        gap = self._gap_share(lo, hi)
        positions = self._positions_before(hi)
        index = self.next_index
        if not final:
            self._advance()
        cursor = self._final_cursor(index, next_frame) if final else self._cursor(index)
        self._count(final, rms < self._silence_dbfs)
        return Window(
            self.stream_id,
            self.id,
            index,
            self.id + lo * NS_PER_OUT_SAMPLE,
            self.id + hi * NS_PER_OUT_SAMPLE,
            samples,
            gap,
            rms,
            peak,
            rms < self._silence_dbfs,
            final,
            positions,
            cursor,
            floor,
        )

    def _positions_before(self, hi: int) -> tuple[object, ...]:
        """Positions of the frames starting before output sample ``hi``, oldest first.

        Spans are ordered by output sample and ``hi`` is at (or near) the newest one, so the
        cut is found from the right in a step or two and the tuple is built in C.
        """
        spans = self._spans
        k = len(spans)
        while k and spans[k - 1][0] >= hi:
            k -= 1
        return tuple(islice(map(_POSITION, spans), k))

    def _advance(self) -> None:
        self.next_index += 1
        self._next_end += self._hop
        start = self._next_end - self._window
        self._ring.trim(start)
        while self._gaps and self._gaps[0][1] <= start:
            self._gaps.popleft()
        while len(self._spans) > 1 and self._spans[1][0] <= start:
            self._spans.popleft()

    def _gap_share(self, lo: int, hi: int) -> float:
        filled = sum(max(0, min(g_hi, hi) - max(g_lo, lo)) for g_lo, g_hi in self._gaps)
        return filled / (hi - lo)

    def _cursor(self, index: int) -> Cursor:
        _, in_start, seq, ts_ns, _ = self._spans[0]
        rate, channels, fmt = self.format
        position = _lowest(self.positions(), self._held())
        return Cursor(
            self.stream_id,
            self.id,
            index,
            False,
            seq,
            ts_ns,
            in_start,
            rate,
            channels,
            fmt,
            position,
            self._floor.value,
        )

    def _final_cursor(self, index: int, next_frame: Frame | None) -> Cursor:
        if next_frame is None:
            seq, ts_ns, position = self.last_seq + 1, self.expected_ts_ns, _lowest(self._held())
        else:
            seq, ts_ns = next_frame.seq, next_frame.ts_ns
            position = _lowest((next_frame.position,), self._held())
        return Cursor(
            self.stream_id,
            self.id,
            index,
            True,
            seq,
            ts_ns,
            0,
            *self.format,
            position,
            self._floor.value,
        )

    def _count(self, final: bool, silent: bool) -> None:
        self._stats.windows += 1
        self._stats.final_windows += final
        self._stats.silent_windows += silent

    def _out(self, in_sample: int) -> int:
        return in_sample * OUT_RATE_HZ // self.rate_hz


def _lowest(*groups: Iterable[object]) -> object:
    """The smallest non-None position, or None."""
    present = [p for group in groups for p in group if p is not None]
    return min(present) if present else None  # type: ignore[type-var]
