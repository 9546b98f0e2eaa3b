"""GPU benchmark of earwitness's engine path against vLLM's own ceiling (issue 7).

Runs on the borrowed GPU machine (see ``bench/gpu/README.md``); never imported by tests or CI.
One *phase* per process (``--phase NAME``): each builds one engine, measures, shuts it down and
writes ``<out>/<phase>.json``. ``bench/gpu/run_all.sh`` runs the phases in order, each in its own
process session so that no engine process outlives its phase.

Phases (``PHASES`` below)::

    offline_*   vLLM offline ``LLM.generate`` over pre-made windows (the *ceiling*) and one
                window at a time (*naive*)
    worker_*    the analyzer's engine path: ``stream.worker.EngineWorker`` (its MicroBatcher
                and CaptionEngine on vLLM's AsyncLLM) fed windows from memory, as a backlog
                (throughput) and as N simulated live streams (the capacity curve)

Every window is a distinct 30 s, 16 kHz float32 clip (a shared noise base with a unique
marker), so neither vLLM's prefix cache nor its encoder cache can reuse work across windows.
Output length is fixed with ``ignore_eos``; sampling is the captioner's (T 0.6, top-p 0.95,
top-k 20) in every mode.
"""

# ruff: noqa: PLR0912, PLR0915, PLR0917 - a benchmark harness, long by nature
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SAMPLE_RATE = 16_000
WINDOW_S = 30.0
HOP_S = 10.0
SLO_S = 15.0
GOLDEN = 0.6180339887498949
TUNED_DIR = REPO / "bench" / "gpu" / "moe-configs"
"""The shipped tuned fused-MoE config (tune_moe.py output); --tuned-dir overrides it."""

# Session 3's winning engine settings, shared by its phases.
MNS512_CG1024: dict[str, Any] = {
    "max_num_seqs": 512,
    "max_num_batched_tokens": 32768,
    "max_cudagraph_capture_size": 1024,
}

# Qwen2.5-Omni phases: ~70 tokens of system prompt and prompt with the test model's byte-level
# tokenizer, what the default (monitoring) prompts take with Qwen's own tokenizer.
Q25_SYSTEM = "You monitor audio feeds."
Q25_PROMPT = "Describe every sound you hear, with times."

# name -> settings. "levels": capacity-curve stream counts (ascending; stops after the first
# level whose p95 > SLO). "throughput": (output tokens, windows) backlog measurements.
PHASES: dict[str, dict[str, Any]] = {
    "offline_bf16": {
        "mode": "offline",
        "quantization": None,
        "max_num_seqs": 256,
        "throughput": [(512, 512), (256, 512)],
        "naive": [(512, 3)],
    },
    # "batch": the analyzer's micro-batcher (a batch is prepared in full, then enters the
    # engine together). "trickle": the same backlog with max_batch 1, i.e. each window enters
    # the engine as soon as it is prepared -- the engine path before session 2's change.
    "worker_bf16": {
        "mode": "worker",
        "quantization": None,
        "max_num_seqs": 256,
        "batch": {"max_batch": 32, "max_wait_ms": 500.0},
        "throughput": [(512, 512), (256, 512)],
        "trickle": [(512, 512)],
        "levels": [64, 128, 160, 192, 224, 256],  # session 1 ran [64, 128, ...]
    },
    "worker_fp8": {
        "mode": "worker",
        "quantization": "fp8",
        "max_num_seqs": 256,
        "throughput": [(512, 512)],
        "levels": [32, 64, 96, 128, 160],  # session 1 ran [160, 224, ...]
    },
    "offline_fp8": {
        "mode": "offline",
        "quantization": "fp8",
        "max_num_seqs": 256,
        "throughput": [(512, 512)],
        "naive": [],
    },
    "worker_fp8_mns512": {
        "mode": "worker",
        "quantization": "fp8",
        "max_num_seqs": 512,
        "max_num_batched_tokens": 32768,
        "batch": {"max_batch": 64, "max_wait_ms": 500.0},
        "throughput": [(512, 1024)],
        "levels": [192, 256, 320, 384, 448, 512],  # session 1 ran [256, 320, ...]
    },
    # Lever: preprocessing on 4 renderer threads (vLLM 0.26 runs multimodal processing there).
    "worker_bf16_rw4": {
        "mode": "worker",
        "quantization": None,
        "max_num_seqs": 256,
        "renderer_num_workers": 4,
        "batch": {"max_batch": 32, "max_wait_ms": 500.0},
        "throughput": [(256, 512), (512, 512)],
    },
    # Session 3's levers on the engine core's CPU: two engine replicas on the GPU (lost), and
    # CUDA graphs up to 1024 tokens (won; now in examples/analyzer-gpu.yaml).
    "worker_fp8_x2": {
        "mode": "worker",
        "quantization": "fp8",
        "replicas": 2,
        "gpu_memory_utilization": 0.45,
        "max_num_seqs": 256,
        "batch": {"max_batch": 64, "max_wait_ms": 500.0},
        "throughput": [(512, 1024)],
        "levels": [224, 256, 288, 320, 384, 448],
    },
    "worker_fp8_mns512_cg1024": {
        "mode": "worker",
        "quantization": "fp8",
        **MNS512_CG1024,
        "batch": {"max_batch": 64, "max_wait_ms": 500.0},
        "throughput": [(512, 1024)],
        "levels": [192, 224, 256, 320],
    },
    "offline_fp8_mns512": {
        "mode": "offline",
        "quantization": "fp8",
        "max_num_seqs": 512,
        "max_num_batched_tokens": 32768,
        "throughput": [(512, 1024)],
        "naive": [],
    },
    # Session 3: CUDA graphs up to 1024 tokens won (FP8); the same-settings ceiling and BF16.
    "offline_fp8_mns512_cg1024": {
        "mode": "offline",
        "quantization": "fp8",
        **MNS512_CG1024,
        "throughput": [(512, 1024)],
        "naive": [],
    },
    # The FP8 curve between its last passing (224) and first failing (256) level.
    "worker_fp8_mns512_cg1024_fine": {
        "mode": "worker",
        "quantization": "fp8",
        **MNS512_CG1024,
        "batch": {"max_batch": 64, "max_wait_ms": 500.0},
        "throughput": [],
        "levels": [240, 248],
    },
    "worker_bf16_mns512_cg1024": {
        "mode": "worker",
        "quantization": None,
        **MNS512_CG1024,
        "batch": {"max_batch": 64, "max_wait_ms": 500.0},
        "throughput": [(512, 1024)],
        "levels": [128, 160, 192, 224, 256],
    },
    "offline_bf16_mns512_cg1024": {
        "mode": "offline",
        "quantization": None,
        **MNS512_CG1024,
        "throughput": [(512, 1024)],
        "naive": [],
    },
    # Session 4: the tuned fused-MoE tiles (tune_moe.py, "tuned": "required" fails the phase
    # without them; "if_present" records which ran), the levers each on its own, and the
    # engine-only twin of e2e.py's end-to-end curve (same settings, same levels).
    "worker_fp8_tuned": {
        "mode": "worker",
        "quantization": "fp8",
        **MNS512_CG1024,
        "batch": {"max_batch": 64, "max_wait_ms": 500.0},
        "throughput": [(512, 1024)],
        "levels": [224, 256, 288],
        "tuned": "required",
    },
    # Session 5: the engine-only twin of e2e.py's e2e_fp8 (default tiles, same levels).
    "worker_fp8_twin": {
        "mode": "worker",
        "quantization": "fp8",
        **MNS512_CG1024,
        "batch": {"max_batch": 64, "max_wait_ms": 500.0},
        "throughput": [(512, 1024), (256, 1024)],
        "levels": [160, 192, 224, 256],
    },
    "offline_fp8_default": {
        "mode": "offline",
        "quantization": "fp8",
        **MNS512_CG1024,
        "throughput": [(512, 1024), (256, 1024)],
        "naive": [],
    },
    "offline_fp8_tuned": {
        "mode": "offline",
        "quantization": "fp8",
        **MNS512_CG1024,
        "throughput": [(512, 1024)],
        "naive": [(512, 3)],
        "tuned": "required",
    },
    "offline_fp8_tuned_mns1024_cg2048": {
        "mode": "offline",
        "quantization": "fp8",
        "max_num_seqs": 1024,
        "max_num_batched_tokens": 32768,
        "max_cudagraph_capture_size": 2048,
        "throughput": [(512, 2048)],
        "naive": [],
        "tuned": "required",
    },
    "offline_fp8_tuned_mnbt16k": {
        "mode": "offline",
        "quantization": "fp8",
        **{**MNS512_CG1024, "max_num_batched_tokens": 16384},
        "throughput": [(512, 1024)],
        "naive": [],
        "tuned": "required",
    },
    # Block-quantized FP8 ([128, 128], the format of Qwen's FP8 checkpoints), online from the
    # dummy weights: vLLM's Triton block-FP8 MoE with the H200 tiles it ships for this shape.
    "offline_fp8_block": {
        "mode": "offline",
        "quantization": "fp8_per_block",
        **MNS512_CG1024,
        "throughput": [(512, 1024)],
        "naive": [],
    },
    # Per-channel weights + per-token activations: the one online FP8 scheme for which vLLM
    # 0.26 may pick its CUTLASS grouped-GEMM MoE instead of Triton (allow_vllm_cutlass).
    "offline_fp8_ptpc": {
        "mode": "offline",
        "quantization": "fp8_per_channel",
        **MNS512_CG1024,
        "throughput": [(512, 1024)],
        "naive": [],
    },
    # Issue 23: the audio tower replayed from CUDA graphs (engine.audio_encoder_graphs). The
    # offline A/B runs both on one engine: eager (timed) first, then graphs enabled through the
    # same RPC the engine start uses, re-warmed, and the same backlog again. The worker pair is
    # the engine path with the setting off (timed) and on from the start.
    "offline_fp8_encgraph": {
        "mode": "offline",
        "quantization": "fp8",
        **MNS512_CG1024,
        "encoder_timing": True,
        "encoder_ab": True,
        "throughput": [(512, 1024)],
        "naive": [],
    },
    "worker_fp8_enctime": {
        "mode": "worker",
        "quantization": "fp8",
        **MNS512_CG1024,
        "encoder_timing": True,
        "batch": {"max_batch": 64, "max_wait_ms": 500.0},
        "throughput": [(512, 1024)],
        "levels": [224, 256, 288],
    },
    "worker_fp8_encgraph": {
        "mode": "worker",
        "quantization": "fp8",
        **MNS512_CG1024,
        "encoder_graphs": True,
        "batch": {"max_batch": 64, "max_wait_ms": 500.0},
        "throughput": [(512, 1024)],
        "levels": [224, 256, 288],
    },
    # Issue 17: Qwen2.5-Omni-7B (random weights, BF16: 16.6 GiB) beside the captioner, at 512
    # and 256 output tokens, offline ceiling and engine path. The test model's tokenizer spends
    # a token per byte, so a short system prompt and prompt stand in for the ~70 tokens Qwen's
    # tokenizer gives the default ones.
    "offline_q25_7b": {
        "mode": "offline",
        "family": "qwen2.5-omni",
        "quantization": None,
        **MNS512_CG1024,
        "throughput": [(512, 1024), (256, 1024)],
        "naive": [],
    },
    "worker_q25_7b": {
        "mode": "worker",
        "family": "qwen2.5-omni",
        "quantization": None,
        **MNS512_CG1024,
        "batch": {"max_batch": 64, "max_wait_ms": 500.0},
        "throughput": [(512, 1024), (256, 1024)],
    },
    # Not run yet (no device time left in the first session): localise the engine path's loss.
    "diag_bf16": {
        "mode": "diag",
        "quantization": None,
        "max_num_seqs": 256,
        "throughput": [(512, 512)],
    },
    # CPU dry run of the harness itself (tiny model from `earwitness make-test-model`).
    "cpu_smoke_offline": {
        "mode": "offline",
        "quantization": None,
        "max_num_seqs": 4,
        "throughput": [(8, 8)],
        "naive": [(8, 2)],
        "cpu": True,
    },
    "cpu_smoke_worker": {
        "mode": "worker",
        "quantization": None,
        "max_num_seqs": 4,
        "batch": {"max_batch": 4, "max_wait_ms": 100.0},
        "throughput": [(8, 8)],
        "trickle": [(8, 8)],
        "inflight_levers": [(8, 8, 2)],
        "levels": [2, 4],
        "level_s": 12.0,
        "skip_s": 4.0,
        "cpu": True,
    },
    "cpu_smoke_x2": {
        "mode": "worker",
        "quantization": None,
        "replicas": 2,
        "max_num_seqs": 4,
        "batch": {"max_batch": 4, "max_wait_ms": 100.0},
        "throughput": [(8, 8)],
        "levels": [2],
        "level_s": 12.0,
        "skip_s": 4.0,
        "cpu": True,
    },
    "cpu_smoke_encgraph": {
        "mode": "offline",
        "quantization": None,
        "max_num_seqs": 4,
        "encoder_timing": True,
        "encoder_ab": True,
        "throughput": [(8, 8)],
        "naive": [],
        "cpu": True,
    },
    "cpu_smoke_worker_encgraph": {
        "mode": "worker",
        "quantization": None,
        "max_num_seqs": 4,
        "encoder_graphs": True,
        "batch": {"max_batch": 4, "max_wait_ms": 100.0},
        "throughput": [(8, 8)],
        "levels": [2],
        "level_s": 12.0,
        "skip_s": 4.0,
        "cpu": True,
    },
    "cpu_smoke_q25": {
        "mode": "worker",
        "family": "qwen2.5-omni",
        "quantization": None,
        "max_num_seqs": 4,
        "batch": {"max_batch": 4, "max_wait_ms": 100.0},
        "throughput": [(8, 8), (4, 8)],
        "cpu": True,
    },
    "cpu_smoke_diag": {
        "mode": "diag",
        "quantization": None,
        "max_num_seqs": 4,
        "throughput": [(8, 8)],
        "cpu": True,
    },
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- windows


class Clips:
    """Distinct 30 s clips: one noise base, a unique marker per clip (breaks every cache)."""

    def __init__(self, seconds: float = WINDOW_S, salt: int = 0) -> None:
        rng = np.random.default_rng(1234)
        self.base = (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 0.05).astype(np.float32)
        self.counter = salt * 10_000_000

    def next(self) -> np.ndarray:
        self.counter += 1
        clip = self.base.copy()
        marker = np.frombuffer(np.int64(self.counter).tobytes(), dtype=np.uint8).astype(np.float32)
        clip[: marker.size] = marker * 1e-3
        clip.flags.writeable = False
        return clip


def make_window(stream: str, index: int, samples: np.ndarray) -> Any:
    from windowing.window import Cursor, Window

    cursor = Cursor(stream, 0, index, False, index, 0, 0, SAMPLE_RATE, 1, "f32le", None)
    # Stream time on the wall clock (the window ends now), as the analyzer's windows are:
    # freshness shedding reads a window's age from its end.
    start = time.time_ns() - int(WINDOW_S * 1e9)
    return Window(
        stream_id=stream,
        segment_id=0,
        index=index,
        start_ns=start,
        end_ns=start + int(WINDOW_S * 1e9),
        samples=samples,
        gap_fraction=0.0,
        rms_dbfs=-26.0,
        peak_dbfs=-6.0,
        silent=False,
        final=False,
        positions=(),
        cursor=cursor,
    )


def request_id(window: Any) -> str:
    return f"{window.stream_id}:{window.segment_id}:{window.index}"


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


# ---------------------------------------------------------------- settings


def engine_settings(phase: dict[str, Any], model: str, warmup_tokens: int) -> Any:
    from stream.engine.settings import EngineSettings

    cpu = phase.get("cpu", False)
    vllm_env = {"VLLM_USE_FLASHINFER_SAMPLER": "0"}
    if phase.get("tuned"):
        tuned = TUNED_DIR if any(TUNED_DIR.glob("E=128,N=768,*fp8_w8a8.json")) else None
        if tuned is None and phase["tuned"] == "required":
            raise FileNotFoundError(f"no tuned fused-MoE config in {TUNED_DIR} (run tune_moe)")
        if tuned is not None:
            vllm_env["VLLM_TUNED_CONFIG_FOLDER"] = str(tuned)
    kwargs: dict[str, Any] = {
        "model": model,
        "load_format": "dummy",
        "dtype": "bfloat16",
        "quantization": phase.get("quantization"),
        "max_num_seqs": phase["max_num_seqs"],
        "max_num_batched_tokens": phase.get("max_num_batched_tokens"),
        "max_model_len": 2048,  # Qwen2.5-Omni: 750 audio tokens per 30 s
        "max_tokens": warmup_tokens,
        "ignore_eos": True,
        "warmup_windows": phase["max_num_seqs"],
        "vllm_env": vllm_env,
        "log_stats": not cpu,  # vLLM's running/waiting/throughput line every 10 s
        "renderer_num_workers": phase.get("renderer_num_workers", 1),
        "replicas": phase.get("replicas", 1),
        "max_cudagraph_capture_size": phase.get("max_cudagraph_capture_size"),
        "audio_encoder_graphs": phase.get("encoder_graphs", False),
        "audio_encoder_timing": phase.get("encoder_timing", False),
    }
    if phase.get("family"):
        kwargs.update(family=phase["family"], system_prompt=Q25_SYSTEM, prompt=Q25_PROMPT)
    if cpu:
        kwargs.update(
            enforce_eager=True,
            cpu_kv_cache_bytes=256 << 20,
            limit_mm_per_prompt={"audio": 1, "image": 0, "video": 0},
        )
    else:
        kwargs.update(
            gpu_memory_utilization=phase.get(
                "gpu_memory_utilization", float(os.environ.get("EW_GPU_MEM_UTIL", "0.9"))
            ),
            limit_mm_per_prompt={"audio": 1},  # vLLM 0.26 on GPU: image/video 0 crashes
        )
    settings = EngineSettings(**kwargs)
    _plan(settings)
    return settings


def sampling(settings: Any, max_tokens: int) -> Any:
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    chosen = _plan(settings).sampling
    return SamplingParams(
        temperature=chosen.temperature,
        top_p=chosen.top_p,
        top_k=chosen.top_k,
        max_tokens=max_tokens,
        ignore_eos=True,
        output_kind=RequestOutputKind.FINAL_ONLY,
    )


_PLANS: dict[str, Any] = {}
"""The prompt plan of the run's model (one model per bench run)."""


def _plan(settings: Any) -> Any:
    """The family's prompt, rendered by the model's processor (once per model)."""
    from stream.engine.families import detect_family
    from stream.engine.prompts import plan_prompt

    if settings.model not in _PLANS:
        family = detect_family(settings.model, settings.family)
        _PLANS[settings.model] = plan_prompt(settings, family)
    return _PLANS[settings.model]


def prompt(samples: np.ndarray) -> dict[str, Any]:
    (plan,) = _PLANS.values()  # rendered by engine_settings()
    return {"prompt": plan.text, "multi_modal_data": {"audio": (samples, SAMPLE_RATE)}}


# ---------------------------------------------------------------- offline (ceiling, naive)


def run_offline(phase: dict[str, Any], model: str, result: dict[str, Any], save: Any) -> None:
    settings = engine_settings(phase, model, warmup_tokens=32)
    from stream.engine.engine import _prepare_vllm

    _prepare_vllm(settings.vllm_env)
    from vllm import LLM

    args = settings.engine_args()
    result["engine_args"] = {k: v for k, v in args.items()}
    result["vllm_env"] = dict(settings.vllm_env)
    began = time.monotonic()
    llm = LLM(**args)
    result["engine_start_s"] = time.monotonic() - began
    log(f"LLM ready in {result['engine_start_s']:.1f} s")
    clips = Clips(salt=1)
    graph_batches = list(settings.audio_encoder_graph_batches)
    if settings.audio_encoder_wrapped:  # what CaptionEngine.start does
        result["encoder_install"] = llm.collective_rpc(
            "earwitness_install_audio_encoder",
            args=(settings.audio_encoder_graphs, graph_batches),
        )
        log(f"audio encoder: {result['encoder_install']}")
    try:
        # Warm-up: a full batch of distinct windows (Triton JIT of fused-MoE/top-k kernels).
        t0 = time.monotonic()
        n_warm = phase["max_num_seqs"]
        llm.generate(
            [prompt(clips.next()) for _ in range(n_warm)], sampling(settings, 32), use_tqdm=False
        )
        result["warmup_s"] = time.monotonic() - t0
        log(f"warm-up {n_warm} windows in {result['warmup_s']:.1f} s")
        save()
        rounds = [False, True] if phase.get("encoder_ab") else [settings.audio_encoder_graphs]
        for graphs in rounds:
            if graphs and not settings.audio_encoder_graphs:  # the A/B's second round
                result["encoder_enable"] = llm.collective_rpc(
                    "earwitness_install_audio_encoder", args=(True, graph_batches)
                )
                warm = [prompt(clips.next()) for _ in range(min(n_warm, 128))]
                llm.generate(warm, sampling(settings, 32), use_tqdm=False)  # captures the shapes
                log(f"audio encoder graphs: {result['encoder_enable']}, re-warmed")
            for tokens, n in phase["throughput"]:
                prompts = [prompt(clips.next()) for _ in range(n)]
                before = offline_encoder_stats(llm, settings)
                t0 = time.monotonic()
                outs = llm.generate(prompts, sampling(settings, tokens), use_tqdm=False)
                wall = time.monotonic() - t0
                out_tokens = sum(len(o.outputs[0].token_ids) for o in outs)
                row = {
                    "output_tokens": tokens,
                    "windows": n,
                    "wall_s": wall,
                    "windows_per_s": n / wall,
                    "output_tok_per_s": out_tokens / wall,
                    "mean_output_tokens": out_tokens / n,
                    "encoder_graphs": graphs,
                    "encoder": encoder_delta(before, offline_encoder_stats(llm, settings)),
                }
                result.setdefault("ceiling", []).append(row)
                log(
                    f"ceiling {tokens} tok, encoder graphs {graphs}: "
                    f"{row['windows_per_s']:.2f} windows/s ({wall:.1f} s), encoder {row['encoder']}"
                )
                save()
        for tokens, n in phase.get("naive", []):
            lat = []
            for _ in range(n):
                p = prompt(clips.next())
                t0 = time.monotonic()
                llm.generate([p], sampling(settings, tokens), use_tqdm=False)
                lat.append(time.monotonic() - t0)
            row = {
                "output_tokens": tokens,
                "windows": n,
                "latency_s": lat,
                "windows_per_s": n / sum(lat),
                "output_tok_per_s": n * tokens / sum(lat),
            }
            result.setdefault("naive", []).append(row)
            log(f"naive {tokens} tok: {row['windows_per_s']:.3f} windows/s {lat}")
            save()
    finally:
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        log("LLM shut down")


# ---------------------------------------------------------------- the audio encoder's time


def offline_encoder_stats(llm: Any, settings: Any) -> dict[str, Any] | None:
    """The audio tower's counters in the engine core (one worker: tensor parallel 1)."""
    if not settings.audio_encoder_wrapped:
        return None
    stats: dict[str, Any] = llm.collective_rpc("earwitness_audio_encoder_stats")[0]
    return stats


def worker_encoder_stats(worker: Any) -> dict[str, Any] | None:
    """The same, through the first replica's CaptionEngine, on the worker's loop."""
    engine = worker.engine.replicas[0]
    if not engine.settings.audio_encoder_wrapped:
        return None
    future = asyncio.run_coroutine_threadsafe(engine.audio_encoder_stats(), worker._loop)
    stats: dict[str, Any] = future.result(60)[0]
    return stats


def encoder_delta(before: dict[str, Any] | None, after: dict[str, Any] | None) -> Any:
    """What the tower did between two reads: windows, calls, time per window."""
    if before is None or after is None:
        return None
    d = {k: after[k] - before[k] for k in ("calls", "windows", "graph_calls", "captures")}
    d["host_s"] = after["host_s"] - before["host_s"]
    d["gpu_ms"] = after["gpu_ms"] - before["gpu_ms"]
    per = max(d["windows"], 1)
    d["host_ms_per_window"] = round(d["host_s"] * 1000.0 / per, 3)
    d["gpu_ms_per_window"] = round(d["gpu_ms"] / per, 3)
    d["windows_per_call"] = round(d["windows"] / max(d["calls"], 1), 2)
    return d


# ---------------------------------------------------------------- engine path (EngineWorker)


def _on_loop(worker: Any, fn: Any) -> Any:
    """Run ``fn()`` on the worker's engine loop and return its result."""

    async def call() -> Any:
        return fn()

    return asyncio.run_coroutine_threadsafe(call(), worker._loop).result(30)


def set_batching(worker: Any, batch: Any) -> None:
    """Bench-only: swap the batcher's settings and in-flight bound while it is idle."""

    def swap() -> None:
        b = worker.batcher
        assert b.inflight == 0 and b.queued == 0, "swap only while idle"
        b.settings = batch
        b._slots = asyncio.Semaphore(batch.max_inflight)

    _on_loop(worker, swap)


def set_length(worker: Any, settings: Any, tokens: int) -> None:
    """Bench-only: every CaptionEngine's sampling params with another fixed output length."""
    sp = sampling(settings, tokens)

    def swap() -> None:
        for replica in worker.engine.replicas:
            replica._sampling = sp

    _on_loop(worker, swap)


def backlog(worker: Any, clips: Clips, n: int, tag: str, timeout_s: float) -> dict[str, Any]:
    """Submit ``n`` windows at once (a backlog, as after a restart) and wait for all."""
    windows = [make_window(f"{tag}-{i}", 0, clips.next()) for i in range(n)]
    worker.take_outcomes()
    t0 = time.monotonic()
    for w in windows:
        worker.submit(w)
    done: list[float] = []
    errors = 0
    tokens = 0
    batches: list[int] = []
    queued: list[float] = []
    first_error: str | None = None
    while len(done) + errors < n and time.monotonic() - t0 < timeout_s:
        for o in worker.take_outcomes():
            if o.result is None:
                errors += 1
                first_error = first_error or o.shed or o.error
                continue
            done.append(time.monotonic() - t0)
            tokens += o.result.output_tokens
            batches.append(o.batch_size)
            queued.append(o.queued_ms)
        time.sleep(0.005)
    wall = max(done) if done else float("nan")
    return {
        "windows": n,
        "completed": len(done),
        "errors": errors,
        "first_error": first_error,
        "wall_s": wall,
        "windows_per_s": len(done) / wall if done else None,
        "output_tok_per_s": tokens / wall if done else None,
        "latency_p50_s": pct(done, 50),
        "latency_p95_s": pct(done, 95),
        "mean_batch": float(np.mean(batches)) if batches else None,
        "queued_ms_p95": pct(queued, 95),
    }


def prepare_only(worker: Any, clips: Clips, n: int) -> dict[str, Any]:
    """Preprocessing alone: ``n`` concurrent ``CaptionEngine.prepare`` calls on the engine loop
    (nothing enters the engine core), with the engine idle."""
    windows = [clips.next() for _ in range(n)]

    async def run() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(
            *(worker.engine.prepare(w, f"prep-{i}") for i, w in enumerate(windows))
        )
        return time.perf_counter() - t0

    wall = asyncio.run_coroutine_threadsafe(run(), worker._loop).result(300)
    return {
        "windows": n,
        "wall_s": wall,
        "windows_per_s": n / wall,
        "ms_per_window": wall / n * 1e3,
    }


def capacity_curve(
    worker: Any,
    clips: Clips,
    levels: list[int],
    level_s: float,
    skip_s: float,
    deadline: float,
    save_level: Any,
) -> list[dict[str, Any]]:
    """N live streams, each closing a 30 s window every HOP_S (staggered), N rising by level.

    Levels run back to back (no drain in between); a level's figures are over the windows that
    closed after its first ``skip_s`` seconds. Latency = window close (its scheduled time) to the
    outcome being taken by this (poll) thread. Stops after the level following the first level
    whose p95 exceeds the SLO, or at ``deadline``.
    """
    phase_of = lambda i: ((i * GOLDEN) % 1.0) * HOP_S  # noqa: E731 - low-discrepancy stagger
    close_at: dict[str, tuple[int, float]] = {}  # request id -> (level, scheduled close)
    lat: dict[str, float] = {}
    errors: dict[int, int] = {}
    worker.take_outcomes()
    t0 = time.monotonic() + 0.5
    next_index: dict[int, int] = {}
    rows: list[dict[str, Any]] = []

    def poll() -> None:
        now = time.monotonic()
        for o in worker.take_outcomes():
            rid = request_id(o.window)
            level, closed = close_at[rid]
            if o.result is None:
                errors[level] = errors.get(level, 0) + 1
                lat[rid] = float("inf")
            else:
                lat[rid] = now - closed

    def level_row(k: int, n: int, start: float, final: bool) -> dict[str, Any]:
        now = time.monotonic()
        measured = [
            (rid, c) for rid, (lv, c) in close_at.items() if lv == k and c >= start + skip_s
        ]
        done = [lat[rid] for rid, _ in measured if rid in lat]
        pending_ages = [now - c for rid, c in measured if rid not in lat]
        # Windows still pending count with their age so far (a lower bound on their latency).
        combined = done + pending_ages
        return {
            "streams": n,
            "offered_windows_per_s": n / HOP_S,
            "measured_windows": len(measured),
            "completed": len(done),
            "pending_at_report": len(pending_ages),
            "errors": errors.get(k, 0),
            "p50_s": pct(combined, 50),
            "p95_s": pct(combined, 95),
            "p99_s": pct(combined, 99),
            "max_s": max(combined) if combined else None,
            "mean_s": float(np.mean(done)) if done else None,
            "final": final,
        }

    stop_after: int | None = None
    for k, n in enumerate(levels):
        start = t0 + k * level_s
        end = start + level_s
        if start > deadline:
            log(f"curve: deadline before level {n}")
            break
        events = []
        for i in range(n):
            first = start + phase_of(i)
            t = first
            while t < end:
                events.append((t, i))
                t += HOP_S
        events.sort()
        log(f"curve: level {n} streams, {len(events)} windows over {level_s:.0f} s")
        for t, i in events:
            while True:
                now = time.monotonic()
                if now >= t:
                    break
                poll()
                time.sleep(min(0.005, max(0.0, t - now)))
            idx = next_index.get(i, 0)
            next_index[i] = idx + 1
            w = make_window(f"s{i}", idx, clips.next())
            close_at[request_id(w)] = (k, t)
            worker.submit(w)
        while time.monotonic() < end:
            poll()
            time.sleep(0.005)
        if k >= 1:
            prev = level_row(k - 1, levels[k - 1], t0 + (k - 1) * level_s, False)
            log(f"curve: level {levels[k - 1]} p50 {prev['p50_s']} p95 {prev['p95_s']}")
            rows.append(prev)
            save_level(rows)
            if prev["p95_s"] is not None and prev["p95_s"] > SLO_S and stop_after is None:
                stop_after = k
        if stop_after is not None and k >= stop_after:
            break
    # drain: let the last level's windows finish (bounded)
    last_k = len(rows)
    drain_until = min(time.monotonic() + 60.0, deadline + 30.0)
    while time.monotonic() < drain_until:
        poll()
        if len(lat) >= len(close_at):
            break
        time.sleep(0.01)
    if last_k < len(levels) and any(lv == last_k for lv, _ in close_at.values()):
        row = level_row(last_k, levels[last_k], t0 + last_k * level_s, True)
        log(f"curve: level {levels[last_k]} p50 {row['p50_s']} p95 {row['p95_s']}")
        rows.append(row)
        save_level(rows)
    return rows


def run_worker(
    phase: dict[str, Any], model: str, result: dict[str, Any], save: Any, deadline: float
) -> None:
    from stream.engine.settings import BatchSettings
    from stream.engine.worker import EngineWorker

    settings = engine_settings(phase, model, warmup_tokens=32)
    mns = phase["max_num_seqs"]
    # GPU batching: the phase's batches (session 1: max_batch = max_num_seqs, 20 ms), and twice
    # max_num_seqs in flight, so a prepared wave always waits inside vLLM when the running one
    # finishes.
    shape = phase.get("batch", {"max_batch": mns, "max_wait_ms": 20.0})
    # Freshness shedding off (max_lag_s 1e6): the benchmark measures the engine, and a
    # backlog of 1024 windows must not go stale while it drains.
    batch = BatchSettings(**shape, max_inflight=2 * mns, max_lag_s=1e6)
    result["engine_args"] = settings.engine_args()
    result["vllm_env"] = dict(settings.vllm_env)
    result["batch_settings"] = batch.model_dump(mode="json")
    worker = EngineWorker(settings, batch, request_id)
    began = time.monotonic()
    worker.start()
    result["engine_start_s"] = time.monotonic() - began
    log(f"EngineWorker ready in {result['engine_start_s']:.1f} s (incl. its warm-up)")
    clips = Clips(salt=2)
    try:
        t0 = time.monotonic()
        row = backlog(worker, clips, mns, "warm", 600)
        result["warmup"] = row
        log(f"warm-up {mns} distinct windows x32 tok in {time.monotonic() - t0:.1f} s")
        result["prepare_only"] = prepare_only(worker, clips, 128)
        log(f"prepare only: {result['prepare_only']}")
        save()
        for tokens, n in phase["throughput"]:
            set_length(worker, settings, tokens)
            before = worker_encoder_stats(worker)
            row = backlog(worker, clips, n, f"tp{tokens}", 900)
            row["output_tokens"] = tokens
            row["encoder"] = encoder_delta(before, worker_encoder_stats(worker))
            result.setdefault("earwitness", []).append(row)
            log(
                f"earwitness {tokens} tok: {row['windows_per_s']} windows/s ({row['wall_s']:.1f} s)"
            )
            save()
        for tokens, n in phase.get("trickle", []):
            if time.monotonic() > deadline:
                break
            set_length(worker, settings, tokens)
            set_batching(worker, batch.model_copy(update={"max_batch": 1, "max_wait_ms": 0.0}))
            row = backlog(worker, clips, n, f"tr{tokens}", 900)
            row.update(output_tokens=tokens, max_batch=1)
            result.setdefault("trickle", []).append(row)
            log(f"trickle (max_batch 1) {tokens} tok: {row['windows_per_s']} windows/s")
            set_batching(worker, batch)
            save()
        for tokens, n, inflight in phase.get("inflight_levers", []):
            if time.monotonic() > deadline:
                break
            set_length(worker, settings, tokens)
            set_batching(worker, batch.model_copy(update={"max_inflight": inflight}))
            row = backlog(worker, clips, n, f"if{inflight}", 900)
            row.update(output_tokens=tokens, max_inflight=inflight)
            result.setdefault("inflight_lever", []).append(row)
            log(f"max_inflight {inflight}: {row['windows_per_s']} windows/s")
            set_batching(worker, batch)
            save()
        if phase.get("levels") and time.monotonic() < deadline:
            set_length(worker, settings, 512 if not phase.get("cpu") else 8)

            def save_level(rows: list[dict[str, Any]]) -> None:
                result["curve"] = {
                    "output_tokens": 512 if not phase.get("cpu") else 8,
                    "window_s": WINDOW_S,
                    "hop_s": HOP_S,
                    "slo_p95_s": SLO_S,
                    "level_s": phase.get("level_s", 40.0),
                    "skip_s": phase.get("skip_s", 15.0),
                    "levels": rows,
                }
                ok = [
                    r["streams"]
                    for r in rows
                    if r["p95_s"] is not None and r["p95_s"] <= SLO_S and r["errors"] == 0
                ]
                result["curve"]["streams_per_gpu"] = max(ok) if ok else None
                save()

            capacity_curve(
                worker,
                clips,
                phase["levels"],
                phase.get("level_s", 40.0),
                phase.get("skip_s", 15.0),
                deadline,
                save_level,
            )
        result["encoder_total"] = worker_encoder_stats(worker)
        result["captioned_per_replica"] = list(worker.engine.captioned)
        result["batch_sizes_hist"] = (
            np.bincount(worker.batcher.batch_sizes).nonzero()[0].tolist()[-5:]
        )
    finally:
        worker.stop(finish=False, timeout_s=60)
        log("EngineWorker stopped")


# ---------------------------------------------------------------- diagnosis (where is the loss?)


def run_diag(phase: dict[str, Any], model: str, result: dict[str, Any], save: Any) -> None:
    """One AsyncLLM (through CaptionEngine), on this thread's loop, no EngineWorker:

    1. preprocessing cost: ``input_processor.process_inputs`` per window, on the loop (vLLM 0.26
       runs it synchronously inside ``AsyncLLM.add_request``);
    2. raw ``AsyncLLM.generate`` over a backlog (vLLM's async path, no earwitness code);
    3. ``CaptionEngine.caption`` over the same kind of backlog (earwitness's engine, no worker
       thread, no batcher, no poll thread).
    Compare with the offline ceiling and the EngineWorker figures of the other phases.
    """
    from stream.engine.engine import CaptionEngine

    settings = engine_settings(phase, model, warmup_tokens=32)
    result["engine_args"] = settings.engine_args()
    mns = phase["max_num_seqs"]

    async def main() -> None:
        engine = CaptionEngine(settings)
        began = time.monotonic()
        await engine.start()
        result["engine_start_s"] = time.monotonic() - began
        log(f"CaptionEngine ready in {result['engine_start_s']:.1f} s")
        clips = Clips(salt=3)
        try:
            llm = engine._llm
            assert llm is not None
            await asyncio.gather(*(engine.caption(clips.next(), f"w{i}") for i in range(mns)))
            try:
                tasks = await llm.get_supported_tasks()
                sp = sampling(settings, 8)
                costs = []
                for i in range(16):
                    p = prompt(clips.next())
                    t0 = time.perf_counter()
                    llm.input_processor.process_inputs(f"pre{i}", p, sp, supported_tasks=tasks)
                    costs.append(time.perf_counter() - t0)
                result["preprocess_ms"] = {"p50": pct(costs, 50) * 1e3, "max": max(costs) * 1e3}
                log(f"preprocessing per window: {result['preprocess_ms']}")
            except Exception as exc:
                result["preprocess_ms"] = f"unavailable: {exc!r}"
            save()

            async def timed(key: str, label: str, tokens: int, n: int, call: Any) -> None:
                """``n`` concurrent ``call(i, samples)`` on distinct windows; one result row."""
                batch = [clips.next() for _ in range(n)]
                t0 = time.monotonic()
                await asyncio.gather(*(call(i, b) for i, b in enumerate(batch)))
                wall = time.monotonic() - t0
                row = {"output_tokens": tokens, "windows": n, "wall_s": wall}
                row["windows_per_s"] = n / wall
                result.setdefault(key, []).append(row)
                log(f"{label} {tokens} tok: {n / wall:.2f} windows/s")
                save()

            for tokens, n in phase["throughput"]:
                sp = sampling(settings, tokens)

                async def raw(
                    i: int, samples: np.ndarray, sp: Any = sp, tokens: int = tokens
                ) -> None:
                    async for _ in llm.generate(prompt(samples), sp, f"raw{tokens}-{i}"):
                        pass

                async def ours(i: int, samples: np.ndarray, tokens: int = tokens) -> None:
                    await engine.caption(samples, f"ce{tokens}-{i}")

                await timed("raw_asyncllm", "raw AsyncLLM", tokens, n, raw)
                engine._sampling = sp
                await timed("caption_engine", "CaptionEngine", tokens, n, ours)
        finally:
            await engine.stop()

    asyncio.run(main())


# ---------------------------------------------------------------- main


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "host": platform.node()}
    try:
        import torch

        env["torch"] = torch.__version__
        env["cuda"] = torch.version.cuda  # no CUDA init here: the engine process owns the GPU
    except Exception as exc:
        env["torch_error"] = repr(exc)
    import hashlib

    env["code_sha256"] = {
        name: hashlib.sha256((REPO / name).read_bytes()).hexdigest()[:16]
        for name in (
            "stream/engine/engine.py",
            "stream/engine/batcher.py",
            "stream/engine/worker.py",
            "bench/gpu/bench.py",
        )
    }
    for name in ("vllm", "transformers", "triton"):
        try:
            env[name] = __import__(name).__version__
        except Exception as exc:
            env[name] = f"unavailable: {exc!r}"
    return env


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", required=True, choices=sorted(PHASES))
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument(
        "--deadline-epoch",
        type=float,
        default=0.0,
        help="wall-clock (time.time) after which no new measurement starts",
    )
    ap.add_argument(
        "--model-qwen25",
        help="the Qwen2.5-Omni model of the phases with a family (default: MODEL-qwen25)",
    )
    ap.add_argument("--tuned-dir", type=Path, help="tuned fused-MoE configs (default: shipped)")
    args = ap.parse_args()
    global TUNED_DIR  # noqa: PLW0603 - one setting of the harness, read by engine_settings()
    TUNED_DIR = args.tuned_dir or TUNED_DIR
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s: %(message)s")
    phase = PHASES[args.phase]
    model = (args.model_qwen25 or f"{args.model}-qwen25") if phase.get("family") else args.model
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.phase}.json"
    deadline = (
        time.monotonic() + (args.deadline_epoch - time.time())
        if args.deadline_epoch
        else float("inf")
    )
    result: dict[str, Any] = {
        "phase": args.phase,
        "settings": {k: v for k, v in phase.items()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }

    def save() -> None:
        path.write_text(json.dumps(result, indent=1, default=str) + "\n")

    try:
        result["environment"] = environment() if not phase.get("cpu") else {"cpu": True}
        save()
        if phase["mode"] == "offline":
            run_offline(phase, model, result, save)
        elif phase["mode"] == "diag":
            run_diag(phase, model, result, save)
        else:
            run_worker(phase, model, result, save, deadline)
        result["status"] = "ok"
    except BaseException as exc:
        result["status"] = f"error: {exc!r}"
        result["traceback"] = traceback.format_exc()
        log(result["traceback"])
        save()
        return 1
    finally:
        result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
