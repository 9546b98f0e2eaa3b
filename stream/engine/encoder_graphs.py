"""The Qwen3-Omni audio tower replayed from CUDA graphs: one graph per (window length, batch).

vLLM 0.26 runs the thinker's audio tower (``Qwen3OmniMoeAudioEncoder``) eagerly, and its
forward is launch-bound: ~70 % of its wall time is Python dispatch (issue 23). A 30 s window
always has 3,000 mel frames, so the engine sees few shapes, and a graph per shape replays the
whole tower with one launch.

The tower's own forward cannot be captured: it reads lengths back to the host (``tolist``,
``item``, a boolean-mask gather). :func:`encoder_plan` computes everything that depends only
on the lengths once, on the host; :func:`encode_planned` is the rest of the forward with the
plan's constants, with no host read-back, so it can be captured::

    call(features, feature_lens, aftercnn_lens)
      │ lengths → key (L, bucket)   all windows of length L, batch padded up to a bucket
      ├─ no key (mixed lengths, batch > largest bucket, tensor parallel) ─→ eager forward
      ├─ key seen once so far ─────────────────────────────────────────→ eager forward
      └─ key seen before: copy features into the key's static buffer, replay (capture first)
                          → the real windows' rows of the static output, cloned

Windows are independent in the tower (convolutions per 100-frame chunk, attention inside
``cu_seqlens`` segments, the rest per row), so padding a batch with zero windows leaves the
real windows' rows as they are, up to the GEMM's rounding at another size.

The capture backend is a seam: :class:`CudaGraphBackend` on a GPU, :class:`EagerBackend`
(re-runs the captured function on replay, reading only the static buffers) on CPU tests.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)

MAX_GRAPHS = 32
"""Most graphs one tower keeps: each holds its static input and output."""

CAPTURE_AFTER = 2
"""A key is captured on its second sighting: one-off lengths (a stream's last window) stay eager."""


@dataclass(frozen=True)
class EncoderPlan:
    """What the tower's forward derives from the lengths alone (see the module doc)."""

    chunk_lengths: list[int]
    """Mel frames of each 2 x n_window chunk, the tail chunk of each window shorter."""
    gather_index: torch.Tensor
    """Flat row indices of the valid conv-output positions (the forward's boolean mask)."""
    cu_seqlens: torch.Tensor
    """Attention segment bounds (int32, on the tower's device)."""
    max_seqlen: torch.Tensor | None
    """Longest segment on the host (flash-attention backends), None for the others."""
    rows: int
    """Output rows: the audio tokens of all windows."""


def _cnn_length(frames: int) -> int:
    for _ in range(3):
        frames = (frames - 1) // 2 + 1
    return frames


def encoder_plan(
    tower: Any, feature_lens: Sequence[int], aftercnn_lens: Sequence[int]
) -> EncoderPlan:
    """The length-only part of ``Qwen3OmniMoeAudioEncoder.forward``, on the host."""
    chunk = tower.n_window * 2
    chunk_lengths: list[int] = []
    for frames in feature_lens:
        full, tail = divmod(frames, chunk)
        chunk_lengths += [chunk] * full + ([tail] if tail else [])
    after = [_cnn_length(n) for n in chunk_lengths]
    width = max(after)
    gather = [row * width + col for row, n in enumerate(after) for col in range(n)]
    window_after = width * (tower.n_window_infer // chunk)
    segments = [0]
    for cnn_len in aftercnn_lens:
        full, tail = divmod(cnn_len, window_after)
        segments += [window_after] * full + ([tail] if tail else [])
    cu_host = torch.tensor(segments, dtype=torch.int32).cumsum(-1, dtype=torch.int32)
    device = tower.device
    return EncoderPlan(
        chunk_lengths=chunk_lengths,
        gather_index=torch.tensor(gather, dtype=torch.long, device=device),
        cu_seqlens=cu_host.to(device),
        max_seqlen=tower.compute_attn_mask_seqlen(cu_host),
        rows=len(gather),
    )


def encode_planned(tower: Any, features: torch.Tensor, plan: EncoderPlan) -> torch.Tensor:
    """``Qwen3OmniMoeAudioEncoder.forward`` after its lengths are known: no host read-back."""
    chunks = features.T.split(plan.chunk_lengths, dim=0)
    padded = nn.utils.rnn.pad_sequence(list(chunks), batch_first=True).transpose(1, 2)
    padded = padded.unsqueeze(1)
    embeds = []
    for part in padded.split(tower.conv_chunksize, dim=0):
        embed = F.gelu(tower.conv2d1(part))
        embed = F.gelu(tower.conv2d2(embed))
        embeds.append(F.gelu(tower.conv2d3(embed)))
    embed = embeds[0] if len(embeds) == 1 else torch.cat(embeds, dim=0)
    b, c, f, t = embed.size()
    embed = tower.conv_out(embed.permute(0, 3, 1, 2).contiguous().view(b, t, c * f))
    position = tower.positional_embedding.positional_embedding[:t, :].unsqueeze(0)
    embed = embed + position.to(embed.dtype)
    hidden = embed.reshape(b * t, -1).index_select(0, plan.gather_index)
    for layer in tower.layers:
        hidden = layer(hidden, plan.cu_seqlens, plan.max_seqlen)
    hidden = tower.ln_post(hidden)
    hidden = tower.act(tower.proj1(hidden))
    result: torch.Tensor = tower.proj2(hidden)
    return result


class CaptureBackend(Protocol):
    """Turns a function of static buffers into a replay that returns its (static) output."""

    def capture(self, fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]: ...


class CudaGraphBackend:
    """``torch.cuda.CUDAGraph`` capture; all graphs of one tower share one memory pool."""

    def __init__(self) -> None:
        self._pool = torch.cuda.graph_pool_handle()

    def capture(self, fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()  # warm-up: lazy initialisation and autotuning stay out of the graph
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            output = fn()

        def replay() -> torch.Tensor:
            graph.replay()
            return output

        return replay


class EagerBackend:
    """CPU stand-in: replay re-runs the function, which reads only the static buffers."""

    def __init__(self) -> None:
        self.captures = 0
        self.replays = 0

    def capture(self, fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        self.captures += 1

        def replay() -> torch.Tensor:
            self.replays += 1
            return fn()

        return replay


@dataclass
class _Graph:
    features: torch.Tensor
    rows_per_window: int
    replay: Callable[[], torch.Tensor]


@dataclass
class EncoderStats:
    """Calls and time of one tower (host time: the engine core's thread inside the tower)."""

    calls: int = 0
    windows: int = 0
    graph_calls: int = 0
    captures: int = 0
    host_s: float = 0.0
    gpu_ms: float = 0.0
    _pending: list[tuple[Any, Any, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, float]:
        """Totals (``host_s``, ``gpu_ms``: sums, for deltas between two reads) and per window."""
        self.settle(wait=True)
        windows = max(self.windows, 1)
        return {
            "calls": self.calls,
            "windows": self.windows,
            "graph_calls": self.graph_calls,
            "captures": self.captures,
            "host_s": self.host_s,
            "gpu_ms": self.gpu_ms,
            "host_ms_per_window": self.host_s * 1000.0 / windows,
            "gpu_ms_per_window": self.gpu_ms / windows,
        }

    def settle(self, wait: bool) -> None:
        """Fold finished CUDA-event pairs into ``gpu_ms`` (all of them when ``wait``)."""
        keep = []
        for start, end, windows in self._pending:
            if wait or end.query():
                end.synchronize()
                self.gpu_ms += start.elapsed_time(end)
            else:
                keep.append((start, end, windows))
        self._pending = keep


class AudioTowerForward:
    """Replaces the tower's ``forward``: graphs per key (module doc), timing of every call."""

    def __init__(
        self,
        tower: Any,
        eager: Callable[..., torch.Tensor],
        backend: CaptureBackend | None,
        batches: Sequence[int],
    ) -> None:
        self._tower = tower
        self._eager = eager
        self._backend = backend
        self._batches = sorted(batches)
        self._graphs: dict[tuple[int, int], _Graph] = {}
        self._sightings: Counter[tuple[int, int]] = Counter()
        self._failed: set[tuple[int, int]] = set()
        self.stats = EncoderStats()
        self._timed_on_gpu = tower.device.type == "cuda"

    @property
    def graphed(self) -> bool:
        """Whether any call may replay a graph (False: timing only)."""
        return self._backend is not None

    def enable(self, backend: CaptureBackend) -> None:
        """Start capturing and replaying graphs from the next call on (timing kept)."""
        self._backend = backend

    def __call__(
        self, input_features: torch.Tensor, feature_lens: torch.Tensor, aftercnn_lens: torch.Tensor
    ) -> torch.Tensor:
        began = time.perf_counter()
        events = self._start_events()
        lens = [int(n) for n in feature_lens.tolist()]
        output = self._dispatch(input_features, feature_lens, aftercnn_lens, lens)
        self._finish(began, events, len(lens))
        return output

    def _dispatch(
        self,
        features: torch.Tensor,
        feature_lens: torch.Tensor,
        aftercnn_lens: torch.Tensor,
        lens: list[int],
    ) -> torch.Tensor:
        key = self._key(lens)
        if key is None or key in self._failed:
            return self._eager(features, feature_lens, aftercnn_lens)
        graph = self._graphs.get(key)
        if graph is None:
            self._sightings[key] += 1
            if self._sightings[key] < CAPTURE_AFTER or len(self._graphs) >= MAX_GRAPHS:
                return self._eager(features, feature_lens, aftercnn_lens)
            graph = self._capture(key, features, int(aftercnn_lens[0]))
            if graph is None:
                return self._eager(features, feature_lens, aftercnn_lens)
        frames = key[0] * len(lens)
        graph.features[:, :frames].copy_(features)
        self.stats.graph_calls += 1
        return graph.replay()[: graph.rows_per_window * len(lens)].clone()

    def _key(self, lens: list[int]) -> tuple[int, int] | None:
        if self._backend is None or not lens or len(set(lens)) != 1:
            return None
        bucket = next((b for b in self._batches if b >= len(lens)), None)
        return None if bucket is None else (lens[0], bucket)

    def _capture(self, key: tuple[int, int], like: torch.Tensor, after: int) -> _Graph | None:
        """The graph of ``key``; ``after`` is the audio tokens of one window (the caller's)."""
        assert self._backend is not None
        frames, bucket = key
        static = torch.zeros((like.shape[0], frames * bucket), dtype=like.dtype, device=like.device)
        plan = encoder_plan(self._tower, [frames] * bucket, [after] * bucket)
        try:
            replay = self._backend.capture(lambda: encode_planned(self._tower, static, plan))
        except (RuntimeError, AssertionError) as exc:  # a backend that cannot be captured
            logger.warning("audio tower: capture of %s failed, eager from now: %s", key, exc)
            self._failed.add(key)
            return None
        self.stats.captures += 1
        logger.info(
            "audio tower: captured %d x %d frames (%d graphs)",
            bucket,
            frames,
            len(self._graphs) + 1,
        )
        graph = self._graphs[key] = _Graph(static, plan.rows // bucket, replay)
        return graph

    def _start_events(self) -> tuple[Any, Any] | None:
        if not self._timed_on_gpu:
            return None
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        return start, end

    def _finish(self, began: float, events: tuple[Any, Any] | None, windows: int) -> None:
        stats = self.stats
        if events is not None:
            events[1].record()
            stats._pending.append((events[0], events[1], windows))
            stats.settle(wait=False)
        stats.calls += 1
        stats.windows += windows
        stats.host_s += time.perf_counter() - began
