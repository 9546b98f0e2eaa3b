"""Pipeline overhead: the analyzer through a real broker vs the engine alone, same windows.

    .venv/bin/python bench/pipeline.py [--streams 16] [--seconds 60] [--max-tokens 16]

One engine (vLLM CPU build, tiny random-weight model) serves every measurement, A-B-A:

A. engine alone: every window of the workload handed straight to the engine worker (batcher +
   engine; no Kafka, no windowing): windows/s.
B. pipeline: the same audio, pre-loaded on a Kafka topic as 20 ms frames, consumed by the
   analyzer (decode, windowing, batching, engine, ordering, transactions) until every caption
   event is committed: windows/s, and window-closed → event-visible latency (read_committed).
A. engine alone again: the better of the two A runs is the baseline (drift and a shared
   machine show up as the gap between them).

The last line is ``pipeline_vs_engine=<pipeline windows/s ÷ best engine windows/s>``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from earwitness.events import CaptionEvent
from stream.analyzer import Analyzer
from stream.config import AnalyzerSettings, KafkaSettings
from stream.engine.settings import BatchSettings, EngineSettings
from stream.engine.testmodel import write_test_model
from stream.engine.worker import EngineWorker
from stream.metrics import AnalyzerMetrics
from stream.probes import Health
from stream.topics import ensure_topics
from tests.support.frames import Tone, publish_interleaved
from tests.support.kafka import LocalBroker, unique_name
from windowing import Windower
from windowing.config import WindowSettings
from windowing.wire import decode_frame

WINDOWING = WindowSettings(window_s=30, hop_s=10, idle_timeout_s=600)
BATCH = BatchSettings(max_batch=16, max_wait_ms=50, max_inflight=32, drain_timeout_s=600)


def tones(streams: int, seconds: float) -> list[Tone]:
    return [
        Tone(f"cam-{i:03d}", seconds, amplitude=0.1 + 0.02 * (i % 10), eos=True)
        for i in range(streams)
    ]


def windows_of(workload: list[Tone]) -> list:
    """The windows the analyzer will cut from the workload (same windower, same settings)."""
    windower, out = Windower(WINDOWING), []
    for tone in workload:
        for key, value, headers in tone.records():
            out += windower.push(decode_frame(key, value, headers), 0.0)
    return out + windower.flush_all()


def engine_alone(worker: EngineWorker, windows: list) -> float:
    started = time.monotonic()
    for window in windows:
        worker.submit(window)
    done = 0
    while done < len(windows):
        done += len(worker.take_outcomes())
        time.sleep(0.005)
    return len(windows) / (time.monotonic() - started)


def pipeline(
    worker: EngineWorker,
    bootstrap: str,
    workload: list[Tone],
    expected: int,
    engine: EngineSettings,
) -> tuple[float, float, list[float]]:
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap,
        frames_topic=unique_name("frames"),
        captions_topic=unique_name("captions"),
        group_id=unique_name("bench"),
        new_topic_partitions=4,
        commit_interval_ms=1000,
    )
    settings = AnalyzerSettings(kafka=kafka, windowing=WINDOWING, engine=engine, batch=BATCH)
    ensure_topics(kafka)
    publish_interleaved(bootstrap, kafka.frames_topic, workload)
    health = Health(stall_s=600)
    analyzer = Analyzer(settings, worker, AnalyzerMetrics(), health)
    latencies: list[float] = []
    thread = threading.Thread(target=analyzer.run, name="bench-analyzer")
    launched = time.monotonic()
    thread.start()
    try:
        while not health.assigned:  # init_transactions, group join, changelog restore
            time.sleep(0.01)
        started = time.monotonic()
        received = _receive(bootstrap, kafka.captions_topic, expected, latencies)
        elapsed = time.monotonic() - started
    finally:
        analyzer.stop()
        thread.join(600)
    assert received == expected, f"{received} of {expected} events"
    return expected / elapsed, started - launched, latencies


def _receive(bootstrap: str, topic: str, expected: int, latencies: list[float]) -> int:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("r"),
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    received, deadline = 0, time.monotonic() + 1800
    try:
        while received < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            event = CaptionEvent.from_json(msg.value())
            latencies.append((time.time_ns() - event.timings.window_closed_ns) / 1e9)
            received += 1
    finally:
        consumer.close()
    return received


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument(
        "--engine-process",
        action="store_true",
        help="vLLM's engine core in its own process (the GPU arrangement), not in-process",
    )
    args = parser.parse_args()
    workload = tones(args.streams, args.seconds)
    windows = windows_of(workload)
    with tempfile.TemporaryDirectory() as tmp:
        model = write_test_model(Path(tmp) / "model")
        engine = EngineSettings(
            model=str(model),
            load_format="dummy",
            dtype="bfloat16",
            enforce_eager=True,
            max_model_len=1024,
            max_tokens=args.max_tokens,
            ignore_eos=True,
            cpu_kv_cache_bytes=512 * 2**20,
            max_num_seqs=BATCH.max_inflight,
            vllm_env={"VLLM_ENABLE_V1_MULTIPROCESSING": "1" if args.engine_process else "0"},
        )
        broker = LocalBroker(Path(tmp) / "kafka")
        bootstrap = broker.start()
        worker = EngineWorker(engine, BATCH, lambda w: f"{w.stream_id}/{w.segment_id}/{w.index}")
        worker.start(timeout_s=900)
        try:
            engine_alone(worker, windows)  # warm-up: the whole workload once
            marks = [worker.batcher.batches]
            engine_before = engine_alone(worker, windows)
            marks.append(worker.batcher.batches)
            pipe_rate, startup_s, latencies = pipeline(
                worker, bootstrap, workload, len(windows), engine
            )
            marks.append(worker.batcher.batches)
            engine_after = engine_alone(worker, windows)
            sizes = list(worker.batcher.batch_sizes)[-(marks[2] - marks[1]) :]
            mean_batch = [len(windows) / max(1, b - a) for a, b in itertools.pairwise(marks)]
            print(
                f"mean batch: engine A1 {mean_batch[0]:.1f}, pipeline {mean_batch[1]:.1f} "
                f"(max_batch {BATCH.max_batch}); pipeline batches {sizes[:24]}"
            )
        finally:
            worker.stop(finish=False)
            broker.stop()
    report(
        args,
        len(windows),
        engine_rates=(engine_before, engine_after),
        pipe_rate=pipe_rate,
        startup_s=startup_s,
        latencies=latencies,
    )
    return 0


def report(
    args: argparse.Namespace,
    n: int,
    *,
    engine_rates: tuple[float, float],
    pipe_rate: float,
    startup_s: float,
    latencies: list[float],
) -> None:
    engine_rate = max(engine_rates)
    p50, p95 = np.percentile(latencies, [50, 95])
    print(
        f"workload: {args.streams} streams x {args.seconds:g} s (16 kHz mono s16, 20 ms frames), "
        f"window 30 s / hop 10 s -> {n} windows; {args.max_tokens} output tokens/window; "
        f"cpu cores {os.cpu_count()}"
    )
    print(f"{'path':<34}{'windows/s':>10}{'p50 s':>8}{'p95 s':>8}")
    print(f"{'engine alone (batcher + vLLM), A1':<34}{engine_rates[0]:>10.2f}{'-':>8}{'-':>8}")
    print(f"{'pipeline (Kafka + analyzer, EOS)':<34}{pipe_rate:>10.2f}{p50:>8.2f}{p95:>8.2f}")
    print(f"{'engine alone (batcher + vLLM), A2':<34}{engine_rates[1]:>10.2f}{'-':>8}{'-':>8}")
    print("latency: window closed (analyzer wall clock) -> event visible to read_committed;")
    print("         the topic was pre-loaded, so it includes queueing behind earlier windows.")
    print(
        f"pipeline windows/s are timed from partition assignment; before it, {startup_s:.1f} s of"
    )
    print("         start-up (init_transactions, group join, changelog restore) are not counted.")
    print(f"pipeline_vs_engine={pipe_rate / engine_rate:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
