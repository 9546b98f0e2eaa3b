"""Benchmark of ``earwitness export``: caption events → Parquet, captions/s per core, and the
size of the files per million captions, against a naive baseline in the same run.

    .venv/bin/python bench/export.py [--captions 200000] [--streams 200] [--rows-per-file 100000]
        [--repeat 3] [--bootstrap HOST:PORT]

Events are realistic version-2 caption events (``frames``, ``analyzer``, token counts; captions
of 8-40 words from a small vocabulary, 200 streams on a 30 s / 10 s grid). Measured:

* **pipeline**: the exporter's own code on the records, in this process: decode into the
  partition buffer (``export/buffer.py``), Arrow tables, then the whole commit order of
  ``export/commit.py`` to a local directory (staging, manifest, publish, fsync) every
  ``--rows-per-file`` rows. captions/s per core = captions ÷ CPU seconds of the process, best
  of ``--repeat`` runs interleaved with the baseline's (the host is shared).
* **baseline**: the same, decoding the obvious way (pydantic ``model_validate_json``, then
  ``model_dump(mode="json")`` of every event, timestamps as Python datetimes).
* **process** (with ``--bootstrap``): ``earwitness export`` as a process on a fresh topic that
  holds the captions; its CPU seconds (psutil, every thread, librdkafka included) from start to
  the last manifest, and its wall time.
* sizes: the Parquet files (zstd) per million captions, against the events' JSON (the topic's
  payload) raw and zstd-compressed.

The last line is ``export_captions_per_core=... export_mb_per_million=...``; the target is
≥ 20,000 captions/s per core.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from earwitness.events import (
    AnalyzerInfo,
    AudioStats,
    CaptionEvent,
    EventKind,
    FrameRange,
    Timings,
    event_id,
    rfc3339,
)
from export import layout
from export.buffer import PartitionBuffer
from export.commit import Committer, Flush
from export.exporter import to_arrow_rejects
from export.schema import Row, Table, captions_table
from export.store import Store, open_filesystem

TARGET_PER_CORE = 20_000
T0_NS = 1_764_680_000_000_000_000
WORDS = (
    "a dog barks twice then car door slams and an engine starts people talk quietly in the",
    "background glass breaks siren wails distance footsteps on gravel music plays softly baby",
    "cries man shouts wind noise rain metal roof alarm beeps",
)
VOCABULARY = " ".join(WORDS).split()


def events(n: int, streams: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        stream, index = f"site-{i % streams:03d}/cam-{i % 7}", i // streams
        start = T0_NS + index * 10_000_000_000
        end = start + 30_000_000_000
        words = " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(8, 40)))
        out.append(
            CaptionEvent(
                event_id=event_id(stream, T0_NS, index, "main"),
                kind=EventKind.CAPTION,
                stream_id=stream,
                segment_id=T0_NS,
                window_index=index,
                window_start_ns=start,
                window_end_ns=end,
                window_start=rfc3339(start),
                window_end=rfc3339(end),
                caption=words.capitalize() + ".",
                model="Qwen/Qwen3-Omni-30B-A3B-Captioner",
                model_revision="main",
                audio=AudioStats(
                    rms_dbfs=-20 - rng.random() * 30, peak_dbfs=-3.0, gap_fraction=0.0
                ),
                timings=Timings(
                    window_closed_ns=end,
                    caption_produced_ns=end + 900_000_000,
                    engine_latency_ms=850.0,
                ),
                frames=FrameRange(
                    topic="earwitness.frames",
                    partition=i % 12,
                    first_offset=i * 50,
                    last_offset=i * 50 + 1499,
                ),
                analyzer=AnalyzerInfo(
                    instance="earwitness-analyzer-0", config_hash="ab" * 32, version="0.1.0"
                ),
                model_family="qwen3-omni-captioner",
                prompt_id="cd" * 8,
                finish_reason="stop",
                prompt_tokens=812,
                output_tokens=len(words.split()) * 2,
                truncated=False,
            ).to_json()
        )
    return out


def naive_decode(table: Table, value: bytes | None, partition: int, offset: int, ts_ms: int) -> Row:
    """The obvious decoding: validate, dump every event, datetimes in Python."""
    assert value is not None
    event = CaptionEvent.model_validate_json(value)
    values: dict[str, Any] = event.model_dump(mode="json")
    for column, source in table.timestamps.items():
        values[column] = datetime.fromtimestamp(values[source] / 1e9, tz=UTC)
    values.update(kafka_partition=partition, kafka_offset=offset, kafka_timestamp=ts_ms)
    values["extra_json"] = None
    return Row(values, event.window_start_ns)


def naive_to_arrow(table: Table, schema: pa.Schema, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def pipeline(
    values: list[bytes], rows_per_file: int, root: Path, decode: Callable[..., Row] | None = None
) -> tuple[float, float, int]:
    """(CPU s, wall s, bytes of data files) of exporting ``values`` (offsets 0.. of one
    partition) with the exporter's decoding, or ``decode``."""
    import export.buffer as buffer_module

    original = buffer_module.decode
    if decode is not None:
        buffer_module.decode = decode
    table = captions_table()
    schema = table.arrow_schema()
    filesystem, path = open_filesystem(str(root), {})
    committer = Committer(Store(filesystem, path), "bench")
    committer.recover("captions", "bench", 0, 0)
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        buffer = PartitionBuffer(table, "bench", 0, 0)
        for offset, value in enumerate(values):
            buffer.add(offset, None, value, 1_764_680_000_000, None)
            if buffer.count >= rows_per_file or offset == len(values) - 1:
                if decode is None:  # the exporter's own conversion (export/buffer.py)
                    hours = buffer.tables(schema)[0]
                else:
                    hours = {h: naive_to_arrow(table, schema, r) for h, r in buffer.rows.items()}
                rejects = to_arrow_rejects(buffer.rejects) if buffer.rejects else None
                committer.commit(Flush("captions", "bench", 0, buffer.span, hours, rejects))
                buffer = PartitionBuffer(table, "bench", 0, buffer.span.next_offset)
    finally:
        buffer_module.decode = original
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    size = sum(p.stat().st_size for p in (root / "captions").rglob("*.parquet"))
    return cpu, wall, size


def process_run(
    values: list[bytes], bootstrap: str, rows_per_file: int, workdir: Path
) -> tuple[float, float]:
    """(CPU s, wall s) of ``earwitness export`` exporting a topic that holds ``values``."""
    import psutil
    import yaml
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bench-export-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 50, "compression.type": "zstd"}
    )
    for value in values:
        while True:
            try:
                producer.produce(topic, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(120)
    lake = workdir / "process-lake"
    config = workdir / "export.yaml"
    config.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": bootstrap, "captions_topic": topic, "group_id": topic},
        "destination": {"url": str(lake)},
        "roll": {"max_rows": rows_per_file, "max_age_s": 5.0},
        "metrics_port": None,
    }))  # fmt: skip
    repo = Path(__file__).resolve().parents[1]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "earwitness.cli",
            "--log-level",
            "warning",
            "export",
            "--config",
            str(config),
        ],
        cwd=repo,
    )
    watch = psutil.Process(proc.pid)
    deadline = time.monotonic() + 600
    cpu = 0.0
    while time.monotonic() < deadline:
        times = watch.cpu_times()
        cpu = times.user + times.system
        if _exported(lake) >= len(values):
            break
        time.sleep(0.2)
    wall = time.perf_counter() - started
    proc.terminate()
    proc.wait(60)
    return cpu, wall


def _exported(lake: Path) -> int:
    folder = lake / layout.manifests_dir("captions", 0)
    spans = [s for p in folder.glob("*.json") if (s := layout.span_of_manifest(p.name))]
    return max((s.next_offset for s in spans), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=200_000)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rows-per-file", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path (best counts)")
    parser.add_argument(
        "--bootstrap", help="also run `earwitness export` as a process on this broker"
    )
    args = parser.parse_args()
    values = events(args.captions, args.streams)
    raw = sum(len(v) for v in values)
    zstd = len(pa.compress(b"\n".join(values), "zstd", asbytes=True))
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        results = [
            ("export pipeline", *pipeline(values, args.rows_per_file, work / "lake")),
            (
                "baseline (model_dump)",
                *pipeline(values, args.rows_per_file, work / "base", naive_decode),
            ),
        ]
        process = (
            process_run(values, args.bootstrap, args.rows_per_file, work)
            if args.bootstrap
            else None
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(args, results, process, raw, zstd)


def _report(
    args: argparse.Namespace,
    results: list[tuple[str, float, float, int]],
    process: tuple[float, float] | None,
    raw: int,
    zstd: int,
) -> None:
    n = args.captions
    per_m = 1_000_000 / n / 2**20
    print(f"{n} captions, {args.streams} streams, {args.rows_per_file} rows per file\n")
    print(f"{'path':<28}{'captions/s/core':>16}{'captions/s wall':>16}{'MiB per 1M':>12}")
    for name, cpu, wall, size in results:
        print(f"{name:<28}{n / cpu:>16,.0f}{n / wall:>16,.0f}{size * per_m:>12.1f}")
    if process is not None:
        cpu, wall = process
        print(f"{'earwitness export (process)':<28}{n / cpu:>16,.0f}{n / wall:>16,.0f}{'':>12}")
    print(f"{'JSON on the topic (raw)':<28}{'':>16}{'':>16}{raw * per_m:>12.1f}")
    print(f"{'JSON lines, zstd':<28}{'':>16}{'':>16}{zstd * per_m:>12.1f}")
    pipe_cpu, base_cpu = results[0][1], results[1][1]
    per_core = n / (process[0] if process else pipe_cpu)
    verdict = "met" if per_core >= TARGET_PER_CORE else "MISSED"
    print(f"\nexport ÷ baseline (CPU): {base_cpu / pipe_cpu:.2f}x")
    print(f"target ≥ {TARGET_PER_CORE:,} captions/s per core: {verdict}")
    headline = {
        "export_captions_per_core": f"{per_core:.0f}",
        "export_pipeline_per_core": f"{n / pipe_cpu:.0f}",
        "export_baseline_per_core": f"{n / base_cpu:.0f}",
        "export_mb_per_million": f"{results[0][3] * per_m:.1f}",
        "export_json_mb_per_million": f"{raw * per_m:.1f}",
    }
    print(" ".join(f"{k}={v}" for k, v in headline.items()))


if __name__ == "__main__":
    main()
