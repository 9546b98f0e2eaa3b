"""Frame factories for the windowing tests: small windows, 10 ms frames, exact samples."""

from __future__ import annotations

import numpy as np

from windowing import Frame, Window, Windower, WindowSettings, decode_frame, encode_frame

T0_NS = 1_700_000_000_000_000_000
FRAME_N = 160  # 10 ms at 16 kHz
FRAME_NS = 10_000_000

SMALL = WindowSettings(
    window_s=0.04,  # 640 samples = 4 frames
    hop_s=0.02,  # 320 samples = 2 frames
    min_window_s=0.01,
    jitter_frames=4,
    max_gap_s=0.05,
    max_ts_drift_ms=2.0,
    idle_timeout_s=5.0,
)


def tone(seq: int, n: int = FRAME_N, channels: int = 1) -> np.ndarray:
    """Distinct, deterministic int16 samples for frame ``seq`` (never silent)."""
    base = (np.arange(n * channels) + seq * n * channels) % 2000 + 1000
    return base.astype("<i2")


def frame(
    seq: int,
    *,
    stream: str = "cam",
    ts_ns: int | None = None,
    n: int = FRAME_N,
    rate: int = 16_000,
    channels: int = 1,
    fmt: str = "s16le",
    pcm: bytes | None = None,
    eos: bool = False,
    position: object = None,
) -> Frame:
    """Frame ``seq`` of a gapless stream (unless ``ts_ns`` says otherwise), through the wire."""
    if ts_ns is None:
        ts_ns = T0_NS + seq * n * 1_000_000_000 // rate
    if pcm is None:
        samples = tone(seq, n, channels)
        pcm = (samples / 32768).astype("<f4").tobytes() if fmt == "f32le" else samples.tobytes()
    key, value, headers = encode_frame(stream, seq, ts_ns, rate, channels, fmt, pcm, eos)
    return decode_frame(key, value, headers, (0, seq) if position is None else position)


def run(frames: list[Frame], settings: WindowSettings = SMALL, flush: bool = True) -> list[Window]:
    """Push ``frames`` at 1 ms wall-clock steps; flush at the end."""
    windower = Windower(settings)
    out: list[Window] = []
    for i, item in enumerate(frames):
        out += windower.push(item, i * 0.001)
    if flush:
        out += windower.flush_all()
    return out


def shape(windows: list[Window]) -> list[tuple[int, int, int, bool]]:
    """(index, start sample, length, final) per window, relative to T0."""
    return [(w.index, (w.start_ns - T0_NS) // 62_500, len(w.samples), w.final) for w in windows]


def expected_samples(seqs: range) -> np.ndarray:
    """The float32 samples of gapless frames ``seqs``."""
    return np.concatenate([tone(seq) for seq in seqs]).astype(np.float32) / 32768
