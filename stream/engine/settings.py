"""The engine's settings, apart from the code that runs it (as vLLM keeps ``config/`` apart).

``EngineSettings`` says how to build and drive the vLLM engine; ``BatchSettings`` how windows
are micro-batched into it and how the analyzer's flow control treats them. Both are embedded
in the analyzer's root settings (``stream/config.py``) as ``engine`` and ``batch``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from earwitness.errors import ConfigError
from stream.engine.families import ModelFamily, detect_family

AUDIO_ENCODER_EXTENSION = "stream.engine.encoder_install.AudioEncoderExtension"
"""vLLM ``worker_extension_cls`` that wraps the audio tower in the engine core."""

SAMPLE_RATE_HZ = 16_000

DEFAULT_MODEL = "Qwen/Qwen3-Omni-30B-A3B-Captioner"


class EngineSettings(BaseModel):
    """How to build and drive the caption engine. Embedded in the analyzer's root settings.

    The defaults are the GPU captioner's. On CPU (tests, demo) set ``model`` to a directory
    from ``earwitness make-test-model``, ``load_format="dummy"``, ``enforce_eager=True``,
    ``cpu_kv_cache_bytes`` and a small ``max_model_len``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(
        default=DEFAULT_MODEL,
        description="Local model directory or hub id. Point it at a directory: a hub id makes "
        "vLLM download (no hub is reachable in CI).",
    )
    allow_download: bool = Field(
        default=False,
        description="Let vLLM download `model` from the hub when it is not a local directory. "
        "Off, the analyzer refuses to start without a local model, so a default or a typo "
        "never starts a 60 GB download (README: getting the weights).",
    )
    family: ModelFamily | None = Field(
        default=None,
        description="Model family (qwen3-omni-captioner, qwen3-omni-instruct, "
        "qwen3-omni-thinking, qwen2.5-omni); null = detected from the model's config.json "
        "and name (docs/models.md).",
    )
    system_prompt: str | None = Field(
        default=None,
        description="System prompt of the families that take one; null = the monitoring "
        'default, "" = none. The captioner takes no text: setting it there is an error.',
    )
    prompt: str | None = Field(
        default=None,
        description="The text sent with each window (instruct, thinking, qwen2.5-omni); "
        "null = the describe-all-sounds default. The captioner takes no text.",
    )
    keep_reasoning: bool = Field(
        default=False,
        description="qwen3-omni-thinking: keep the reasoning in the event's `reasoning` field "
        "(it is always removed from the caption).",
    )
    revision: str | None = Field(
        default=None, description="Model revision (hub branch, tag or commit); recorded in events."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="Weight and activation dtype; auto = the checkpoint's (bf16)."
    )
    load_format: str = Field(
        default="auto",
        description='Weight loader; "dummy" = random weights (test model, benchmarks).',
    )
    quantization: str | None = Field(
        default=None, description='Online quantisation, e.g. "fp8" (halves weights on Hopper).'
    )
    max_num_seqs: int = Field(
        default=256, ge=1, description="Most requests (windows) the engine runs at once."
    )
    max_num_batched_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Token budget of one engine step (also the encoder-cache budget); "
        "None = vLLM's default.",
    )
    max_model_len: int = Field(
        default=2048, ge=64, description="Longest sequence: audio tokens + template + caption."
    )
    max_audio_s: float = Field(
        default=30.0, gt=0, le=300, description="Longest window accepted, in seconds."
    )
    gpu_memory_utilization: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Fraction of GPU memory one engine replica may use (ignored on CPU).",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Engines in this process sharing the same GPU(s), each with its own "
        "engine-core process. Set gpu_memory_utilization to at most 1/replicas. 2 measured "
        "slower than 1 on one H200 without MPS (docs/benchmarks.md): keep 1 unless measured.",
    )
    tensor_parallel_size: int = Field(
        default=1, ge=1, description="GPUs one model is split across."
    )
    enforce_eager: bool = Field(
        default=False, description="Skip CUDA graphs / torch.compile (True on CPU: faster start)."
    )
    max_cudagraph_capture_size: int | None = Field(
        default=None,
        ge=1,
        description="Largest engine step (in tokens) captured as a CUDA graph; larger steps, "
        "such as decode plus a batch's prefill, run without graphs. None = vLLM's default "
        "(min(2 x max_num_seqs, 512)).",
    )
    audio_encoder_graphs: bool = Field(
        default=False,
        description="Replay the Qwen3-Omni audio tower from CUDA graphs, one per window length "
        "and batch bucket, captured in the engine core on a shape's second call; other shapes "
        "run eagerly (docs/engine.md). Off until measured on a GPU.",
    )
    audio_encoder_graph_max_batch: int = Field(
        default=128,
        ge=1,
        le=1024,
        description="Largest audio-tower call (in windows) replayed from a graph; the buckets "
        "are the powers of two below it and itself, a call of n windows replays the smallest "
        "bucket >= n padded with zero windows, a larger call runs eagerly.",
    )
    audio_encoder_timing: bool = Field(
        default=False,
        description="Time the audio tower in the engine core (CaptionEngine.audio_encoder_stats); "
        "on with audio_encoder_graphs.",
    )
    cpu_kv_cache_bytes: int | None = Field(
        default=None,
        ge=1 << 20,
        description="KV cache size in bytes (vLLM kv_cache_memory_bytes). Required on CPU, "
        "where the worker otherwise reserves ~90 % of RAM; on GPU None = size it from "
        "gpu_memory_utilization.",
    )
    limit_mm_per_prompt: dict[str, int] = Field(
        default_factory=lambda: {"audio": 1},
        description="Items per prompt by modality. The default is the GPU's: vLLM 0.26 on a GPU "
        'crashes in torch.compile with image/video 0. On CPU set {"audio": 1, "image": 0, '
        '"video": 0}: it skips the vision tower (faster start, less memory).',
    )
    renderer_num_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Threads in vLLM's renderer pool (tokenisation; in vLLM 0.26 also the "
        "Whisper mel features and multimodal processing of concurrent windows).",
    )
    mm_processor_cache_gb: float = Field(
        default=0.0, ge=0, description="vLLM's multimodal input cache; stream audio never repeats."
    )
    temperature: float | None = Field(
        default=None,
        ge=0,
        description="Sampling temperature; null = the model's generation_config.json, else "
        "the family's (docs/models.md).",
    )
    top_p: float | None = Field(
        default=None, gt=0, le=1, description="Nucleus sampling mass; null = as temperature."
    )
    top_k: int | None = Field(
        default=None, ge=-1, description="Top-k sampling, -1 = off; null = as temperature."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Caption length cap in tokens; null = the family's (captioner 1024, "
        "thinking 2048, others 768). The engine refuses to start when max_model_len cannot "
        "hold the longest window's prompt plus this.",
    )
    ignore_eos: bool = Field(
        default=False, description="Always generate max_tokens (benchmarks with random weights)."
    )
    seed: int = Field(default=0, description="Engine random seed.")
    request_timeout_s: float = Field(
        default=300.0,
        gt=0.0,
        description="Longest one window may take in the engine (preprocessing and generation); "
        "past it the request is aborted, then retried or turned into an error event.",
    )
    stall_unready_s: float = Field(
        default=120.0,
        gt=0.0,
        description="With windows in the engine and no caption out for this long, /readyz fails.",
    )
    stall_unhealthy_s: float = Field(
        default=300.0,
        gt=0.0,
        description="... and /healthz fails after this long, so the orchestrator restarts the "
        "analyzer (its uncommitted windows are replayed).",
    )
    warmup_windows: int = Field(
        default=1,
        ge=1,
        description="Concurrent 30 s windows in the warm-up request of start(); on GPU use "
        "a full batch so Triton compiles its kernels before readiness.",
    )
    log_stats: bool = Field(default=False, description="Let vLLM log throughput stats every 10 s.")
    vllm_env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables set before vLLM is imported "
        '(e.g. {"VLLM_USE_FLASHINFER_SAMPLER": "0"}).',
    )

    @field_validator("vllm_env")
    @classmethod
    def _upper_case_names(cls, value: dict[str, str]) -> dict[str, str]:
        """vLLM's variables are upper case; environment overrides arrive lower-cased."""
        return {name.upper(): str(setting) for name, setting in value.items()}

    @field_validator("limit_mm_per_prompt")
    @classmethod
    def _one_audio(cls, value: dict[str, int]) -> dict[str, int]:
        if value.get("audio") != 1:
            raise ValueError("limit_mm_per_prompt must allow exactly one audio per prompt")
        if unknown := set(value) - {"audio", "image", "video"}:
            raise ValueError(f"unknown modalities in limit_mm_per_prompt: {sorted(unknown)}")
        if any(count < 0 for count in value.values()):
            raise ValueError("limit_mm_per_prompt counts must be >= 0")
        return value

    @model_validator(mode="after")
    def _replicas_fit_memory(self) -> EngineSettings:
        on_gpu = self.cpu_kv_cache_bytes is None
        if on_gpu and self.replicas * self.gpu_memory_utilization > 1.0:
            raise ValueError(
                f"replicas={self.replicas} x gpu_memory_utilization="
                f"{self.gpu_memory_utilization:g} exceeds the GPU; lower gpu_memory_utilization"
            )
        return self

    @model_validator(mode="after")
    def _captioner_takes_no_text(self) -> EngineSettings:
        if self.family is ModelFamily.QWEN3_OMNI_CAPTIONER and (self.prompt or self.system_prompt):
            raise ValueError("the qwen3-omni-captioner takes no prompt or system_prompt")
        return self

    @property
    def audio_encoder_graph_batches(self) -> tuple[int, ...]:
        """The batch buckets of ``audio_encoder_graphs``: 1, 2, 4, ... and the maximum."""
        top = self.audio_encoder_graph_max_batch
        return tuple(sorted({1 << i for i in range(top.bit_length()) if 1 << i < top} | {top}))

    @property
    def audio_encoder_wrapped(self) -> bool:
        """Whether the engine core wraps the audio tower (graphs or timing)."""
        return self.audio_encoder_graphs or self.audio_encoder_timing

    def engine_args(self) -> dict[str, Any]:
        """Keyword arguments for vLLM's ``AsyncEngineArgs``."""
        args: dict[str, Any] = {
            "model": self.model,
            "tokenizer": self.model,
            "revision": self.revision,
            "tokenizer_revision": self.revision,
            "dtype": self.dtype,
            "load_format": self.load_format,
            "quantization": self.quantization,
            "max_num_seqs": self.max_num_seqs,
            "max_model_len": self.max_model_len,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "tensor_parallel_size": self.tensor_parallel_size,
            "enforce_eager": self.enforce_eager,
            "limit_mm_per_prompt": dict(self.limit_mm_per_prompt),
            "mm_processor_cache_gb": self.mm_processor_cache_gb,
            "renderer_num_workers": self.renderer_num_workers,
            "seed": self.seed,
            "disable_log_stats": not self.log_stats,
        }
        optional = {
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "kv_cache_memory_bytes": self.cpu_kv_cache_bytes,
        }
        if self.audio_encoder_wrapped:
            args["worker_extension_cls"] = AUDIO_ENCODER_EXTENSION
        if self.max_cudagraph_capture_size is not None:
            args["compilation_config"] = {
                "max_cudagraph_capture_size": self.max_cudagraph_capture_size
            }
        args.update({key: value for key, value in optional.items() if value is not None})
        return args


class SilencePolicy(StrEnum):
    """What happens to windows below the silence gate."""

    SKIP = "skip"
    """Publish nothing for the window."""
    EVENT = "event"
    """Publish a ``silence`` event without asking the engine."""


class ShedPolicy(StrEnum):
    """What load shedding does with windows that waited longer than ``max_lag_s``."""

    SKIP = "skip"
    """Shed every stale window (oldest first); each becomes a ``shed`` event."""
    WIDEN = "widen"
    """Shed stale windows of odd index only: the stream's hop doubles while overloaded."""


class BatchSettings(BaseModel):
    """Micro-batching in front of the engine, and flow control in front of the batcher."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch: int = Field(default=16, ge=1, description="Most windows sent to the engine at once.")
    max_wait_ms: float = Field(
        default=50.0, ge=0.0, description="Longest wait to fill a batch after its first window."
    )
    max_inflight: int = Field(
        default=256,
        ge=1,
        description="Most windows inside the engine at any moment; at least engine.max_num_seqs "
        "(default 256), or the engine never fills.",
    )
    silence: SilencePolicy = Field(
        default=SilencePolicy.EVENT, description="Windows below the silence gate: skip or event."
    )
    max_lag_s: float = Field(
        default=120.0,
        gt=0.0,
        description="Freshness: a window whose end (its ew-ts, on the wall clock) is older than "
        "this when its turn comes is shed ('stale'), so captions never lag real time by more; "
        "windows cut from a Kafka backlog included. Producers' clocks must be in sync (NTP).",
    )
    quiet_activity_db: float = Field(
        default=6.0,
        ge=0.0,
        description="Under overload (the queue would go stale before the engine reaches it), "
        "windows less than this many dB above their stream's noise floor are shed first, oldest "
        "first, to keep the engine for active ones.",
    )
    activity_gate_db: float | None = Field(
        default=None,
        ge=0.0,
        description="Off (null) by default. When set, windows less than this many dB above their "
        "stream's noise floor skip the engine and get a silence event ('inactive').",
    )
    shed: ShedPolicy = Field(
        default=ShedPolicy.SKIP,
        description="skip: shed the stale window; widen: shed stale "
        "windows of odd index (doubling the hop while overloaded).",
    )
    request_retries: int = Field(
        default=1,
        ge=0,
        le=5,
        description="Retries of a failed engine request before an error event.",
    )
    drain_timeout_s: float = Field(
        default=30.0, ge=0.0, description="On SIGTERM, how long in-flight windows may finish."
    )
    pause_queued_windows: int = Field(
        default=512,
        ge=1,
        description="Pause input partitions when this many windows wait for or are in the "
        "engine; more than max_inflight, or backpressure caps the engine first.",
    )
    resume_queued_windows: int = Field(
        default=256, ge=0, description="Resume them when the queue is back at this many."
    )


def check_model(settings: EngineSettings) -> str:
    """Where the model comes from and its family, or ConfigError when it is not local and may
    not download, or its family cannot be told (``stream/engine/families.py``)."""
    model = Path(settings.model)
    if model.is_dir():
        if not (model / "config.json").is_file():
            raise ConfigError(f"engine.model {model} is a directory without a config.json")
        return f"local directory {model} ({detect_family(settings.model, settings.family)})"
    if settings.allow_download:
        family = detect_family(settings.model, settings.family)
        return f"{settings.model} from the hub (engine.allow_download; {family})"
    local = f"/models/{DEFAULT_MODEL.rsplit('/', maxsplit=1)[-1]}"
    raise ConfigError(
        f"engine.model {settings.model!r} is not a local directory. Download the weights first "
        f"(README.md, the GPU path: `huggingface-cli download {DEFAULT_MODEL} --local-dir "
        f"{local}`) and point engine.model at them, or set engine.allow_download: true"
    )
