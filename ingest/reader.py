"""One connection to one source: open, demux, decode the audio track, place it in time, frame it.

::

    open_input ─► demux (every stream: the loop sees time pass even when only video comes)
        └─ audio packet ─► decode ─► Timeline.place ─► Converter ─► Framer ─► Publisher
           (other packets are dropped undecoded; no audio for stall_s is a stall)

The connection ends by raising :class:`~ingest.media.SourceError` (``ended`` when the input
ends: a live source that ends is reconnected too) or by returning when its ``Gate`` closes
(the source was stopped, or the watchdog gave up on this thread). It runs on the source's
reader thread; everything it hands on goes through the gate, under the source's lock.

RTSP with ``clock: auto``: FFmpeg learns the camera's clock (``start_time_realtime``) from the
first RTCP sender report, a few seconds in. The first audio waits for it (``clock_wait_s``,
converted PCM held, a few hundred KB) so that the whole connection is on the camera's clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import av
import av.error

from ingest.config import SourceSettings
from ingest.framer import Framer, OutFrame
from ingest.media import (
    NS_PER_S,
    Converter,
    InputSpec,
    SourceError,
    audio_stream,
    open_input,
    pts_ns,
    source_wall_ns,
    translate,
)
from ingest.metrics import SourceMetrics
from ingest.timeline import Step, Timeline

MAX_DECODE_ERRORS_IN_A_ROW = 50


class Gate(Protocol):
    """The source's side: ``emit`` frames them under its lock, unless this reader is stale."""

    def emit(self, generation: int, work: Callable[[Framer, list[OutFrame]], None]) -> bool:
        """Run ``work`` on the framer and send what it made; False once ``generation`` is stale."""
        ...

    def progress(self, generation: int, deadline_mono: float) -> None:
        """This reader is alive and must show progress again before ``deadline_mono``."""
        ...


@dataclass(slots=True)
class _Chunk:
    """Converted audio waiting to be placed (the RTSP clock wait), or placed at once."""

    pts_ns: int | None
    duration_ns: int
    arrival_ns: int
    arrival_mono: float
    pcm: list[bytes]
    changed: bool


class Connection:
    """Reads one connection of a source until it fails, ends or its gate closes."""

    def __init__(  # noqa: PLR0917
        self,
        settings: SourceSettings,
        spec: InputSpec,
        gate: Gate,
        generation: int,
        metrics: SourceMetrics,
        on_up: Callable[[str], None],
    ) -> None:
        self._s = settings
        self._spec = spec
        self._gate, self._gen = gate, generation
        self._metrics = metrics
        self._on_up = on_up
        self._timeline = Timeline(
            int(settings.pts_tolerance_ms * 1_000_000), int(settings.max_pts_gap_s * NS_PER_S)
        )
        self._converter = Converter(settings.sample_format, settings.rate_hz, settings.channels)
        self._pending: list[_Chunk] | None = None
        self._up = False
        self.audio_s = 0.0
        """Seconds of audio framed on this connection."""

    def run(self, watchdog_grace_s: float) -> None:
        """Open and read; returns when the gate closes, raises :class:`SourceError` otherwise."""
        deadline = time.monotonic() + self._spec.open_timeout_s + watchdog_grace_s
        self._gate.progress(self._gen, deadline)
        container = open_input(self._spec)
        try:
            stream = audio_stream(container, self._s.track)
            if self._s.clock == "auto" and container.format.name == "rtsp":
                self._pending = []
            self._read(container, stream, watchdog_grace_s)
        finally:
            container.close()

    def _read(
        self, container: av.container.InputContainer, stream: av.AudioStream, grace_s: float
    ) -> None:
        budget_s = max(self._s.stall_s, self._s.read_timeout_s) + grace_s
        last_audio = time.monotonic()
        errors_in_a_row = 0
        try:
            for packet in container.demux():
                now = time.monotonic()
                if packet.stream_index != stream.index:
                    if now - last_audio > self._s.stall_s:
                        raise SourceError("stalled", f"no audio for {self._s.stall_s:g} s")
                    continue
                last_audio = now
                self._gate.progress(self._gen, now + budget_s)
                errors_in_a_row = self._decode(container, packet, errors_in_a_row)
                if errors_in_a_row < 0:
                    return
        except av.error.FFmpegError as exc:
            raise translate(exc, self._spec) from None
        raise SourceError("ended", f"{self._spec.redacted}: the input ended")

    def _decode(
        self, container: av.container.InputContainer, packet: av.Packet, errors: int
    ) -> int:
        """Decode one packet and hand its audio on; the new count of decode errors in a row,
        or -1 when the gate closed."""
        arrival_ns, arrival_mono = time.time_ns(), time.monotonic()
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            self._metrics.decode_errors.inc()
            if errors + 1 >= MAX_DECODE_ERRORS_IN_A_ROW:
                raise SourceError(
                    "bad_media", f"{errors + 1} packets in a row did not decode"
                ) from None
            return errors + 1
        for frame in frames:
            if not isinstance(frame, av.AudioFrame):
                continue
            chunk = self._convert(frame, arrival_ns, arrival_mono)
            if not self._place(container, chunk):
                return -1
        return 0

    def _convert(self, frame: av.AudioFrame, arrival_ns: int, arrival_mono: float) -> _Chunk:
        changed = self._converter.changed(frame)
        pcm = [bytes(view) for view in self._converter.convert(frame)]
        duration_ns = frame.samples * NS_PER_S // frame.sample_rate
        return _Chunk(pts_ns(frame), duration_ns, arrival_ns, arrival_mono, pcm, changed)

    def _place(self, container: av.container.InputContainer, chunk: _Chunk) -> bool:
        """Place a chunk (after the RTSP clock wait, if one is on); False if the gate closed."""
        if self._pending is None:
            return self._frame(chunk, source_wall_ns(container, chunk.pts_ns))
        self._pending.append(chunk)
        waited = chunk.arrival_mono - self._pending[0].arrival_mono
        if container.start_time_realtime is None and waited < self._s.clock_wait_s:
            return True
        pending, self._pending = self._pending, None
        return all(self._frame(c, source_wall_ns(container, c.pts_ns)) for c in pending)

    def _frame(self, chunk: _Chunk, wall_ns: int | None) -> bool:
        placement = self._timeline.place(chunk.pts_ns, chunk.duration_ns, chunk.arrival_ns, wall_ns)
        converter = self._converter
        new_segment = chunk.changed or placement.step in (Step.START, Step.BREAK)

        def work(framer: Framer, out: list[OutFrame]) -> None:
            if new_segment:  # a format change alone continues in time: wall_ns 0 → the end
                framer.start(placement.wall_ns, converter.rate_hz, converter.channels, out)
                self._metrics.segments.inc()
            elif placement.step is Step.GAP:
                framer.gap(placement.gap_ns, out)
            for pcm in chunk.pcm:
                framer.push(pcm, chunk.arrival_mono, out)

        if not self._gate.emit(self._gen, work):
            return False
        self.audio_s += chunk.duration_ns / NS_PER_S
        if not self._up and chunk.pcm:
            self._up = True
            clock = "source clock" if wall_ns is not None else "arrival time"
            self._on_up(f"{converter.rate_hz} Hz x {converter.channels} ({clock} for ew-ts)")
        return True
