"""Live streams into Kafka and caption events out of it, for the end-to-end curve (``e2e.py``).

Runs where the analyzer runs; never imported by tests or CI. Who owns what::

    LiveStreams   thread "loadgen"         N live streams of 20 ms s16le frames (wire format v1,
                                           ``windowing.wire.encode_frame``), paced by the wall
                                           clock; stop() ends it
    CaptionReader thread "caption-reader"  a read_committed consumer of the caption topic:
                                           (stream, window index) -> wall ns when it was visible

The schedule is the engine-only curve's (``bench.py``'s ``capacity_curve``): levels of N streams
rising back to back, ``level_s`` each; stream i first counts in level k (the first with
i < levels[k]) and its windows close at ``T_k + phase(i) + m * hop_s`` (m = 0, 1, ...), phases
spread over the hop by the golden ratio. Its capture time (``ew-ts``) therefore starts
``window_s`` before its first close. A stream is switched on ``lead_s`` before its level (or at
the start, for the first level) and then sends at once the audio it "recorded" before that, so
that the first window closes on time without ``window_s`` of idle ramp; from then on each frame
goes out when its last sample has been captured. Every frame carries a (stream, seq) marker in
its first samples, so no two windows are alike (vLLM's prefix and encoder caches reuse nothing).

Latency of a window = when its caption event was visible to the reader - its close (the event's
``window_end_ns``, the capture time just past its last sample).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, KafkaError, Producer

from windowing.wire import encode_frame

GOLDEN = 0.6180339887498949
RATE_HZ = 16_000
FRAME_MS = 20
FRAME_SAMPLES = RATE_HZ * FRAME_MS // 1000
FRAME_NS = FRAME_MS * 1_000_000
NOISE_SAMPLES = 1 << 22  # 262 s of noise, shared; streams read it at different offsets
FAILED_S = 1e9
"""Latency recorded for a window whose event is an error or shed (never passes the SLO)."""


@dataclass(frozen=True)
class Schedule:
    """When every stream starts and where its windows close (all in wall-clock ns)."""

    levels: list[int]
    level_s: float
    skip_s: float
    window_s: float
    hop_s: float
    t0_ns: int
    """Start of the first level."""
    lead_s: float = 10.0

    def level_start_ns(self, k: int) -> int:
        return self.t0_ns + int(k * self.level_s * 1e9)

    def level_of(self, stream: int) -> int:
        return next(k for k, n in enumerate(self.levels) if stream < n)

    def first_close_ns(self, stream: int) -> int:
        phase_s = ((stream * GOLDEN) % 1.0) * self.hop_s
        return self.level_start_ns(self.level_of(stream)) + int(phase_s * 1e9)

    def capture_start_ns(self, stream: int) -> int:
        return self.first_close_ns(stream) - int(self.window_s * 1e9)

    def switch_on_ns(self, stream: int) -> int:
        return self.level_start_ns(self.level_of(stream)) - int(self.lead_s * 1e9)

    def closes(self, stream: int, until_ns: int) -> list[int]:
        """Close times of the stream's full windows that close before ``until_ns``."""
        first, hop = self.first_close_ns(stream), int(self.hop_s * 1e9)
        return list(range(first, until_ns, hop)) if first < until_ns else []


def stream_id(i: int) -> str:
    return f"live-{i:04d}"


@dataclass
class LiveStreams:
    """Thread ``loadgen``: produces every active stream's due frames every 20 ms."""

    producer_config: dict[str, Any]
    topic: str
    schedule: Schedule
    streams: int
    """All streams of all levels; each is switched on when the schedule says."""
    stop_event: threading.Event = field(default_factory=threading.Event)
    frames_sent: int = 0
    max_behind_ms: float = 0.0
    """Largest lag of a tick behind its due time after the stream's catch-up burst."""
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(7)
        self._noise = np.clip(rng.normal(0, 1638, NOISE_SAMPLES), -32767, 32767).astype("<i2")
        self._next_seq = [0] * self.streams
        self._thread = threading.Thread(target=self._run, name="loadgen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop producing (the streams go idle) and flush what is queued."""
        self.stop_event.set()
        self._thread.join(30)

    def frame(self, i: int, seq: int) -> bytes:
        start = (i * 104_729 + seq * FRAME_SAMPLES) % (NOISE_SAMPLES - FRAME_SAMPLES)
        pcm = self._noise[start : start + FRAME_SAMPLES].copy()
        pcm[0], pcm[1], pcm[2] = i, seq & 0x7FFF, seq >> 15  # unique per (stream, seq)
        return pcm.tobytes()

    def _run(self) -> None:
        producer = Producer(self.producer_config)
        try:
            while not self.stop_event.is_set():
                now = time.time_ns()
                behind = self._tick(producer, now)
                self.max_behind_ms = max(self.max_behind_ms, behind)
                producer.poll(0)
                time.sleep(max(0.0, FRAME_NS / 1e9 - (time.time_ns() - now) / 1e9))
        except Exception as exc:  # reported in the result, never silent
            self.errors.append(repr(exc))
        finally:
            producer.flush(30)

    def _tick(self, producer: Producer, now: int) -> float:
        """Send every due frame; return how far this tick ran behind the oldest due frame, ms
        (frames of a stream's catch-up burst do not count)."""
        behind = 0.0
        for i in range(self.streams):
            if now < self.schedule.switch_on_ns(i):
                continue
            start, seq = self.schedule.capture_start_ns(i), self._next_seq[i]
            catch_up = seq == 0
            while start + (seq + 1) * FRAME_NS <= now:
                ts = start + seq * FRAME_NS
                if not catch_up:
                    behind = max(behind, (now - ts - FRAME_NS) / 1e6)
                self._send(producer, i, seq, ts)
                seq += 1
            self._next_seq[i] = seq
        return behind

    def _send(self, producer: Producer, i: int, seq: int, ts: int) -> None:
        key, value, headers = encode_frame(
            stream_id(i), seq, ts, RATE_HZ, 1, "s16le", self.frame(i, seq)
        )
        while True:
            try:
                producer.produce(self.topic, value, key, headers=list(headers))
                self.frames_sent += 1
                return
            except BufferError:
                producer.poll(0.01)


@dataclass
class CaptionReader:
    """Thread ``caption-reader``: every caption event, as a read_committed consumer sees it."""

    consumer_config: dict[str, Any]
    topic: str
    seen: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    duplicates: int = 0
    """Events for a (stream, window) already seen: exactly once means 0."""

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="caption-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        consumer = Consumer(
            {
                **self.consumer_config,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([self.topic])
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(500, timeout=0.05):
                    seen_ns = time.time_ns()
                    error, value = msg.error(), msg.value()
                    if error is not None or value is None:
                        if error is not None and error.code() != KafkaError._PARTITION_EOF:
                            self.errors.append(str(error))
                        continue
                    self._take(orjson.loads(value), seen_ns)
        except Exception as exc:
            self.errors.append(repr(exc))
        finally:
            consumer.close()

    def _take(self, event: dict[str, Any], seen_ns: int) -> None:
        key = (event["stream_id"], event["window_index"])
        if key in self.seen:
            self.duplicates += 1
            return
        timings = event["timings"]
        self.seen.setdefault(
            key,
            {
                "kind": event["kind"],
                "window_end_ns": event["window_end_ns"],
                "window_closed_ns": timings["window_closed_ns"],
                "produced_ns": timings["caption_produced_ns"],
                "engine_ms": timings.get("engine_latency_ms"),
                "seen_ns": seen_ns,
            },
        )


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def level_row(
    schedule: Schedule, k: int, reader: CaptionReader, now_ns: int, slo_s: float
) -> dict[str, Any]:
    """Figures of level k over the windows that close in [T_k + skip_s, T_k + level_s);
    windows not yet visible count with their age so far (a lower bound), as in ``bench.py``."""
    lo = schedule.level_start_ns(k) + int(schedule.skip_s * 1e9)
    hi = schedule.level_start_ns(k) + int(schedule.level_s * 1e9)
    n = schedule.levels[k]
    lat, pending, errors, mismatched = [], 0, 0, 0
    parts: dict[str, list[float]] = {"transport_s": [], "engine_s": [], "commit_s": []}
    for i in range(n):
        for m, close in enumerate(schedule.closes(i, hi)):
            if close < lo:
                continue
            ev = reader.seen.get((stream_id(i), m))
            if ev is None:
                pending += 1
                lat.append((now_ns - close) / 1e9)
                continue
            mismatched += ev["window_end_ns"] != close
            if ev["kind"] != "caption":
                errors += 1
                lat.append(FAILED_S)
                continue
            lat.append((ev["seen_ns"] - close) / 1e9)
            parts["transport_s"].append((ev["window_closed_ns"] - close) / 1e9)
            parts["engine_s"].append((ev["produced_ns"] - ev["window_closed_ns"]) / 1e9)
            parts["commit_s"].append((ev["seen_ns"] - ev["produced_ns"]) / 1e9)
    p95 = pct(lat, 95)
    return {
        "streams": n,
        "offered_windows_per_s": n / schedule.hop_s,
        "measured_windows": len(lat),
        "completed": len(lat) - pending - errors,
        "pending_at_report": pending,
        "errors": errors,
        "window_end_mismatch": mismatched,
        "p50_s": pct(lat, 50),
        "p95_s": p95,
        "p99_s": pct(lat, 99),
        "max_s": max(lat) if lat else None,
        "ok": p95 is not None and p95 <= slo_s and errors == 0,
        "parts_p50_s": {name: pct(v, 50) for name, v in parts.items()},
        "parts_p95_s": {name: pct(v, 95) for name, v in parts.items()},
    }
