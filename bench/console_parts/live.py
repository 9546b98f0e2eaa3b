"""Part 1 of bench/console.py: 1,000 streams live, 50 SSE clients, commit → client latency.

Threads: ``bench-producer`` (the analyzer's stand-in: one transaction per second), ``bench-
baseline`` (a bare read_committed consumer), and an asyncio loop in ``bench-clients`` that
runs every SSE client. Every thread stops by itself when the measured time is over.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import orjson
import psutil
from confluent_kafka import Consumer, Producer

from bench.console_parts.common import caption_text, console, new_topics
from tests.console.support import NS, caption

COMMIT_INTERVAL_S = 1.0
CAPTION_EVERY_S = 10.0
WARMUP_S = 15.0


class Clock:
    """Commit times (monotonic) of every event id, and when each reader saw it."""

    def __init__(self) -> None:
        self.committed: dict[str, float] = {}
        self.seen: list[tuple[str, float]] = []
        self.lock = threading.Lock()

    def latencies(self, seen: list[tuple[str, float]], after: float) -> np.ndarray:
        return np.array(
            [t - self.committed[e] for e, t in seen if self.committed.get(e, 0) > after]
        )


def produce(bootstrap: str, topic: str, streams: int, until: float, clock: Clock) -> int:
    """Each stream one caption per CAPTION_EVERY_S, spread evenly; a transaction a second."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": uuid.uuid4().hex,
                         "linger.ms": 5})  # fmt: skip
    producer.init_transactions(30)
    rng, sent, index = random.Random(7), 0, 0
    segment = time.time_ns() - 600 * NS
    per_commit = round(streams * COMMIT_INTERVAL_S / CAPTION_EVERY_S)
    while time.monotonic() < until:
        tick = time.monotonic()
        producer.begin_transaction()
        ids = []
        for _ in range(per_commit):
            stream, k = index % streams, index // streams
            event = caption(f"cam-{stream:04d}", k, caption_text(rng), segment_id=segment)
            producer.produce(topic, event.to_json(), event.stream_id.encode())
            ids.append(event.event_id)
            index += 1
        producer.commit_transaction(30)
        done = time.monotonic()
        with clock.lock:
            clock.committed.update(dict.fromkeys(ids, done))
        sent += len(ids)
        time.sleep(max(0.0, COMMIT_INTERVAL_S - (done - tick)))
    return sent


def baseline(bootstrap: str, topic: str, until: float, seen: list[tuple[str, float]]) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "isolation.level": "read_committed", "auto.offset.reset": "latest",
                         "fetch.wait.max.ms": 100})  # fmt: skip
    consumer.subscribe([topic])
    while time.monotonic() < until:
        msg = consumer.poll(0.1)  # returns at the first record: the floor
        if msg is not None and msg.error() is None:
            seen.append((orjson.loads(msg.value() or b"{}")["event_id"], time.monotonic()))
    consumer.close()


async def _client(url: str, until: float, seen: list[tuple[str, float]]) -> None:
    async with httpx.AsyncClient(timeout=None) as http, http.stream("GET", url) as reply:
        data = ""
        async for line in reply.aiter_lines():
            if line.startswith("data:"):
                data = line[5:].strip()
            elif not line and data.startswith("["):
                now = time.monotonic()
                seen.extend((c["id"], now) for c in orjson.loads(data) if c["t"] == "window")
                data = ""
            if time.monotonic() > until:
                return


def clients(url: str, n: int, until: float) -> list[list[tuple[str, float]]]:
    seen: list[list[tuple[str, float]]] = [[] for _ in range(n)]

    async def all_clients() -> None:
        tasks = [asyncio.create_task(_client(url, until, s)) for s in seen]
        await asyncio.wait(tasks, timeout=until - time.monotonic() + 30)

    asyncio.run(all_clients())
    return seen


def _thread(name: str, target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(target()), name=name)
    thread.start()
    return thread, out


def run(bootstrap: str, tmp: Path, streams: int, n_clients: int, seconds: float) -> dict[str, str]:
    topics = new_topics(bootstrap, "bench-live")
    with console(bootstrap, topics, tmp) as process:
        proc = psutil.Process(process.proc.pid)  # type: ignore[union-attr]
        clock, base_seen = Clock(), list[tuple[str, float]]()
        until = time.monotonic() + WARMUP_S + seconds
        url = f"{process.url}/events?view=streams"
        threads = [
            _thread("bench-clients", lambda: clients(url, n_clients, until)),
            _thread(
                "bench-baseline", lambda: baseline(bootstrap, topics["captions"], until, base_seen)
            ),
        ]
        time.sleep(2)  # every client connected
        producer = _thread(
            "bench-producer", lambda: produce(bootstrap, topics["captions"], streams, until, clock)
        )
        time.sleep(WARMUP_S)
        measured_from, cpu0 = time.monotonic(), sum(proc.cpu_times()[:2])
        rss = []
        while time.monotonic() < until:
            rss.append(proc.memory_info().rss)
            time.sleep(1)
        cpu = (sum(proc.cpu_times()[:2]) - cpu0) / (time.monotonic() - measured_from)
        for thread, _ in (*threads, producer):
            thread.join(120)
    rate = streams / CAPTION_EVERY_S
    print(f"\n1. live: {streams} streams, each a caption per {CAPTION_EVERY_S:g} s ({rate:.0f}/s),"
          f" {n_clients} SSE clients, {seconds:g} s measured after {WARMUP_S:g} s;"
          f" {producer[1][0]} captions sent")  # fmt: skip
    per_client: list[list[tuple[str, float]]] = threads[0][1][0]  # type: ignore[assignment]
    return _report(clock, per_client, base_seen, measured_from, cpu=cpu, rss=max(rss))


def _report(
    clock: Clock,
    per_client: list[list[tuple[str, float]]],
    base_seen: list[tuple[str, float]],
    after: float,
    *,
    cpu: float,
    rss: int,
) -> dict[str, str]:
    lat = clock.latencies([x for seen in per_client for x in seen], after)
    base = clock.latencies(base_seen, after)
    expected = sum(1 for t in clock.committed.values() if t > after)
    got = [len(clock.latencies(seen, after)) for seen in per_client]
    print(f"{'commit → reader':<40}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'events':>10}")
    for name, values in (("bare read_committed consumer (baseline)", base),
                         ("console → SSE client (all clients)", lat)):  # fmt: skip
        p50, p95 = np.percentile(values, [50, 95]) * 1000
        print(f"{name:<40}{p50:>9.0f}{p95:>9.0f}{values.max() * 1000:>9.0f}{len(values):>10}")
    print(f"every client got {min(got)}..{max(got)} of {expected} committed events")
    print(f"console process: {cpu * 100:.0f} % of one core, peak RSS {rss / 2**20:.0f} MiB")
    p95 = np.percentile(lat, 95)
    return {
        "console_live_p95_ms": f"{p95 * 1000:.0f}",
        "console_live_baseline_p95_ms": f"{np.percentile(base, 95) * 1000:.0f}",
        "console_ingest_cpu_core_share": f"{cpu:.2f}",
        "console_rss_mib": f"{rss / 2**20:.0f}",
        "console_live_lost_events": str(expected * len(per_client) - sum(got)),
    }
