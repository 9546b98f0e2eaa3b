"""Installs :mod:`stream.engine.encoder_graphs` in vLLM's engine-core process, at engine start.

The model lives in the worker, inside vLLM's engine-core process, so the wrapper is installed
there: ``EngineSettings.engine_args`` names :class:`AudioEncoderExtension` as vLLM's
``worker_extension_cls`` (vLLM 0.26 and 0.32 mix it into their worker class), and
``CaptionEngine.start`` calls its methods by name through ``AsyncLLM.collective_rpc`` once the
engine is up, before the warm-up. Only vLLM's public worker methods are used (``get_model``).

On a GPU the graphs are CUDA graphs. On CPU (tests, the benchmark's dry run) the same key,
static-buffer and fallback path runs with :class:`~stream.engine.encoder_graphs.EagerBackend`:
it is checked there, not sped up.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from stream.engine.encoder_graphs import (
    AudioTowerForward,
    CaptureBackend,
    CudaGraphBackend,
    EagerBackend,
)

logger = logging.getLogger(__name__)

EXTENSION = f"{__name__}.AudioEncoderExtension"
"""vLLM's ``worker_extension_cls`` value."""

GRAPHED_TOWERS = frozenset({"Qwen3OmniMoeAudioEncoder"})
"""Tower classes whose forward ``encode_planned`` restates; any other is only timed."""


def install(
    tower: Any, graphs: bool, batches: Sequence[int], backend: CaptureBackend | None = None
) -> dict[str, Any]:
    """Wrap ``tower.forward`` (timing always; graphs when asked and possible). Idempotent;
    on a timing-only wrapper, ``graphs=True`` enables graphs (the benchmark's A/B)."""
    if tower is None:
        return {"installed": False, "graphs": False, "reason": "the model has no audio_tower"}
    current = tower.forward
    reason = _why_not_graphed(tower) if graphs else "audio_encoder_graphs is off"
    if reason is None and backend is None:
        backend = CudaGraphBackend() if tower.device.type == "cuda" else EagerBackend()
    if isinstance(current, AudioTowerForward):
        if current.graphed or backend is None or reason is not None:
            return {"installed": True, "graphs": current.graphed, "reason": "already installed"}
        current.enable(backend)  # timing only so far: graphs from now on
        return {"installed": True, "graphs": True, "reason": "graphs enabled"}
    wrapper = AudioTowerForward(tower, current, backend if reason is None else None, batches)
    tower.forward = wrapper
    logger.info(
        "audio tower %s wrapped: graphs=%s (%s)",
        type(tower).__name__,
        wrapper.graphed,
        reason or "on",
    )
    return {"installed": True, "graphs": wrapper.graphed, "reason": reason or "on"}


def stats(tower: Any) -> dict[str, Any]:
    """The wrapper's counters and time per window; empty when none is installed."""
    current = getattr(tower, "forward", None)
    return current.stats.as_dict() if isinstance(current, AudioTowerForward) else {}


def _why_not_graphed(tower: Any) -> str | None:
    if type(tower).__name__ not in GRAPHED_TOWERS:
        return f"no graphs for {type(tower).__name__}"
    from vllm.distributed import get_tensor_model_parallel_world_size

    if get_tensor_model_parallel_world_size() > 1:
        return "tensor parallel: the tower's all-reduce stays eager"
    return None


def _audio_tower(worker: Any) -> Any:
    model = worker.get_model()
    while not hasattr(model, "audio_tower") and hasattr(model, "unwrap"):
        model = model.unwrap()  # vLLM's CUDAGraphWrapper around the model
    return getattr(model, "audio_tower", None)


class AudioEncoderExtension:
    """Mixed into vLLM's worker; called by name through ``collective_rpc``."""

    def earwitness_install_audio_encoder(self, graphs: bool, batches: list[int]) -> dict[str, Any]:
        return install(_audio_tower(self), graphs, batches)

    def earwitness_audio_encoder_stats(self) -> dict[str, Any]:
        return stats(_audio_tower(self))
