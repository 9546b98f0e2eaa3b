"""PyAV at the boundary: open an input, pick its audio track, convert decoded audio, and turn
FFmpeg's errors into :class:`SourceError` with a stable reason and a redacted URL.

Used by ``earwitness ingest`` (live sources) and ``earwitness publish`` (recordings). FFmpeg's
own log is off (PyAV's default, kept): its lines may quote the URL it opens, credentials in it.

PyAV's ``timeout=(open_s, read_s)`` arms FFmpeg's interrupt callback; FFmpeg's ``timeout`` /
``rw_timeout`` options bound socket waits as well. Neither is trusted alone (PyAV #584, #1155,
#1243): ``ingest.source`` keeps a watchdog of its own over every call made here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import av
import av.error

from earwitness.errors import TransientError
from ingest.urls import scrub

_US = 1_000_000
NS_PER_S = 1_000_000_000
_REASONS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError, PermissionError), "auth"),
    ((av.error.HTTPNotFoundError, FileNotFoundError, IsADirectoryError), "not_found"),
    ((ConnectionError,), "refused"),
    ((av.error.ExitError, TimeoutError), "timeout"),
    ((av.error.ProtocolNotFoundError, av.error.OptionNotFoundError), "bad_url"),
    ((av.error.InvalidDataError, av.error.DecoderNotFoundError), "bad_media"),
    ((av.error.DemuxerNotFoundError, av.error.EOFError), "bad_media"),
)
SAMPLE_FORMATS = {"s16le": "s16", "f32le": "flt"}
"""Wire format → PyAV's packed sample format of the same layout."""


class SourceError(TransientError):
    """A source cannot be read now; retried. ``reason`` is a metric label:
    ``auth``, ``not_found``, ``refused``, ``timeout``, ``bad_url``, ``bad_media``, ``no_audio``,
    ``io``, ``ended``, ``stalled``, ``internal`` (a bug: logged with its stack). The message
    names the source by its redacted URL only."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class InputSpec:
    """What to open. ``url`` may hold credentials: it goes to FFmpeg and nowhere else."""

    url: str = field(repr=False)
    redacted: str
    input_format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    secrets: tuple[str, ...] = field(default=(), repr=False)


def ffmpeg_options(
    url: str, transport: str, read_timeout_s: float, extra: dict[str, str]
) -> dict[str, str]:
    """FFmpeg options for a live input: socket timeouts, RTSP transport, audio only."""
    options = {"rw_timeout": str(int(read_timeout_s * _US))}
    if url.startswith(("rtsp://", "rtsps://")):
        options |= {
            "rtsp_transport": transport,
            "timeout": str(int(read_timeout_s * _US)),
            "allowed_media_types": "audio",  # video is never even set up
        }
    elif url.startswith(("http://", "https://", "udp://", "tcp://")):
        options["timeout"] = str(int(read_timeout_s * _US))
    if url.startswith("udp://"):
        # FFmpeg's UDP reader thread keeps a ring of fifo_size x 188 bytes: its default (5.4 MB)
        # would be most of a source's memory; 1024 holds ~10 s of a 150 kbit/s stream.
        options |= {"fifo_size": "1024", "overrun_nonfatal": "1"}
    return options | extra


def open_input(spec: InputSpec) -> av.container.InputContainer:
    """``av.open`` for reading, or :class:`SourceError` (never anything else from FFmpeg)."""
    started = time.monotonic()
    try:
        container = av.open(
            spec.url,
            mode="r",
            format=spec.input_format,
            options=dict(spec.options),
            timeout=(spec.open_timeout_s, spec.read_timeout_s),
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise translate(exc, spec, time.monotonic() - started >= spec.open_timeout_s) from None
    return container


def translate(exc: BaseException, spec: InputSpec, timed_out: bool = False) -> SourceError:
    """A PyAV/OS error as a :class:`SourceError`; the raw message loses URL and secrets.

    FFmpeg reports an interrupted RTSP handshake as "Invalid data", so an error that comes
    when the timeout has passed counts as ``timeout``.
    """
    reason = "io"
    for types, name in _REASONS:
        if isinstance(exc, types):
            reason = name
            break
    if timed_out and reason in ("bad_media", "io"):
        reason = "timeout"
    text = getattr(exc, "strerror", None) or str(exc.args[0] if exc.args else type(exc).__name__)
    return SourceError(reason, f"{spec.redacted}: {scrub(str(text), spec.secrets)}")


def audio_stream(container: av.container.InputContainer, track: int | None) -> av.AudioStream:
    """The audio stream to read: ``track`` among the audio streams, or FFmpeg's best one."""
    audio = list(container.streams.audio)
    if not audio:
        raise SourceError("no_audio", "the input has no audio stream")
    if track is None:
        best = container.streams.best("audio")
        return best if isinstance(best, av.AudioStream) else audio[0]
    if track >= len(audio):
        raise SourceError("no_audio", f"audio track {track} asked, {len(audio)} present")
    return audio[track]


def pts_ns(frame: av.AudioFrame) -> int | None:
    """A decoded frame's PTS in ns of its stream's time, or None."""
    if frame.pts is None or frame.time_base is None:
        return None
    return int(frame.pts * frame.time_base * NS_PER_S)


def source_wall_ns(container: av.container.InputContainer, pts: int | None) -> int | None:
    """The source clock's wall time of ``pts`` (RTSP: from RTCP sender reports), or None."""
    realtime_us = container.start_time_realtime
    if realtime_us is None or pts is None:
        return None
    return realtime_us * 1000 + pts


def creation_time_ns(container: av.container.InputContainer) -> int | None:
    """The recording's ``creation_time`` (container, else its audio stream), ns, or None."""
    sources: list[Any] = [container.metadata, *(s.metadata for s in container.streams.audio)]
    for metadata in sources:
        raw = metadata.get("creation_time")
        if raw:
            try:
                when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                continue
            return int(when.timestamp() * NS_PER_S)
    return None


class Converter:
    """Decoded frames → interleaved PCM bytes at a fixed rate, layout and sample format.

    ``rate_hz``/``channels`` of None keep the input's. The resampler is rebuilt when the
    input's format changes (an HLS variant switch); ``changed`` says so, for a new segment.
    """

    def __init__(self, fmt: str, rate_hz: int | None, channels: int | None) -> None:
        self._format = SAMPLE_FORMATS[fmt]
        self._width = 2 if fmt == "s16le" else 4
        self._want_rate, self._want_channels = rate_hz, channels
        self._input: tuple[int, str, str] | None = None
        self._resampler: av.AudioResampler | None = None
        self.rate_hz = self.channels = 0

    def changed(self, frame: av.AudioFrame) -> bool:
        """Whether ``frame`` differs in format from the frames before it (the first does)."""
        return (frame.sample_rate, frame.format.name, frame.layout.name) != self._input

    def convert(self, frame: av.AudioFrame | None) -> list[memoryview]:
        """PCM of ``frame`` (None: flush the resampler's delay), as views valid until the next
        call."""
        if frame is not None and self.changed(frame):
            self._setup(frame)
        if self._resampler is None:
            return []
        block = self.channels * self._width
        return [
            memoryview(out.planes[0])[: out.samples * block]
            for out in self._resampler.resample(frame)
        ]

    def _setup(self, frame: av.AudioFrame) -> None:
        self._input = (frame.sample_rate, frame.format.name, frame.layout.name)
        self.rate_hz = self._want_rate or frame.sample_rate
        self.channels = self._want_channels or frame.layout.nb_channels
        layout = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels}c")
        self._resampler = av.AudioResampler(format=self._format, layout=layout, rate=self.rate_hz)
