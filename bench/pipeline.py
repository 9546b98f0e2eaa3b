"""Pipeline overhead: the analyzer through a real broker vs the engine alone, same windows.

    .venv/bin/python bench/pipeline.py [--streams 16] [--seconds 60] [--max-tokens 16]

One engine (vLLM CPU build, tiny random-weight model) serves both measurements, in this order:

1. engine alone: every window of the workload handed straight to the engine worker (batcher +
   engine; no Kafka, no windowing): windows/s.
2. pipeline: the same audio, pre-loaded on a Kafka topic as 20 ms frames, consumed by the
   analyzer (decode, windowing, batching, engine, ordering, transactions) until every caption
   event is committed: windows/s, and window-closed → event-visible latency (read_committed).

The last line is ``pipeline_vs_engine=<pipeline windows/s ÷ engine windows/s>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream.analyzer import Analyzer
from stream.config import AnalyzerSettings, BatchSettings, KafkaSettings
from stream.engine import EngineSettings
from stream.events import CaptionEvent
from stream.http import Health
from stream.metrics import AnalyzerMetrics
from stream.testmodel import write_test_model
from stream.topics import ensure_topics
from stream.worker import EngineWorker
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
) -> tuple[float, list[float]]:
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap,
        input_topic=unique_name("frames"),
        output_topic=unique_name("captions"),
        group_id=unique_name("bench"),
        new_topic_partitions=4,
        commit_interval_ms=200,
    )
    settings = AnalyzerSettings(kafka=kafka, windowing=WINDOWING, engine=engine, batch=BATCH)
    ensure_topics(kafka)
    publish_interleaved(bootstrap, kafka.input_topic, workload)
    analyzer = Analyzer(settings, worker, AnalyzerMetrics(), Health(stall_s=600))
    latencies: list[float] = []
    started = time.monotonic()
    thread = threading.Thread(target=analyzer.run, name="bench-analyzer")
    thread.start()
    try:
        received = _receive(bootstrap, kafka.output_topic, expected, latencies)
    finally:
        analyzer.stop()
        thread.join(600)
    elapsed = time.monotonic() - started
    assert received == expected, f"{received} of {expected} events"
    return expected / elapsed, latencies


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
            vllm_env={"VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
        )
        broker = LocalBroker(Path(tmp) / "kafka")
        bootstrap = broker.start()
        worker = EngineWorker(engine, BATCH, lambda w: f"{w.stream_id}/{w.segment_id}/{w.index}")
        worker.start(timeout_s=900)
        try:
            engine_alone(worker, windows[: BATCH.max_batch])  # warm-up: a full batch
            engine_rate = engine_alone(worker, windows)
            pipe_rate, latencies = pipeline(worker, bootstrap, workload, len(windows), engine)
        finally:
            worker.stop(finish=False)
            broker.stop()
    report(args, len(windows), engine_rate, pipe_rate, latencies)
    return 0


def report(
    args: argparse.Namespace, n: int, engine_rate: float, pipe_rate: float, latencies: list[float]
) -> None:
    p50, p95 = np.percentile(latencies, [50, 95])
    print(
        f"workload: {args.streams} streams x {args.seconds:g} s (16 kHz mono s16, 20 ms frames), "
        f"window 30 s / hop 10 s -> {n} windows; {args.max_tokens} output tokens/window; "
        f"cpu cores {os.cpu_count()}"
    )
    print(f"{'path':<34}{'windows/s':>10}{'p50 s':>8}{'p95 s':>8}")
    print(f"{'engine alone (batcher + vLLM)':<34}{engine_rate:>10.2f}{'-':>8}{'-':>8}")
    print(f"{'pipeline (Kafka + analyzer, EOS)':<34}{pipe_rate:>10.2f}{p50:>8.2f}{p95:>8.2f}")
    print("latency: window closed (analyzer wall clock) -> event visible to read_committed;")
    print("         the topic was pre-loaded, so it includes queueing behind earlier windows.")
    print(f"pipeline_vs_engine={pipe_rate / engine_rate:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
