"""One recording → its frames: everything PyAV reads (WAV, FLAC, MP3, AAC, Opus, MP4, MKV, video
files: their audio track; video is never decoded).

::

    ew-ts(first sample) = --start-time, else the file's creation_time, else now
    ew-ts(pts)          = that + (pts - first pts)      (a PTS jump inside the file: a new
                                                          segment, ew-seq 0, time forward)

With ``loop`` the file repeats with ``ew-seq``/``ew-ts`` continuing; without, its last frame
carries ``ew-eos``. A file that breaks off mid-way still gets its ``ew-eos`` (after what it
gave), then its :class:`~ingest.media.SourceError` is raised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from ingest.framer import Framer, OutFrame
from ingest.media import (
    NS_PER_S,
    Converter,
    InputSpec,
    SourceError,
    audio_stream,
    creation_time_ns,
    open_input,
    pts_ns,
    translate,
)
from ingest.timeline import Step, Timeline

OPEN_TIMEOUT_S = 60.0
PTS_TOLERANCE_NS = 40_000_000
MAX_PTS_GAP_NS = 2 * NS_PER_S


@dataclass(frozen=True)
class PublishPlan:
    """What to publish and how. ``rate_hz``/``channels`` of None keep the file's own."""

    path: Path
    stream_id: str
    topic: str
    frame_ms: int = 20
    fmt: str = "s16le"
    realtime: bool = False
    loop: bool = False
    start_ns: int | None = None
    track: int | None = None
    rate_hz: int | None = None
    channels: int | None = None


@dataclass
class FileStats:
    """What reading one file gave (filled in as it goes)."""

    frames: int = 0
    """Frames handed to the producer (``publish`` counts them)."""
    decode_errors: int = 0
    start_ns: int = 0
    clock: str = ""


def read_frames(
    plan: PublishPlan,
    stop: threading.Event,
    on_position: Callable[[int], None],
    stats: FileStats,
) -> Iterator[OutFrame]:
    """The frames of ``plan.path`` in order; raises :class:`SourceError` if it cannot be read."""
    framer = Framer(plan.stream_id, plan.fmt, plan.frame_ms)
    try:
        while not stop.is_set():
            yield from _one_pass(plan, framer, stop, on_position, stats)
            if not plan.loop:
                break
    except SourceError:
        yield from _closed(framer)
        raise
    yield from _closed(framer)


def _closed(framer: Framer) -> list[OutFrame]:
    out: list[OutFrame] = []
    framer.close(out, time.monotonic())
    return out


def _one_pass(
    plan: PublishPlan,
    framer: Framer,
    stop: threading.Event,
    on_position: Callable[[int], None],
    stats: FileStats,
) -> Iterator[OutFrame]:
    spec = InputSpec(
        url=str(plan.path),
        redacted=str(plan.path),
        open_timeout_s=OPEN_TIMEOUT_S,
        read_timeout_s=OPEN_TIMEOUT_S,
    )
    container = open_input(spec)
    try:
        stream = audio_stream(container, plan.track)
        if not stats.start_ns:
            stats.start_ns, stats.clock = _start(plan, container)
        reader = _Pass(plan, framer, stats)
        for packet in container.demux(stream):
            if stop.is_set():
                return
            if packet.pos is not None and packet.pos >= 0:
                on_position(packet.pos)
            yield from reader.packet(packet)
        yield from reader.flush()
    except av.error.FFmpegError as exc:
        raise translate(exc, spec) from None
    finally:
        container.close()


def _start(plan: PublishPlan, container: av.container.InputContainer) -> tuple[int, str]:
    if plan.start_ns is not None:
        return plan.start_ns, "--start-time"
    created = creation_time_ns(container)
    if created is not None:
        return created, "creation_time"
    return time.time_ns(), "now"


class _Pass:
    """One pass over the file: decode, place, frame."""

    def __init__(self, plan: PublishPlan, framer: Framer, stats: FileStats) -> None:
        self._framer = framer
        self._stats = stats
        self._timeline = Timeline(PTS_TOLERANCE_NS, MAX_PTS_GAP_NS)
        self._converter = Converter(plan.fmt, plan.rate_hz, plan.channels)
        self._first_pts: int | None = None

    def packet(self, packet: av.Packet) -> list[OutFrame]:
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            self._stats.decode_errors += 1
            return []
        out: list[OutFrame] = []
        for frame in frames:
            if isinstance(frame, av.AudioFrame):
                self._frame(frame, out)
        return out

    def flush(self) -> list[OutFrame]:
        out: list[OutFrame] = []
        if self._framer.is_open:
            for pcm in self._converter.convert(None):
                self._framer.push(pcm, time.monotonic(), out)
        return out

    def _frame(self, frame: av.AudioFrame, out: list[OutFrame]) -> None:
        pts = pts_ns(frame)
        if self._first_pts is None:
            self._first_pts = pts or 0
        wall = self._stats.start_ns + ((pts or 0) - self._first_pts)
        duration_ns = frame.samples * NS_PER_S // frame.sample_rate
        placement = self._timeline.place(pts, duration_ns, wall, wall)
        changed = self._converter.changed(frame)
        pcm = self._converter.convert(frame)
        framer = self._framer
        starts = placement.step is Step.BREAK or (
            placement.step is Step.START and not framer.is_open
        )
        if starts or changed:
            framer.start(placement.wall_ns, self._converter.rate_hz, self._converter.channels, out)
        elif placement.step is Step.GAP:
            framer.gap(placement.gap_ns, out)
        for view in pcm:
            framer.push(view, time.monotonic(), out)
