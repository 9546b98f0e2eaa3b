"""PCM in, wire-format frames out: ``ew-seq``/``ew-ts`` for one stream, across reconnects. Pure.

::

    start(t0)  push ─ push ─ push    gap(h)   push ─ push    start(t1)   push ...   close()
    seq        0     1     2  (short)         3     4  (short) 0          1           n (eos)
    ew-ts      t0    +20ms +40ms              +h ...           t1 ≥ end of the last frame

* Frames are ``frame_ms`` of audio; what is buffered when a hole, a new segment or the end
  comes goes out as a shorter frame (any whole number of samples is a valid frame).
* A hole keeps ``ew-seq`` consecutive and moves ``ew-ts`` ahead: the analyzer fills it with
  silence (up to its ``max_gap_s``) and reports it as the window's ``gap_fraction``.
* A new segment restarts ``ew-seq`` at 0 and never goes back in time: ``t1`` is at least the
  end of the previous frame, as the wire format requires for a reset to be seen as one.
* ``close`` ends the open segment with an ``ew-eos`` frame (the buffered rest, or empty), so
  the analyzer captions its last window at once instead of after its idle timeout.

Each frame remembers when the first audio in it arrived (``captured_mono``) for the
capture-to-produce latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from windowing.wire import SAMPLE_WIDTH, encode_frame

NS_PER_S = 1_000_000_000


@dataclass(slots=True)
class OutFrame:
    """One record on its way to Kafka."""

    key: bytes
    value: bytes
    headers: list[Any]
    """``(name, value)`` pairs, as confluent-kafka takes them."""
    captured_mono: float
    """``time.monotonic()`` when the frame's first audio arrived."""
    duration_ns: int = 0
    """Audio in the frame (for pacing recordings in real time)."""


class Framer:
    """Cuts one stream's PCM into frames; owned by whoever reads the stream (not thread-safe)."""

    __slots__ = (
        "_buf",
        "_buf_mono",
        "_channels",
        "_end_ns",
        "_fmt",
        "_frame_bytes",
        "_frame_ms",
        "_holes_ns",
        "_key",
        "_open",
        "_rate",
        "_samples",
        "_seq",
        "_stream_id",
        "_t0_ns",
        "_width",
    )

    def __init__(self, stream_id: str, fmt: str, frame_ms: int) -> None:
        self._stream_id, self._key = stream_id, stream_id.encode()
        self._fmt, self._width, self._frame_ms = fmt, SAMPLE_WIDTH[fmt], frame_ms
        self._rate = self._channels = self._frame_bytes = 0
        self._seq = self._samples = self._holes_ns = self._t0_ns = self._end_ns = 0
        self._open = False
        self._buf = bytearray()
        self._buf_mono = 0.0

    @property
    def is_open(self) -> bool:
        """A segment has frames on the wire (or buffered) and no ``ew-eos`` yet."""
        return self._open

    @property
    def end_ns(self) -> int:
        """``ew-ts`` just after the last sample taken (where a continuation would start)."""
        return self._end_ns

    def start(self, wall_ns: int, rate_hz: int, channels: int, out: list[OutFrame]) -> None:
        """A new segment at ``wall_ns`` (moved forward to the previous end if earlier)."""
        self._flush(out, eos=False)
        self._rate, self._channels = rate_hz, channels
        self._frame_bytes = max(1, rate_hz * self._frame_ms // 1000) * channels * self._width
        self._seq = self._samples = self._holes_ns = 0
        self._t0_ns = self._end_ns = max(wall_ns, self._end_ns)
        self._open = True

    def gap(self, hole_ns: int, out: list[OutFrame]) -> None:
        """``hole_ns`` of audio are missing before what comes next."""
        self._flush(out, eos=False)
        self._holes_ns += hole_ns
        self._end_ns = self._ts_at(self._samples)

    def push(self, pcm: bytes | memoryview, captured_mono: float, out: list[OutFrame]) -> None:
        """Take PCM (interleaved, this framer's format); append every frame it completes."""
        if not self._open:
            raise RuntimeError("push() before start()")
        if not self._buf:
            self._buf_mono = captured_mono
        self._buf += pcm
        size = self._frame_bytes
        while len(self._buf) >= size:
            self._emit(bytes(self._buf[:size]), out, eos=False)
            del self._buf[:size]
            self._buf_mono = captured_mono
        self._end_ns = self._ts_at(self._samples + len(self._buf) // self._block)

    def close(self, out: list[OutFrame], captured_mono: float) -> None:
        """End the open segment with an ``ew-eos`` frame; nothing when none is open."""
        if not self._open:
            return
        if not self._buf:
            self._buf_mono = captured_mono
        self._flush(out, eos=True)
        self._open = False

    @property
    def _block(self) -> int:
        return self._channels * self._width

    def _flush(self, out: list[OutFrame], *, eos: bool) -> None:
        if self._buf or eos:
            self._emit(bytes(self._buf), out, eos=eos)
            self._buf.clear()

    def _ts_at(self, samples: int) -> int:
        return self._t0_ns + self._holes_ns + samples * NS_PER_S // self._rate

    def _emit(self, pcm: bytes, out: list[OutFrame], *, eos: bool) -> None:
        ts_ns = self._ts_at(self._samples)
        _, value, headers = encode_frame(
            self._stream_id, self._seq, ts_ns, self._rate, self._channels, self._fmt, pcm, eos
        )
        samples = len(pcm) // self._block
        duration_ns = samples * NS_PER_S // self._rate
        out.append(OutFrame(self._key, value, headers, self._buf_mono, duration_ns))
        self._seq += 1
        self._samples += samples
