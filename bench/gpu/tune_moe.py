"""Tune vLLM's Triton fused-MoE tiles for the captioner's MoE, per-tensor FP8, on this GPU.

Runs THERE (the borrowed GPU, vLLM 0.26 staged by ``bench/gpu/stage.sh``); never imported by
tests or CI. The shape is Qwen3-Omni-30B-A3B's thinker: E=128 experts, top-8, hidden K=2048,
``moe_intermediate_size`` N=768; ``quantization: fp8`` gives per-tensor ``fp8_w8a8`` weights and
dynamic per-tensor activations, for which vLLM 0.26 ships no H200 config (it logs "Config file
not found ... dtype=fp8_w8a8" and uses ``get_default_config``)::

    python3 bench/gpu/tune_moe.py --out DIR [--budget-s 300] [--workers 12]

writes ``DIR/moe-configs/<get_config_file_name(128, 768, "fp8_w8a8")>`` (on an H200:
``E=128,N=768,device_name=NVIDIA_H200,dtype=fp8_w8a8.json``), the file vLLM's
``get_moe_configs`` reads from ``VLLM_TUNED_CONFIG_FOLDER``, and ``DIR/tune_moe.json`` (every
timing). For a batch of M tokens vLLM takes the entry whose key is nearest to M.

Method, a smaller search than vLLM's ``benchmark_moe.py --tune`` (written for minutes, not hours):

1. candidates: the tiles vLLM ships for the nearest H200 shapes (E=128 N=768 BF16 and block
   FP8, E=128 N=512/1024 per-tensor FP8), vLLM's default for each M, and a coarse grid; each M
   gets those whose BLOCK_SIZE_M suits the tokens per expert (M x 8 / 128).
2. compile: ``--workers`` processes run every candidate once at each of its M (Triton JIT,
   cached on disk in ``TRITON_CACHE_DIR``); nothing is timed there. A candidate that fails
   (shared memory, registers) is dropped.
3. time: this process alone on the GPU. For each M and candidate, ``fused_experts`` (activation
   quantisation, expert alignment, both grouped GEMMs, the sum: one MoE layer's expert work) is
   captured REPS times in a CUDA graph and replayed TRIALS times; the median per call counts.
   Random bf16 activations, random routing logits, random FP8 weights with per-expert scales,
   a fresh set per M. A candidate replaces vLLM's default for an M only if it is more than
   ``--noise`` faster; otherwise the default is written for that M, so the file is never slower
   than no file at any M (within the noise).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

E, N, K, TOP_K = 128, 768, 2048, 8
BATCHES = [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 768, 1024, 1536, 2048, 3072,
           4096, 8192, 16384]  # fmt: skip
REPS, TRIALS = 10, 5
KEYS = ("BLOCK_SIZE_M", "BLOCK_SIZE_N", "BLOCK_SIZE_K", "GROUP_SIZE_M", "num_warps", "num_stages")
NEIGHBOURS = [
    "E=128,N=768,device_name=NVIDIA_H200.json",
    "E=128,N=768,device_name=NVIDIA_H200,dtype=fp8_w8a8,block_shape=[128,128].json",
    "E=128,N=512,device_name=NVIDIA_H200,dtype=fp8_w8a8.json",
    "E=128,N=1024,device_name=NVIDIA_H200,dtype=fp8_w8a8.json",
]

Config = tuple[int, ...]  # values in KEYS order


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def as_dict(cfg: Config) -> dict[str, int]:
    return dict(zip(KEYS, cfg, strict=True))


def as_tuple(cfg: dict[str, Any]) -> Config:
    return tuple(int(cfg[k]) for k in KEYS)


def block_m_for(m: int) -> set[int]:
    """BLOCK_SIZE_M worth trying at M tokens (each expert gets ~M x 8 / 128 rows)."""
    if m <= 128:
        return {16}
    if m <= 512:
        return {16, 32, 64}
    if m <= 2048:
        return {32, 64, 128}
    return {64, 128}


def grid() -> set[Config]:
    """84 tiles: GROUP_SIZE_M matters only with several M blocks per expert (BLOCK_SIZE_M >= 64
    at large M); a 256-long K tile only for the smallest batches (hides the weight loads)."""
    out: set[Config] = set()
    for bm, bn, warps, stages in itertools.product(
        (16, 32, 64, 128), (64, 128, 256), (4, 8), (3, 4)
    ):
        for gm in (1, 16) if bm >= 64 else (1,):
            out.add((bm, bn, 128, gm, warps, stages))
        if bm <= 16:
            out.add((bm, bn, 256, 1, warps, stages))
    return out


def neighbours() -> set[Config]:
    import vllm.model_executor.layers.fused_moe as fm

    folder = Path(fm.__file__).parent / "configs"
    out = set()
    for name in NEIGHBOURS:
        path = folder / name
        if path.exists():
            for key, cfg in json.loads(path.read_text()).items():
                if key != "triton_version":
                    out.add(as_tuple(cfg))
    return out


def default_for(m: int) -> Config:
    from vllm.model_executor.layers.fused_moe.fused_moe import get_default_config

    return as_tuple(get_default_config(m, E, N, K, TOP_K, "fp8_w8a8", None))


def plan(batches: list[int]) -> dict[int, list[Config]]:
    """Per M, the candidates to time (vLLM's default first)."""
    pool = grid() | neighbours()
    out = {}
    for m in batches:
        default = default_for(m)
        rest = sorted(c for c in pool if c[0] in block_m_for(m) and c != default)
        out[m] = [default, *rest]
    return out


def inputs(m: int, seed: int) -> tuple[Any, ...]:
    """Random activations, routing and FP8 weights (per-expert scales), on the GPU."""
    import torch
    from vllm.model_executor.layers.fused_moe import fused_topk
    from vllm.model_executor.layers.fused_moe.config import fp8_w8a8_moe_quant_config

    gen = torch.Generator(device="cuda").manual_seed(seed)
    fp8 = torch.float8_e4m3fn

    def weight(*shape: int) -> Any:  # spread over the FP8 range (max 448)
        w = torch.randn(*shape, device="cuda", generator=gen, dtype=torch.bfloat16) * 64
        return w.clamp(-448, 448).to(fp8)

    x = torch.randn(m, K, device="cuda", generator=gen, dtype=torch.bfloat16)
    logits = torch.randn(m, E, device="cuda", generator=gen, dtype=torch.float32)
    w1, w2 = weight(E, 2 * N, K), weight(E, K, N)
    s1 = torch.rand(E, device="cuda", generator=gen, dtype=torch.float32) * 1e-3 + 1e-4
    s2 = torch.rand(E, device="cuda", generator=gen, dtype=torch.float32) * 1e-3 + 1e-4
    topk_w, topk_ids, _ = fused_topk(x, logits, TOP_K, renormalize=True)
    return x, w1, w2, topk_w, topk_ids, fp8_w8a8_moe_quant_config(w1_scale=s1, w2_scale=s2)


def run_once(cfg: Config, args: tuple[Any, ...]) -> Any:
    from vllm.model_executor.layers.fused_moe import fused_experts, override_config

    x, w1, w2, topk_w, topk_ids, qc = args
    with override_config(as_dict(cfg)):
        return fused_experts(x, w1, w2, topk_w, topk_ids, quant_config=qc)


def vllm_context() -> Any:
    """vLLM's current-config context (its custom ops read it); a no-op if it cannot be made."""
    import contextlib

    try:
        from vllm.config import VllmConfig, set_current_vllm_config

        return set_current_vllm_config(VllmConfig())
    except Exception as exc:
        log(f"no vLLM config context: {exc!r}")
        return contextlib.nullcontext()


def compile_worker(job: tuple[int, list[tuple[int, list[Config]]]]) -> dict[str, str]:
    """Run each (M, candidates) once: fills Triton's disk cache. Returns failures."""
    import torch

    wid, work = job
    failed: dict[str, str] = {}
    with vllm_context():
        for m, cfgs in work:
            args = inputs(m, seed=wid)
            for cfg in cfgs:
                if str(cfg) in failed:
                    continue
                try:
                    run_once(cfg, args)
                    torch.cuda.synchronize()
                except Exception as exc:
                    failed[str(cfg)] = f"{type(exc).__name__}: {str(exc)[:200]}"
            del args
            torch.cuda.empty_cache()
    return failed


def precompile(todo: dict[int, list[Config]], workers: int, timeout_s: float) -> dict[str, str]:
    """Spread the candidates over ``workers`` processes, each compiling its own share at every
    M it is timed at (Triton specialises on sizes, so one M per config is not enough)."""
    configs = sorted({c for cfgs in todo.values() for c in cfgs})
    shares: list[list[tuple[int, list[Config]]]] = [[] for _ in range(workers)]
    owner = {c: i % workers for i, c in enumerate(configs)}
    for m, cfgs in todo.items():
        for w in range(workers):
            mine = [c for c in cfgs if owner[c] == w]
            if mine:
                shares[w].append((m, mine))
    ctx = mp.get_context("spawn")
    failed: dict[str, str] = {}
    with ctx.Pool(workers) as pool:
        job = pool.map_async(compile_worker, list(enumerate(shares)))
        try:
            for part in job.get(timeout=timeout_s):
                failed.update(part)
        except mp.TimeoutError:  # a worker died or hung: time what compiled, JIT the rest
            log(f"precompile did not finish in {timeout_s:.0f} s; going on without it")
            pool.terminate()
    return failed


def time_config(cfg: Config, args: tuple[Any, ...]) -> float:
    """Median µs per fused_experts call, CUDA-graph replay of REPS calls, TRIALS times."""
    import torch

    run_once(cfg, args)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(REPS):
            run_once(cfg, args)
    torch.cuda.synchronize()
    graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(TRIALS):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / REPS)
    del graph
    return statistics.median(times)


def check(cfg: Config, default: Config, args: tuple[Any, ...]) -> float:
    """Relative difference of ``cfg``'s output from the default tiles' (same inputs)."""
    ref = run_once(default, args).float()
    out = run_once(cfg, args).float()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-12))


def tune(todo: dict[int, list[Config]], failed: dict[str, str], deadline: float, noise: float):
    import torch

    best: dict[int, Config] = {}
    rows: dict[str, Any] = {}
    with vllm_context():
        for m, cfgs in todo.items():
            default = cfgs[0]
            if time.monotonic() > deadline:
                log(f"M={m}: deadline, vLLM's default kept")
                best[m] = default
                continue
            args = inputs(m, seed=10_000 + m)
            timed: dict[Config, float] = {}
            for cfg in cfgs:
                if str(cfg) in failed:
                    continue
                try:
                    timed[cfg] = time_config(cfg, args)
                except Exception as exc:
                    failed[str(cfg)] = f"{type(exc).__name__}: {str(exc)[:200]}"
            base = timed.get(default)
            winner = min(timed, key=timed.__getitem__) if timed else default
            if base is not None and timed[winner] > base * (1 - noise):
                winner = default
            err = check(winner, default, args) if winner != default else 0.0
            if not err <= 1e-2 or math.isnan(err):  # NaN never passes
                log(f"M={m}: winner {winner} differs from the default by {err:.2e}; default kept")
                winner = default
            best[m] = winner
            rows[str(m)] = {
                "default": as_dict(default),
                "default_us": base,
                "best": as_dict(winner),
                "best_us": timed.get(winner),
                "candidates_timed": len(timed),
                "rel_diff_vs_default": err,
                "top5": [
                    {"config": as_dict(c), "us": t}
                    for c, t in sorted(timed.items(), key=lambda kv: kv[1])[:5]
                ],
            }
            gain = f"{base / timed[winner]:.3f}x" if base and winner in timed else "n/a"
            log(f"M={m}: default {base} us, best {timed.get(winner)} us ({gain}) {winner}")
            del args
            torch.cuda.empty_cache()
    return best, rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=300.0, help="stop timing new M after this")
    ap.add_argument("--workers", type=int, default=12, help="compile processes")
    ap.add_argument("--noise", type=float, default=0.02, help="least gain that replaces default")
    ap.add_argument("--batches", type=str, default=",".join(map(str, BATCHES)))
    args = ap.parse_args()
    began = time.monotonic()
    deadline = began + args.budget_s
    os.environ.setdefault("TRITON_CACHE_DIR", "/root/ew/triton-cache")
    import torch
    from vllm.model_executor.layers.fused_moe import get_config_file_name

    batches = [int(b) for b in args.batches.split(",")]
    todo = plan(batches)
    n_cfg = len({c for cfgs in todo.values() for c in cfgs})
    log(f"{torch.cuda.get_device_name()}: {n_cfg} candidates, {sum(map(len, todo.values()))} "
        f"(M, candidate) pairs over {len(batches)} batch sizes")  # fmt: skip
    failed = precompile(todo, args.workers, timeout_s=0.6 * args.budget_s)
    log(f"compiled in {time.monotonic() - began:.0f} s; {len(failed)} candidates failed")
    best, rows = tune(todo, failed, deadline, args.noise)
    name = get_config_file_name(E, N, "fp8_w8a8")
    folder = args.out / "moe-configs"
    folder.mkdir(parents=True, exist_ok=True)
    import triton

    table: dict[str, Any] = {"triton_version": triton.__version__}
    table.update({str(m): as_dict(cfg) for m, cfg in sorted(best.items())})
    (folder / name).write_text(json.dumps(table, indent=4) + "\n")
    report = {
        "device": torch.cuda.get_device_name(),
        "file": name,
        "shape": {"E": E, "N": N, "K": K, "top_k": TOP_K, "dtype": "fp8_w8a8"},
        "method": {"reps": REPS, "trials": TRIALS, "noise": args.noise, "workers": args.workers},
        "candidates": n_cfg,
        "failed": failed,
        "wall_s": time.monotonic() - began,
        "per_m": rows,
    }
    (args.out / "tune_moe.json").write_text(json.dumps(report, indent=1) + "\n")
    log(f"wrote {folder / name} in {report['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
