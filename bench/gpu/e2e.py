"""End-to-end capacity: live streams → Kafka → ``earwitness analyze`` → captions, read_committed.

Runs THERE (the borrowed GPU, from ``run_all.sh``) or here on CPU as a dry run; never imported by
tests or CI. One phase per process::

    python3 bench/gpu/e2e.py --phase e2e_fp8_tuned --model /root/ew/model --out RES
    python3 bench/gpu/e2e.py --phase cpu_smoke_e2e --model .cache/test-model --out /tmp/ew

What it runs, each with an owner that stops it (``finally``, in reverse order):

1. a Kafka broker, ``scripts/kafka-local start --dir OUT/kafka-<phase>`` (needs ``java``: on the
   GPU machine the runtime ``stage.sh`` made with jlink), or ``--bootstrap`` for a running one;
2. the analyzers (``fleet.py``: one, or for the scale-out phases N in one consumer group, one per
   GPU or one on two GPUs with tensor parallelism; a joining one starts as its level begins),
   each the real CLI, ``python3 -m earwitness.cli analyze --config C`` in its own
   process session, where C is ``examples/analyzer-gpu.yaml`` with only these fields changed:
   broker, topic and group names, HTTP port, the model directory, random weights
   (``load_format: dummy``), fixed-length captions (``ignore_eos`` + ``max_tokens``),
   ``drain_timeout_s``, vLLM's stats log, and (tuned phases) ``VLLM_TUNED_CONFIG_FOLDER``; the CPU
   dry run also swaps the GPU-only engine fields for the CPU ones and shortens the windows;
3. once ``/readyz`` answers 200: ``loadgen.LiveStreams`` (N live streams, 20 ms frames, real
   time, levels rising as in the engine-only curve) and ``loadgen.CaptionReader``.

Each level's row is computed when the next level ends (windows still missing count with their
age); the curve stops after the level that follows the first level over the SLO, then drains
for up to ``drain_s``. ``streams_per_gpu_end_to_end`` = the largest level with p95 ≤ 15 s and no
error events (divided by the GPUs for a fleet; ``streams_end_to_end`` is the whole fleet's:
the scaling ratio is ``streams_end_to_end`` of ``e2e_fp8_dpN`` over N x that of ``e2e_fp8``, same
machine and run). ``reader.duplicates`` counts windows seen twice (read_committed: must be 0).
Writes ``OUT/<phase>.json``, each analyzer's log and its last /metrics.
"""

# ruff: noqa: PLR0917 - a benchmark harness
from __future__ import annotations

import argparse
import json
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from fleet import Broker, Fleet  # noqa: E402
from loadgen import CaptionReader, LiveStreams, Schedule, level_row  # noqa: E402

SLO_S = 15.0
GPU_ENGINE = {"load_format": "dummy", "ignore_eos": True, "max_tokens": 512, "log_stats": True}
CPU_ENGINE = {
    "load_format": "dummy",
    "ignore_eos": True,
    "max_tokens": 8,
    "quantization": None,
    "dtype": "bfloat16",
    "enforce_eager": True,
    "cpu_kv_cache_bytes": 256 << 20,
    "limit_mm_per_prompt": {"audio": 1, "image": 0, "video": 0},
    "max_num_seqs": 4,
    "max_num_batched_tokens": None,
    "max_cudagraph_capture_size": None,
    "max_model_len": 1024,
    "warmup_windows": 2,
    "vllm_env": {},
}
CPU_WINDOWING = {"window_s": 4.0, "hop_s": 2.0}
CPU_BATCH = {
    "max_batch": 4,
    "max_wait_ms": 100,
    "max_inflight": 8,
    "pause_queued_windows": 16,
    "resume_queued_windows": 8,
}
PHASES: dict[str, dict[str, Any]] = {
    # examples/analyzer-gpu.yaml as it is (FP8, mns 512, mnbt 32768, graphs <= 1024, batches of
    # 64 / 500 ms), with ("tuned") or without the shipped tuned fused-MoE config (moe-configs/).
    "e2e_fp8_tuned": {"levels": [224, 256, 288], "tuned": True},
    # Session 5: default tiles, levels with session 4's knee (< 224) inside; engine-only twin:
    # bench.py's worker_fp8_twin (same settings, same levels, same machine).
    "e2e_fp8": {"levels": [160, 192, 224, 256], "tuned": False},
    # Scale-out (issue 22): data parallel through the consumer group, one analyzer per GPU, and
    # tensor parallel, one analyzer on two GPUs. Levels start at N x one GPU's passing level.
    "e2e_fp8_dp2": {"levels": [448, 512, 576], "analyzers": 2, "gpus": 2, "partitions": 16},
    "e2e_fp8_dp4": {"levels": [896, 1024, 1152], "analyzers": 4, "gpus": 4, "partitions": 32},
    # A rebalance under load: one analyzer carries what one GPU can; the second starts with the
    # curve and joins the group when warm (minutes), in one of the equal levels (its p95 is the
    # p95 during the move); the last level doubles the load onto both. read_committed: no
    # window twice.
    "e2e_fp8_dp2_join": {
        "levels": [192, 192, 192, 192, 384],
        "analyzers": 2,
        "join_level": 0,
        "gpus": 2,
        "partitions": 16,
        "level_s": 90.0,
        "skip_s": 10.0,
    },
    "e2e_fp8_tp2": {
        "levels": [256, 320, 384, 448],
        "gpus": 2,
        "engine": {"tensor_parallel_size": 2},
    },
    "e2e_bf16_tp2": {
        "levels": [128, 192, 256, 320],
        "gpus": 2,
        "engine": {"tensor_parallel_size": 2, "quantization": None},
    },
    "cpu_smoke_e2e": {
        "levels": [2, 4],
        "level_s": 16.0,
        "skip_s": 6.0,
        "lead_s": 3.0,
        "drain_s": 40.0,
        "cpu": True,
        "windowing": CPU_WINDOWING,
        "batch": CPU_BATCH,
    },
    # The scale-out harness dry-run here: two CPU analyzers, the second joining under load.
    "cpu_smoke_dp2_join": {
        "levels": [2, 2, 2, 2, 2, 4],
        "level_s": 60.0,
        "skip_s": 6.0,
        "lead_s": 3.0,
        "drain_s": 60.0,
        "cpu": True,
        "analyzers": 2,
        "join_level": 0,
        "partitions": 4,
        "windowing": CPU_WINDOWING,
        "batch": CPU_BATCH,
    },
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            merge(out[key], value)
            if isinstance(value, dict)
            and isinstance(out.get(key), dict)
            and key != "limit_mm_per_prompt"
            else value
        )
    return out


def analyzer_config(
    phase: dict[str, Any], name: str, model: str, bootstrap: str, port: int, tuned: Path | None
) -> dict[str, Any]:
    """examples/analyzer-gpu.yaml with the fields the module docstring lists changed."""
    base = yaml.safe_load((REPO / "examples" / "analyzer-gpu.yaml").read_text())
    tag = f"{name}-{int(time.time())}"
    engine = dict(CPU_ENGINE if phase.get("cpu") else GPU_ENGINE, model=model)
    engine.update(phase.get("engine", {}))
    if not phase.get("cpu"):
        vllm_env: dict[str, str] = dict(base["engine"].get("vllm_env", {}))
        vllm_env.pop("VLLM_TUNED_CONFIG_FOLDER", None)
        if tuned is not None:
            vllm_env["VLLM_TUNED_CONFIG_FOLDER"] = str(tuned)
        engine["vllm_env"] = vllm_env
    over = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "frames_topic": f"e2e.frames.{tag}",
            "captions_topic": f"e2e.captions.{tag}",
            "group_id": f"e2e-{tag}",
            "new_topic_partitions": phase.get("partitions", 1),
        },
        "engine": engine,
        "http": {"host": "127.0.0.1", "port": port},
        "batch": {"drain_timeout_s": 5, **phase.get("batch", {})},
        "windowing": phase.get("windowing", {}),
    }
    return merge(base, over)


def run_curve(
    phase: dict[str, Any],
    settings: Any,
    cfg: dict[str, Any],
    bootstrap: str,
    deadline: float,
    save: Any,
    on_level: Any = lambda k: None,
) -> dict[str, Any]:
    """Levels back to back until the stop rule or the deadline; returns the curve.
    ``on_level(k)`` is called as level k begins (an analyzer joins there)."""
    levels, level_s = phase["levels"], phase.get("level_s", 40.0)
    lead_s = phase.get("lead_s", 10.0)
    win = settings.windowing
    t0 = time.time_ns() + int((lead_s + 1.0) * 1e9)
    schedule = Schedule(
        levels, level_s, phase.get("skip_s", 15.0), win.window_s, win.hop_s, t0, lead_s
    )
    client = {"bootstrap.servers": bootstrap}
    gen = LiveStreams(
        {
            **client,
            "linger.ms": 5,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "acks": "all",
        },
        cfg["kafka"]["frames_topic"],
        schedule,
        levels[-1],
    )
    reader = CaptionReader({**client, "group.id": f"reader-{t0}"}, cfg["kafka"]["captions_topic"])
    curve: dict[str, Any] = {
        "levels": [],
        "level_starts": [schedule.level_start_ns(k) / 1e9 for k in range(len(levels) + 1)],
        "level_s": level_s,
        "skip_s": schedule.skip_s,
        "window_s": win.window_s,
        "hop_s": win.hop_s,
        "slo_p95_s": SLO_S,
        "lead_s": lead_s,
    }
    reader.start()
    gen.start()
    stop_after = None
    try:
        for k in range(len(levels)):
            end_ns = schedule.level_start_ns(k + 1)
            log(f"level {levels[k]} streams ({k + 1}/{len(levels)})")
            on_level(k)
            while time.time_ns() < end_ns:
                time.sleep(0.2)
            if k >= 1:
                row = level_row(schedule, k - 1, reader, time.time_ns(), SLO_S)
                curve["levels"].append(row)
                log(
                    f"level {row['streams']}: p50 {row['p50_s']} p95 {row['p95_s']} "
                    f"pending {row['pending_at_report']} errors {row['errors']}"
                )
                save(curve, gen, reader)
                if not row["ok"] and stop_after is None:
                    stop_after = k
            if (stop_after is not None and k >= stop_after) or time.monotonic() > deadline:
                break
        last = len(curve["levels"])
        gen.stop()
        drain_until = time.monotonic() + phase.get("drain_s", 60.0)
        while time.monotonic() < drain_until and last < len(levels):
            row = level_row(schedule, last, reader, time.time_ns(), SLO_S)
            if row["pending_at_report"] == 0:
                break
            time.sleep(1.0)
        if last < len(levels):
            row = level_row(schedule, last, reader, time.time_ns(), SLO_S)
            row["final"] = True
            curve["levels"].append(row)
            log(f"level {row['streams']}: p50 {row['p50_s']} p95 {row['p95_s']} (final)")
    finally:
        gen.stop()
        reader.stop()
    ok = [r["streams"] for r in curve["levels"] if r["ok"]]
    curve["streams_per_gpu_end_to_end"] = max(ok) if ok else None
    save(curve, gen, reader)
    return curve


def run_phase(
    name: str, phase: dict[str, Any], args: argparse.Namespace, result: dict[str, Any], save: Any
) -> None:
    from stream.config import AnalyzerSettings

    deadline = (
        time.monotonic() + (args.deadline_epoch - time.time()) if args.deadline_epoch else 1e18
    )
    tuned = None
    if phase.get("tuned"):
        tuned = HERE / "moe-configs"  # the shipped output of tune_moe.py
        if not any(tuned.glob("E=128,N=768,*fp8_w8a8.json")):
            raise FileNotFoundError(f"no tuned fused-MoE config in {tuned}")
        result["tuned_moe_config"] = str(tuned)
    broker = Broker(args.out, name, args.bootstrap)
    count, join_level = phase.get("analyzers", 1), phase.get("join_level")
    fleet: Fleet | None = None
    try:
        bootstrap = broker.start()
        log(f"broker {bootstrap}")
        ports = [free_port() for _ in range(count)]
        cfg = analyzer_config(phase, name, args.model, bootstrap, ports[0], tuned)
        settings = AnalyzerSettings.model_validate(cfg)
        result["analyzer_config"] = cfg
        gpus = None if phase.get("cpu") else phase.get("gpus", 1)
        fleet = Fleet(cfg, args.out, name, ports, gpus)
        at_start = count if join_level is None else 1
        for i in range(at_start):
            log(f"analyzer {i} ready in {fleet.start(i, args.ready_timeout_s):.0f} s")
        result["analyzer_ready_s"] = fleet.ready_s[0]

        def on_level(k: int) -> None:
            if k == join_level:
                for i in range(at_start, count):
                    log(f"analyzer {i} joins the group at level {k}")
                    fleet.join(i, args.ready_timeout_s)

        def save_curve(curve: dict[str, Any], gen: LiveStreams, reader: CaptionReader) -> None:
            result["curve"] = curve
            result["loadgen"] = {
                "frames_sent": gen.frames_sent,
                "errors": gen.errors,
                "max_behind_ms": gen.max_behind_ms,
            }
            result["reader"] = {
                "events": len(reader.seen),
                "duplicates": reader.duplicates,
                "errors": reader.errors[:20],
            }
            starts = curve["level_starts"]
            result["fleet"] = {
                "analyzers": count,
                "ready_s": fleet.ready_s,
                "joined_at": fleet.joined_at,
                "join_errors": fleet.join_errors,
                # the level during which each joining analyzer's consumer joined the group
                "joined_in_level": {
                    i: sum(1 for t in starts[1:] if t <= at) for i, at in fleet.ready_at.items()
                },
            }
            save()

        curve = run_curve(phase, settings, cfg, bootstrap, deadline, save_curve, on_level)
        # Fleet phases: the curve's levels are the whole fleet's; per GPU divides by the GPUs.
        curve["gpus"] = gpus or 1
        curve["streams_end_to_end"] = total = curve["streams_per_gpu_end_to_end"]
        curve["streams_per_gpu_end_to_end"] = None if total is None else total / (gpus or 1)
        save()
        for i, text in fleet.metrics().items():
            (args.out / f"{name}.metrics{'' if i == 0 else f'-{i}'}.txt").write_text(text)
    finally:
        if fleet is not None:
            exits = fleet.stop()
            result["analyzer_exit"] = exits[0]
            result["analyzer_exits"] = exits
        broker.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", required=True, choices=sorted(PHASES))
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--bootstrap", help="use this broker instead of starting one")
    ap.add_argument("--ready-timeout-s", type=float, default=600.0)
    ap.add_argument("--deadline-epoch", type=float, default=0.0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.phase}.json"
    result: dict[str, Any] = {
        "phase": args.phase,
        "settings": PHASES[args.phase],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }

    def save() -> None:
        path.write_text(json.dumps(result, indent=1, default=str) + "\n")

    try:
        run_phase(args.phase, PHASES[args.phase], args, result, save)
        result["status"] = "ok"
    except BaseException as exc:
        result["status"] = f"error: {exc!r}"
        result["traceback"] = traceback.format_exc()
        log(result["traceback"])
        return 1
    finally:
        result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
