"""PCM bytes → 16 kHz mono, one :class:`Converter` per segment (it keeps the soxr state).

Two paths::

    16 kHz mono        raw: samples stay as sent (int16 or float32), scaled once per window
    anything else      downmix (mean) → float32 → soxr.ResampleStream (skipped at 16 kHz)

So a gapless 16 kHz mono s16 stream comes out exactly as ``int16 / 32768``.
"""

from __future__ import annotations

import numpy as np
import soxr

from windowing.config import OUT_RATE_HZ

S16_SCALE = 1.0 / 32768.0
_RAW_DTYPES = {"s16le": "<i2", "f32le": "<f4"}


def to_mono(pcm: bytes, channels: int, fmt: str) -> np.ndarray:
    """Interleaved little-endian PCM → mono float32 in [-1, 1) (s16) or as sent (f32)."""
    samples = np.frombuffer(pcm, dtype=_RAW_DTYPES[fmt]).reshape(-1, channels)
    mono = samples.mean(axis=1, dtype=np.float32)
    return mono * np.float32(S16_SCALE) if fmt == "s16le" else mono


class Converter:
    """Streaming conversion of one format (rate, channels, sample format) to 16 kHz mono.

    ``dtype`` is what :meth:`convert` returns; ``scale`` turns it into float32 samples.
    """

    __slots__ = ("_channels", "_fmt", "_resampler", "dtype", "raw", "scale")

    def __init__(self, rate_hz: int, channels: int, fmt: str, quality: str = "HQ") -> None:
        self._channels, self._fmt = channels, fmt
        self.raw = rate_hz == OUT_RATE_HZ and channels == 1
        self.dtype = _RAW_DTYPES[fmt] if self.raw else "<f4"
        self.scale = S16_SCALE if self.raw and fmt == "s16le" else 1.0
        self._resampler = (
            None
            if rate_hz == OUT_RATE_HZ
            else soxr.ResampleStream(rate_hz, OUT_RATE_HZ, 1, dtype="float32", quality=quality)
        )

    def convert(self, pcm: bytes) -> np.ndarray:
        """The 16 kHz samples this frame makes available (soxr holds back its filter delay)."""
        if self.raw:
            return np.frombuffer(pcm, dtype=self.dtype)
        mono = to_mono(pcm, self._channels, self._fmt)
        if self._resampler is None:
            return mono
        return self._resampler.resample_chunk(mono)

    def silence(self, n_in: int) -> np.ndarray:
        """``n_in`` input-rate zeros through the same path, so filter state stays continuous."""
        zeros = np.zeros(n_in, dtype=self.dtype)
        if self._resampler is None:
            return zeros
        return self._resampler.resample_chunk(zeros)

    def flush(self) -> np.ndarray:
        """What the resampler still holds, at the end of the segment."""
        empty = np.zeros(0, dtype=self.dtype)
        if self._resampler is None:
            return empty
        return self._resampler.resample_chunk(empty, last=True)
