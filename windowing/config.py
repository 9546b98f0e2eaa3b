"""Settings of ``windowing/``: frozen pydantic models, embedded by the analyzer's root settings.

They are not ``BaseSettings``: only the root class reads the environment
(``EARWITNESS_WINDOWING__WINDOW_S=20`` reaches ``window_s`` through it).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

OUT_RATE_HZ = 16_000
"""Every window is 16 kHz mono float32."""
NS_PER_OUT_SAMPLE = 1_000_000_000 // OUT_RATE_HZ
"""62,500 ns: one output sample, exactly."""


class FrameLimits(BaseModel):
    """Bounds that :func:`windowing.wire.decode_frame` enforces beyond the wire format's own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_frame_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1,
        description="Largest Kafka value (PCM bytes) accepted; larger frames are 'oversize'.",
    )
    max_frame_ms: int = Field(
        default=2_000,
        ge=1,
        description="Longest frame (ms of audio) accepted; longer frames are 'oversize'.",
    )


class WindowSettings(BaseModel):
    """How frames are reassembled per stream and cut into overlapping windows.

    ::

        stream time ──►
        t0      t0+hop   t0+2hop
        ├─────── window 0 ───────┤
                ├─────── window 1 ───────┤
                         ├─────── window 2 ───────┤
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_s: float = Field(
        default=30.0,
        gt=0.0,
        le=30.0,
        description="Length of a window in seconds of stream time (the captioner takes ≤ 30 s).",
    )
    hop_s: float = Field(
        default=5.0,
        gt=0.0,
        description="Distance between the starts of consecutive windows, seconds; ≤ window_s.",
    )
    min_window_s: float = Field(
        default=1.0,
        ge=0.0,
        description="Shortest tail flushed as a final window on idle/eos/segment end, seconds.",
    )
    jitter_frames: int = Field(
        default=50,
        ge=1,
        le=10_000,
        description=(
            "Reorder bound in frames: a missing ew-seq n is given up (filled as a gap) once a "
            "frame with ew-seq ≥ n + jitter_frames has arrived. 1 means no reordering."
        ),
    )
    max_gap_s: float = Field(
        default=2.0,
        ge=0.0,
        description="Longest hole (by ew-ts) filled with silence; a longer one starts a segment.",
    )
    max_ts_drift_ms: float = Field(
        default=100.0,
        ge=0.0,
        description=(
            "How far ew-ts of a consecutive frame may stray from where the sample count puts it "
            "before it counts as a hole (forward) or a timestamp jump (backward)."
        ),
    )
    idle_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        description="Wall-clock silence after which a stream's tail is flushed and it is evicted.",
    )
    noise_floor_rise_db: float = Field(
        default=1.0,
        ge=0.0,
        description="How far a stream's adaptive noise floor may rise per window (dB) while the "
        "stream is louder than it; it falls to a quieter window at once (windowing/floor.py).",
    )
    silence_dbfs: float = Field(
        default=-60.0,
        le=0.0,
        description="Windows whose RMS level is below this (dBFS) are marked silent (skippable).",
    )
    max_streams: int = Field(
        default=10_000,
        ge=1,
        description=(
            "Most streams held at once. A new stream beyond it evicts the least recently "
            "active one, whose tail is flushed first (its windows come out of that push)."
        ),
    )
    resample_quality: Literal["VHQ", "HQ", "MQ", "LQ", "QQ"] = Field(
        default="HQ",
        description="soxr quality recipe for streams that are not 16 kHz already.",
    )
    frame_limits: FrameLimits = Field(
        default_factory=FrameLimits, description="Size bounds for a single frame."
    )

    @model_validator(mode="after")
    def _check_lengths(self) -> Self:
        if self.hop_s > self.window_s:
            raise ValueError(f"hop_s ({self.hop_s}) must be ≤ window_s ({self.window_s})")
        if self.min_window_s > self.window_s:
            raise ValueError(f"min_window_s ({self.min_window_s}) must be ≤ window_s")
        if self.hop_samples < 1:
            raise ValueError("hop_s must be at least one 16 kHz sample")
        return self

    @property
    def window_samples(self) -> int:
        """Window length in 16 kHz samples."""
        return round(self.window_s * OUT_RATE_HZ)

    @property
    def hop_samples(self) -> int:
        """Hop in 16 kHz samples."""
        return round(self.hop_s * OUT_RATE_HZ)

    @property
    def min_window_samples(self) -> int:
        """Shortest final tail in 16 kHz samples."""
        return round(self.min_window_s * OUT_RATE_HZ)
