"""Part 3 of bench/console.py: time to first audio with 50 streams on one frames partition.

50 streams x 45 s of 20 ms frames, interleaved on one partition (112,500 records, 72 MB);
the analyzer's windower gives each window's frame range, the caption events go to the console,
and each Listen request reads ~75,000 records to rebuild one 30 s window.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from confluent_kafka import Consumer, TopicPartition

from bench.console_parts.common import console, new_topics
from tests.console.support import (
    NS,
    analyzer_windows,
    events_records,
    produce_committed,
    publish_tones,
    wait_for,
    window_event,
)
from tests.support.frames import Tone

STREAMS, SECONDS, REQUESTS = 50, 45, 10


def _bare_read(bootstrap: str, topic: str, first: int, last: int) -> float:
    """Seconds for a bare consumer to read offsets first..last (no decode, no windowing)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False, "fetch.max.bytes": 64 * 2**20,
                         "max.partition.fetch.bytes": 16 * 2**20})  # fmt: skip
    started = time.perf_counter()
    consumer.assign([TopicPartition(topic, 0, first)])
    done, left = False, last - first + 1
    while not done:
        messages = consumer.consume(max(1, min(10_000, left)), 0.5)
        left -= len(messages)
        done = any((msg.offset() or 0) >= last for msg in messages)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def _first_byte(client: httpx.Client, path: str) -> tuple[float, float, int]:
    started = time.perf_counter()
    with client.stream("GET", path) as reply:
        reply.raise_for_status()
        chunks = reply.iter_bytes()
        size = len(next(chunks))
        first = time.perf_counter() - started
        size += sum(len(c) for c in chunks)
    return first, time.perf_counter() - started, size


def run(bootstrap: str, tmp: Path) -> dict[str, str]:
    topics = new_topics(bootstrap, "bench-listen")
    ts0 = time.time_ns() - 120 * NS
    tones = [Tone(f"cam-{i:02d}", SECONDS, amplitude=0.1, ts0_ns=ts0 + i * 3_000_000)
             for i in range(STREAMS)]  # fmt: skip
    frames = publish_tones(bootstrap, topics["frames"], tones)
    windows = [w for w in analyzer_windows(frames) if w.index == 1 and not w.final]
    events = [window_event(w, topics["frames"], "A steady tone.") for w in windows]
    produce_committed(bootstrap, topics["captions"], events_records(events))
    picked = events[:: max(1, len(events) // REQUESTS)][:REQUESTS]
    with (
        console(bootstrap, topics, tmp) as process,
        httpx.Client(base_url=process.url, timeout=60) as client,
    ):
        wait_for(lambda: client.get(f"/fragments/window/{picked[-1].event_id}").is_success, 60)
        timings = [_first_byte(client, f"/listen/{e.event_id}.wav") for e in picked]
    ranges = [(e.frames.first_offset, e.frames.last_offset) for e in picked if e.frames]
    bare = [_bare_read(bootstrap, topics["frames"], a, b) for a, b in ranges]
    records = np.mean([b - a + 1 for a, b in ranges])
    first = np.array([t[0] for t in timings])
    print(f"\n3. listen: {STREAMS} streams on one partition, {len(frames)} frames of 20 ms; "
          f"a 30 s window spans {records:.0f} records; {len(picked)} requests")  # fmt: skip
    print(f"{'':<42}{'p50 ms':>9}{'p95 ms':>9}")
    for name, values in (("bare consumer reads the range (baseline)", np.array(bare)),
                         ("Listen: first byte of the WAV", first),
                         ("Listen: whole WAV", np.array([t[1] for t in timings]))):  # fmt: skip
        p50, p95 = np.percentile(values, [50, 95]) * 1000
        print(f"{name:<42}{p50:>9.0f}{p95:>9.0f}")
    print(f"WAV size {timings[0][2]} bytes (30 s, 16 kHz, 16-bit)")
    return {
        "console_listen_first_audio_p95_ms": f"{np.percentile(first, 95) * 1000:.0f}",
        "console_listen_bare_read_p95_ms": f"{np.percentile(bare, 95) * 1000:.0f}",
    }
