"""Media for the ingest tests, written with PyAV's own encoders and muxers (nothing downloaded).

``write_tone`` writes a sine tone (optionally with a video track) in any container PyAV muxes;
``write_hls`` cuts one into HLS segments; ``ts_datagrams`` turns MPEG-TS into the 1316-byte
datagrams (7 TS packets) a broadcast encoder sends, each with its send time.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TONE_HZ = 440.0
TS_DATAGRAM = 7 * 188


def _tone(rate: int, channels: int, seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.tile((amplitude * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32), (channels, 1))


def write_tone(
    target: Path | io.BytesIO,
    *,
    fmt: str,
    codec: str = "aac",
    rate: int = 48_000,
    layout: str = "stereo",
    seconds: float = 5.0,
    video: bool = False,
    metadata: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """A tone of ``seconds`` in container ``fmt`` with audio ``codec``; a moving test picture
    too when ``video`` (MPEG-4 part 2, 10 frames/s)."""
    out = av.open(target, "w", format=fmt, options=options or {})
    out.metadata.update(metadata or {})
    audio = out.add_stream(codec, rate=rate, layout=layout)
    picture = None
    if video:
        picture = out.add_stream("mpeg4", rate=10)
        picture.width, picture.height, picture.pix_fmt = 160, 120, "yuv420p"
    channels = 1 if layout == "mono" else 2
    samples = _tone(rate, channels, seconds)
    step = audio.codec_context.frame_size or 1024
    fmt_name = audio.codec_context.format.name
    for start in range(0, samples.shape[1], step):
        block = samples[:, start : start + step]
        frame = _audio_frame(block, fmt_name, layout, rate)
        frame.pts = start
        for packet in audio.encode(frame):
            out.mux(packet)
        if picture is not None and start * 10 // rate != (start + step) * 10 // rate:
            _mux_picture(out, picture, (start + step) * 10 // rate)
    for packet in audio.encode(None):
        out.mux(packet)
    if picture is not None:
        for packet in picture.encode(None):
            out.mux(packet)
    out.close()


def _audio_frame(block: np.ndarray, fmt_name: str, layout: str, rate: int) -> av.AudioFrame:
    if fmt_name == "s16":
        data = (block.T.reshape(1, -1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
    elif fmt_name == "s16p":
        frame = av.AudioFrame.from_ndarray((block * 32767).astype(np.int16), "s16p", layout)
    elif fmt_name == "flt":
        frame = av.AudioFrame.from_ndarray(block.T.reshape(1, -1).copy(), "flt", layout)
    else:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), "fltp", layout)
    frame.sample_rate = rate
    frame.time_base = Fraction(1, rate)
    return frame


def _mux_picture(out: av.container.OutputContainer, stream: av.VideoStream, index: int) -> None:
    image = np.full((120, 160, 3), (index * 25) % 256, dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    frame.pts = index
    for packet in stream.encode(frame):
        out.mux(packet)


def write_hls(directory: Path, seconds: float, segment_s: float = 2.0) -> Path:
    """A VOD HLS playlist of 48 kHz stereo AAC in MPEG-TS segments; returns the playlist."""
    playlist = directory / "index.m3u8"
    write_tone(
        playlist,
        fmt="hls",
        seconds=seconds,
        options={"hls_time": str(segment_s), "hls_list_size": "0", "hls_playlist_type": "vod"},
    )
    return playlist


def ts_datagrams(seconds: float, *, rate: int = 48_000) -> tuple[list[bytes], float]:
    """MPEG-TS of ``seconds`` of AAC, in datagrams; and the seconds each datagram carries."""
    buffer = io.BytesIO()
    write_tone(buffer, fmt="mpegts", rate=rate, seconds=seconds)
    data = buffer.getvalue()
    grams = [data[i : i + TS_DATAGRAM] for i in range(0, len(data), TS_DATAGRAM)]
    return grams, seconds / len(grams)
