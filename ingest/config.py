"""Settings of ``earwitness ingest``: one frozen tree, from the sources file and
``EARWITNESS_INGEST_*``.

::

    IngestSettings              (root; the only class that reads the environment)
    ├── kafka: IngestKafka      the cluster (earwitness/kafka.py), the frames topic, the buffer
    ├── http: HttpSettings      /metrics, /healthz, /readyz
    └── sources: [SourceSettings]   one per stream id: URL, track, transport, timeouts,
        ├── credentials             username + password from a file or an environment variable
        ├── output                  rate, channels, sample format, frame length
        └── backoff: BackoffSettings  retry forever: exponential, with jitter

Credentials never sit in the file: a URL with a password in it is refused, the password comes
from ``password_file`` or ``password_env`` and is read at every connection attempt (a rotated
Secret is picked up without a restart).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from earwitness.config import Settings, load_settings
from earwitness.errors import ConfigError
from earwitness.kafka import KafkaClientSettings, frames_topic_field
from earwitness.retention import Retention
from windowing.wire import MAX_CHANNELS, MAX_KEY_BYTES, MAX_RATE_HZ, MIN_RATE_HZ

_FROZEN = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
DEFAULT_HTTP_PORT = 9410


class IngestRetention(BaseModel):
    """Retention of the topic ingest creates (earwitness/retention.py, docs/privacy.md)."""

    model_config = _FROZEN

    frames: Retention = Field(
        default_factory=Retention, description="The frames topic (raw audio), if created here."
    )


class IngestKafka(KafkaClientSettings):
    """Where frames go, and how much may wait while Kafka is unreachable."""

    frames_topic: str = frames_topic_field()
    buffer_max_bytes: int = Field(
        default=64 * 2**20,
        ge=64 * 2**10,
        description="Bytes of frames (PCM) held while Kafka is slow or unreachable, beyond "
        "librdkafka's own queue; past it the oldest frames are dropped (counted and logged).",
    )
    producer_queue_max_bytes: int = Field(
        default=8 * 2**20,
        ge=2**20,
        description="librdkafka's own queue (queue.buffering.max.kbytes), bytes. Frames in it "
        "are retried until message_timeout_ms, then counted as delivery errors.",
    )
    linger_ms: int = Field(default=5, ge=0, description="librdkafka linger.ms: batching delay.")
    create_topics: bool = Field(
        default=True, description="Create the frames topic when it is missing."
    )
    new_topic_partitions: int = Field(
        default=1, ge=1, description="Partitions of the frames topic if ingest creates it."
    )
    replication_factor: int = Field(
        default=-1, description="Replication of a created topic; -1 = the broker's default."
    )
    retention: IngestRetention = Field(
        default_factory=IngestRetention,
        description="Retention of the frames topic if created (applied at creation only).",
    )
    message_timeout_ms: int = Field(
        default=120_000,
        ge=1_000,
        description="How long librdkafka retries one frame before it is a delivery error.",
    )


class HttpSettings(BaseModel):
    """Where ``/metrics``, ``/healthz`` and ``/readyz`` are served."""

    model_config = _FROZEN

    host: str = Field(default="127.0.0.1", description="Address to bind; 0.0.0.0 in a pod.")
    port: int | None = Field(
        default=DEFAULT_HTTP_PORT, ge=0, le=65535, description="Port; 0 = any free, null = off."
    )
    health_stall_s: float = Field(
        default=30.0, gt=0, description="/healthz fails when the supervisor loop stalls this long."
    )


class BackoffSettings(BaseModel):
    """Delay before reconnecting: ``initial_s · 2^(failures-1)`` capped at ``max_s``, jittered
    uniformly over its upper half (so many sources that failed together spread out)."""

    model_config = _FROZEN

    initial_s: float = Field(default=1.0, gt=0, description="Delay after the first failure, s.")
    max_s: float = Field(default=60.0, gt=0, description="Largest delay between attempts, s.")
    reset_after_s: float = Field(
        default=30.0,
        gt=0,
        description="A connection that delivered audio this long resets the failure count, s.",
    )


class SourceSettings(BaseModel):
    """One source: a URL or device FFmpeg opens, read into one stream id."""

    model_config = _FROZEN

    stream_id: str = Field(
        min_length=1, description="Stream id: the Kafka key (1-256 bytes of UTF-8)."
    )
    url: str = Field(
        min_length=1,
        description="What FFmpeg opens: rtsp://, http(s):// (HLS, Icecast, progressive), "
        "rtmp://, udp://, tcp://, a file path, or a device with input_format (alsa: hw:0).",
    )
    input_format: str | None = Field(
        default=None, description="FFmpeg input format to force (alsa, mpegts, ...)."
    )
    track: int | None = Field(
        default=None,
        ge=0,
        description="Audio track: 0 = the first audio stream; null = "
        "FFmpeg's best audio stream. Video is never decoded.",
    )
    transport: Literal["tcp", "udp"] = Field(
        default="tcp", description="RTSP transport (interleaved TCP or RTP over UDP)."
    )
    clock: Literal["auto", "arrival"] = Field(
        default="auto",
        description="ew-ts from the source's clock where it has one (RTSP RTCP sender reports, "
        "a file's creation time), else arrival; 'arrival' always uses arrival time + PTS.",
    )
    clock_wait_s: float = Field(
        default=8.0,
        ge=0,
        description="RTSP with clock 'auto': how long the first audio of a connection waits for "
        "the camera's first RTCP sender report before arrival time is used instead, s.",
    )
    open_timeout_s: float = Field(default=10.0, gt=0, description="Connect and probe, seconds.")
    read_timeout_s: float = Field(
        default=10.0, gt=0, description="One blocking read (no data at all), seconds."
    )
    stall_s: float = Field(
        default=15.0, gt=0, description="No audio for this long (other packets or none): reconnect."
    )
    username: str | None = Field(default=None, description="User name for the URL (not secret).")
    password_file: Path | None = Field(
        default=None, description="File holding the password (e.g. a mounted Secret)."
    )
    password_env: str | None = Field(
        default=None, description="Environment variable holding the password."
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="Extra FFmpeg options for the input (user_agent, probesize, ...).",
    )
    rate_hz: int | None = Field(
        default=16_000,
        ge=MIN_RATE_HZ,
        le=MAX_RATE_HZ,
        description="Output sample rate; null = the source's own (16 kHz is what the analyzer "
        "windows, so it has nothing to resample).",
    )
    channels: int | None = Field(
        default=1, ge=1, le=MAX_CHANNELS, description="Output channels; null = the source's own."
    )
    sample_format: Literal["s16le", "f32le"] = Field(
        default="s16le", description="Sample format on the wire."
    )
    frame_ms: int = Field(default=20, ge=1, le=2_000, description="Frame length, ms of audio.")
    max_pts_gap_s: float = Field(
        default=2.0,
        ge=0,
        description="A PTS hole up to this long keeps the segment (ew-ts skips ahead, the analyzer "
        "fills silence); a longer hole or a PTS jump back starts a new segment.",
    )
    pts_tolerance_ms: float = Field(
        default=40.0, ge=0, description="PTS jitter ignored (taken as continuous), ms."
    )
    backoff: BackoffSettings = Field(default_factory=BackoffSettings)

    @field_validator("stream_id")
    @classmethod
    def _key_size(cls, value: str) -> str:
        if len(value.encode()) > MAX_KEY_BYTES:
            raise ValueError(f"stream_id must be at most {MAX_KEY_BYTES} bytes of UTF-8")
        return value

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, value: str) -> str:
        if urlsplit(value).password is not None:
            raise ValueError(
                "the URL holds a password: set username, and password_file or password_env"
            )
        return value

    @model_validator(mode="after")
    def _one_password_source(self) -> Self:
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("set password_file or password_env, not both")
        return self

    def password(self) -> SecretStr | None:
        """The password, read now (from its file or variable); ``ConfigError`` if unreadable."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"{self.stream_id}: ${self.password_env} is not set")
            return SecretStr(value)
        if self.password_file is not None:
            try:
                return SecretStr(self.password_file.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ConfigError(
                    f"{self.stream_id}: cannot read password_file {self.password_file}: "
                    f"{exc.strerror}"
                ) from exc
        return None


class IngestSettings(Settings):
    """Everything ``earwitness ingest`` reads: ``--config`` file, then ``EARWITNESS_INGEST_*``."""

    ENV_PREFIXES: ClassVar[tuple[str, ...]] = ("EARWITNESS_INGEST_",)

    kafka: IngestKafka = Field(default_factory=IngestKafka)
    http: HttpSettings = Field(default_factory=HttpSettings)
    sources: tuple[SourceSettings, ...] = Field(
        default=(), description="The sources, one per stream id."
    )
    reload_poll_s: float = Field(
        default=5.0,
        ge=0,
        description="How often the sources file is checked for changes, s (0 = only on SIGHUP).",
    )
    stop_timeout_s: float = Field(
        default=10.0, gt=0, description="On shutdown: how long to wait for Kafka deliveries, s."
    )

    @model_validator(mode="after")
    def _unique_streams(self) -> Self:
        seen: set[str] = set()
        for source in self.sources:
            if source.stream_id in seen:
                raise ValueError(f"stream_id {source.stream_id!r} appears twice in sources")
            seen.add(source.stream_id)
        return self


def load_ingest_settings(path: Path | None) -> IngestSettings:
    return load_settings(IngestSettings, path)
