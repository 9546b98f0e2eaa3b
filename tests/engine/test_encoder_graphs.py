"""The graphed audio tower gives the eager tower's output (stream/engine/encoder_graphs.py).

vLLM's own ``Qwen3OmniMoeAudioEncoder`` at the tiny test model's dimensions, on CPU. The capture
backend is the CPU stand-in (:class:`EagerBackend`): a replay re-runs the captured function,
which reads only the key's static buffers, so a missing copy, a wrong plan (chunks, gather,
attention segments) or a wrong output slice shows as a different output.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from stream.engine.encoder_graphs import AudioTowerForward, EagerBackend
from stream.engine.encoder_install import install, stats

pytestmark = [pytest.mark.engine, pytest.mark.slow]

WINDOW_FRAMES = 3000
"""Mel frames of a 30 s window (100 per second)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tower(tiny_model_dir: Path) -> Iterator[Any]:
    """The tiny model's audio tower, random weights, built in this process (world size 1)."""
    from transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe import (
        Qwen3OmniMoeAudioEncoderConfig,
    )
    from vllm.config import VllmConfig, set_current_vllm_config
    from vllm.distributed import (
        destroy_distributed_environment,
        destroy_model_parallel,
        init_distributed_environment,
        initialize_model_parallel,
    )
    from vllm.model_executor.models.qwen3_omni_moe_thinker import Qwen3OmniMoeAudioEncoder

    config = json.loads((tiny_model_dir / "config.json").read_text())
    audio = Qwen3OmniMoeAudioEncoderConfig(**config["thinker_config"]["audio_config"])
    torch.manual_seed(0)
    with set_current_vllm_config(VllmConfig()):
        init_distributed_environment(
            world_size=1,
            rank=0,
            local_rank=0,
            distributed_init_method=f"tcp://127.0.0.1:{_free_port()}",
            backend="gloo",
        )
        initialize_model_parallel(1, 1)
        module = Qwen3OmniMoeAudioEncoder(audio).eval()
        for parameter in module.parameters():
            torch.nn.init.normal_(parameter, std=0.05)
        for layer in module.modules():  # what vLLM's loader does after loading weights
            if (method := getattr(layer, "quant_method", None)) is not None:
                method.process_weights_after_loading(layer)
        try:
            yield module
        finally:
            destroy_model_parallel()
            destroy_distributed_environment()


def _inputs(lens: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from vllm.model_executor.models.qwen3_omni_moe_thinker import (
        _get_feat_extract_output_lengths,
    )

    generator = torch.Generator().manual_seed(seed)
    features = torch.randn((128, sum(lens)), generator=generator)
    feature_lens = torch.tensor(lens)
    return features, feature_lens, _get_feat_extract_output_lengths(feature_lens)


def _graphed(
    tower: Any, batches: tuple[int, ...] = (1, 2, 4)
) -> tuple[AudioTowerForward, EagerBackend]:
    backend = EagerBackend()
    return AudioTowerForward(tower, tower.forward, backend, batches), backend


@torch.inference_mode()
def test_30s_windows_replay_the_eager_output(tower: Any) -> None:
    wrapped, backend = _graphed(tower)
    for batch in (1, 2):
        outputs = []
        for seed in range(3):  # eager, capture + replay, replay with new features
            inputs = _inputs([WINDOW_FRAMES] * batch, seed)
            got = wrapped(*inputs)
            assert torch.equal(got, tower.forward(*inputs)), (batch, seed)
            assert got.shape == (390 * batch, 64)
            outputs.append(got)
        assert not torch.equal(outputs[1], outputs[2])  # the new features reached the graph
    assert (backend.captures, wrapped.stats.graph_calls) == (2, 4)
    assert (wrapped.stats.calls, wrapped.stats.windows) == (6, 9)


@torch.inference_mode()
def test_a_batch_between_buckets_is_padded_with_silent_windows(tower: Any) -> None:
    wrapped, backend = _graphed(tower)
    for seed in range(3):
        inputs = _inputs([WINDOW_FRAMES] * 3, seed)  # bucket 4
        got = wrapped(*inputs)
        torch.testing.assert_close(got, tower.forward(*inputs), rtol=1e-5, atol=1e-5)
    assert (backend.captures, wrapped.stats.graph_calls) == (1, 2)


@torch.inference_mode()
def test_odd_shapes_run_eagerly(tower: Any) -> None:
    wrapped, backend = _graphed(tower)
    for lens in ([WINDOW_FRAMES, 700], [WINDOW_FRAMES] * 5):  # mixed lengths; over the buckets
        for seed in range(2):
            inputs = _inputs(lens, seed)
            assert torch.equal(wrapped(*inputs), tower.forward(*inputs))
    inputs = _inputs([1234], 0)  # a stream's short last window: seen once, never captured
    assert torch.equal(wrapped(*inputs), tower.forward(*inputs))
    assert (backend.captures, wrapped.stats.graph_calls, wrapped.stats.calls) == (0, 0, 5)


@torch.inference_mode()
def test_a_length_with_a_tail_chunk_replays_too(tower: Any) -> None:
    wrapped, backend = _graphed(tower)
    for seed in range(3):
        inputs = _inputs([1234, 1234], seed)
        assert torch.equal(wrapped(*inputs), tower.forward(*inputs))
    assert backend.captures == 1


@torch.inference_mode()
def test_install_wraps_the_forward_once(tower: Any) -> None:
    eager = tower.forward
    try:
        assert install(tower, graphs=False, batches=[1]) == {
            "installed": True,
            "graphs": False,
            "reason": "audio_encoder_graphs is off",
        }
        assert install(tower, graphs=False, batches=[1])["reason"] == "already installed"
        assert install(tower, graphs=True, batches=[1])["reason"] == "graphs enabled"
        assert install(tower, graphs=True, batches=[1])["reason"] == "already installed"
        del tower.forward
        assert install(tower, graphs=True, batches=[1, 2]) == {
            "installed": True,
            "graphs": True,
            "reason": "on",
        }
        for seed in range(3):
            inputs = _inputs([WINDOW_FRAMES] * 2, seed)
            assert torch.equal(tower(*inputs), eager(*inputs))
        counters = stats(tower)
        assert (counters["windows"], counters["graph_calls"], counters["captures"]) == (6, 2, 1)
        assert counters["host_ms_per_window"] > 0
    finally:
        tower.__dict__.pop("forward", None)
    assert stats(tower) == {}
    assert install(None, graphs=True, batches=[1])["installed"] is False
