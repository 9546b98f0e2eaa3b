"""Settings of ``earwitness export``: which topics, where the files go, when a file is rolled.

Loaded with ``load_settings(ExportSettings, path)``; ``EARWITNESS_EXPORT_*`` variables override
the file, e.g. ``EARWITNESS_EXPORT_DESTINATION__SECRET_KEY=...`` (the S3 secret key, a secret:
never in the file, never in logs).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from earwitness.config import Settings
from earwitness.kafka import KafkaClientSettings, captions_topic_field

_FROZEN = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class ExportKafka(KafkaClientSettings):
    """The topics the exporter reads and its consumer group."""

    captions_topic: str = captions_topic_field()
    alerts_topic: str | None = Field(
        default=None,
        description="Alerts topic to export as the 'alerts' table too (e.g. earwitness.alerts); "
        "null = captions only.",
    )
    group_id: str = Field(
        default="earwitness-export",
        description="Consumer group. Its offsets are for lag monitoring only: the files' "
        "manifests say where to resume.",
    )
    group_instance_id: str | None = Field(
        default=None,
        description="Static group membership (the pod name): a restarted exporter gets its "
        "partitions back at once instead of after session_timeout_ms.",
    )
    start: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where a partition that has never been exported starts.",
    )
    session_timeout_ms: int = Field(default=45_000, ge=6_000, description="Group session timeout.")
    max_poll_interval_ms: int = Field(
        default=300_000, ge=10_000, description="Longest gap between polls before eviction."
    )
    poll_batch: int = Field(default=5_000, ge=1, description="Records taken per poll.")


class Destination(BaseModel):
    """Where the files go (``export/store.py``)."""

    model_config = _FROZEN

    url: str = Field(
        description="A local directory, s3://bucket/prefix (pyarrow's S3), or any fsspec URL."
    )
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Filesystem options: for s3://, pyarrow S3FileSystem arguments "
        "(endpoint_override, region, scheme, access_key ...); for fsspec, its storage options.",
    )
    secret_key: SecretStr | None = Field(
        default=None, description="S3 secret key (set it from a secret); passed as secret_key."
    )
    fsspec: bool = Field(default=False, description="Use fsspec even for local and s3:// URLs.")
    compression: Literal["zstd", "snappy", "gzip", "none"] = Field(
        default="zstd", description="Parquet compression codec."
    )

    def filesystem_options(self) -> dict[str, str | int | float | bool]:
        options: dict[str, str | int | float | bool] = dict(self.options)
        if self.secret_key is not None:
            options["secret_key"] = self.secret_key.get_secret_value()
        return options


class Roll(BaseModel):
    """A partition's buffer is written out (a flush: its files and a manifest) at the first of:"""

    model_config = _FROZEN

    max_rows: int = Field(
        default=100_000, ge=1, description="Rows buffered per partition (~2.4 KiB each in memory)."
    )
    max_bytes: int = Field(
        default=128 * 2**20, ge=1, description="Bytes of record values buffered per partition."
    )
    max_age_s: float = Field(
        default=300.0, gt=0, description="Age of a partition's oldest buffered row (seconds)."
    )


class ExportSettings(Settings):
    """Root settings of ``earwitness export``.

    Environment: ``EARWITNESS_EXPORT_<SECTION>__<FIELD>`` (``earwitness/environment.py``).
    """

    ENV_PREFIXES: ClassVar[tuple[str, ...]] = ("EARWITNESS_EXPORT_",)
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    kafka: ExportKafka = Field(default_factory=ExportKafka)
    destination: Destination
    roll: Roll = Field(default_factory=Roll)
    instance: str = Field(
        default="earwitness-export-0",
        description="This exporter's name, written into every manifest (the pod name).",
    )
    keep_manifests: int = Field(
        default=200,
        ge=2,
        description="Manifests kept per partition (older ones are pruned; their files stay).",
    )
    retry_backoff_s: float = Field(
        default=5.0, gt=0, description="Wait before retrying a flush the storage refused (s)."
    )
    metrics_port: int | None = Field(
        default=9466, description="Port of /metrics, /healthz and /readyz; null = off."
    )
    metrics_host: str = Field(default="0.0.0.0", description="Address the metrics server binds.")
    health_stall_s: float = Field(
        default=300.0,
        ge=10,
        description="/healthz turns 503 once the poll loop has not turned for this long (s).",
    )
    failpoints: dict[str, int] = Field(
        default_factory=dict,
        description="Testing only: SIGKILL at the n-th hit of a named point (see failpoints.py).",
    )
