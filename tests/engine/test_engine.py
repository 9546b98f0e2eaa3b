"""The caption engine end to end on the CPU build of vLLM with the tiny random-weight model.

One engine is started per module (~25 s on 2 cores) and driven from one asyncio loop; the last
test stops it. Captions of a random model are noise: the tests check structure, counts, ids
and timing, never wording.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from earwitness.errors import EngineDeadError
from stream.engine.engine import AudioInputError, CaptionEngine, CaptionResult
from stream.engine.settings import SAMPLE_RATE_HZ, EngineSettings

# No warning filters are needed: the warnings vLLM's import chain emits (torch's
# `torch.distributed.reduce_op` FutureWarning, the "triton not found" log lines) come from the
# engine-core child process, outside pytest's filters; torchaudio's `torch.jit.script_method`
# DeprecationWarning only appears when torchaudio is imported, which this path never does.
pytestmark = [pytest.mark.engine, pytest.mark.slow]

MAX_TOKENS = 16


class _Loop:
    """One event loop for the module: AsyncLLM's output task lives on the loop it started on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def loop() -> Iterator[_Loop]:
    runner = _Loop()
    yield runner
    runner.loop.close()


@pytest.fixture(scope="module")
def settings(tiny_model_dir: Path) -> EngineSettings:
    return EngineSettings(
        model=str(tiny_model_dir),
        load_format="dummy",
        dtype="bfloat16",
        enforce_eager=True,
        max_model_len=1024,
        max_num_seqs=8,
        cpu_kv_cache_bytes=256 << 20,
        max_tokens=MAX_TOKENS,
        # One engine-core process with the worker inside it (not EngineCore + Worker):
        # ~25 s instead of ~38 s to start on 2 cores, ~0.6 GB less memory.
        vllm_env={"VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
    )


@pytest.fixture(scope="module")
def engine(loop: _Loop, settings: EngineSettings) -> Iterator[CaptionEngine]:
    caption_engine = CaptionEngine(settings)
    loop.run(caption_engine.start())
    yield caption_engine
    loop.run(caption_engine.stop())


def _windows(n: int, seconds: float = 30.0, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    size = int(seconds * SAMPLE_RATE_HZ)
    return [(rng.standard_normal(size) * 0.1).astype(np.float32) for _ in range(n)]


async def _batch(engine: CaptionEngine, tag: str, windows: list[np.ndarray]) -> list[CaptionResult]:
    return await asyncio.gather(*(engine.caption(w, f"{tag}-{i}") for i, w in enumerate(windows)))


def _assert_well_formed(
    result: CaptionResult, request_id: str, engine: CaptionEngine, seconds: float = 30.0
) -> None:
    assert result.request_id == request_id
    assert isinstance(result.text, str)
    assert 1 <= result.output_tokens <= MAX_TOKENS
    # vLLM's count of the prompt it ran equals the model processor's.
    assert result.prompt_tokens == engine.plan.prompt_tokens(seconds)
    assert result.family == "qwen3-omni-captioner" and result.reasoning is None
    assert result.finish_reason in {"stop", "length"}
    assert result.engine_latency_ms > 0


def test_start_reports_ready(engine: CaptionEngine) -> None:
    # Qwen3-Omni: 13 audio tokens a second (30 s -> 390) + the captioner template's 10.
    assert engine.plan.prompt_tokens(30.0) == 400
    assert engine.is_alive
    assert engine.start_s is not None and engine.start_s > 0
    assert engine.process_ids, "AsyncLLM runs its engine core in a child process"


def test_captions_several_windows_concurrently(loop: _Loop, engine: CaptionEngine) -> None:
    results = loop.run(_batch(engine, "win", _windows(4)))
    for i, result in enumerate(results):
        _assert_well_formed(result, f"win-{i}", engine)
    assert any(result.text for result in results), "some sampled ids decode to text"


def test_two_concurrent_batches(loop: _Loop, engine: CaptionEngine) -> None:
    async def both() -> tuple[list[CaptionResult], list[CaptionResult]]:
        first = _batch(engine, "a", _windows(3, seed=1))
        second = _batch(engine, "b", _windows(3, seed=2))
        return await asyncio.gather(first, second)

    first, second = loop.run(both())
    for tag, results in (("a", first), ("b", second)):
        for i, result in enumerate(results):
            _assert_well_formed(result, f"{tag}-{i}", engine)


def test_short_window(loop: _Loop, engine: CaptionEngine) -> None:
    (result,) = loop.run(_batch(engine, "short", _windows(1, seconds=2.5)))
    _assert_well_formed(result, "short-0", engine, seconds=2.5)


def test_bad_input_is_rejected_and_the_engine_lives_on(loop: _Loop, engine: CaptionEngine) -> None:
    stereo = np.zeros((2, SAMPLE_RATE_HZ), np.float32)
    with pytest.raises(AudioInputError, match="audio_shape"):
        loop.run(engine.caption(stereo, "bad-shape"))
    with pytest.raises(AudioInputError, match="audio_dtype"):
        loop.run(engine.caption(np.zeros(SAMPLE_RATE_HZ, np.float64), "bad-dtype"))
    assert engine.is_alive
    (result,) = loop.run(_batch(engine, "after-bad", _windows(1, seconds=1.0)))
    _assert_well_formed(result, "after-bad-0", engine, seconds=1.0)


def test_stop_leaves_no_engine_process(loop: _Loop, engine: CaptionEngine) -> None:
    """Runs last in this module: it stops the shared engine."""
    pids = engine.process_ids
    loop.run(engine.stop())
    assert not engine.is_alive
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    leftovers = [
        p for p in psutil.Process().children(recursive=True) if p.name().startswith("VLLM")
    ]
    assert leftovers == []
    with pytest.raises(EngineDeadError):
        loop.run(engine.caption(_windows(1, seconds=1.0)[0], "after-stop"))
    loop.run(engine.stop())  # idempotent
