"""Overload: the CPU engine 2x and 4x slower than the offered load, then the load drops.

    .venv/bin/python bench/overload.py [--bootstrap HOST:PORT] [--factors 2,4]
        [--overload-s 60] [--recovery-s 40] [--max-tokens 16]

One ``earwitness analyze`` process (vLLM's CPU build, the tiny random-weight model, each window
generating ``--max-tokens`` tokens) on a real broker (``--bootstrap``, else a local one):

0. **calibrate**: a backlog stamped in the future (never stale) → C, the windows/s the engine
   sustains (the baseline of this run).
1. **overload** (per factor f): live streams, each frame published when its audio has
   happened (ew-ts = the wall clock), offering f x C windows/s for ``--overload-s``. Most of
   them ("bulk") then end with ew-eos; the "steady" ones (C / 2) go on:
2. **recovery**: ``--recovery-s`` at half the engine's capacity.

Checked and printed per factor (docs/benchmarks.md, "Overload"): every window accounted for
once (a caption, shed or error event, one segment per stream, the expected grid: no segment
closed early by a pause); the age of published captions (event built - window end) at p95
against ``batch.max_lag_s`` + one batch (p95 time in the engine); no consumer-group eviction
(max.poll.interval.ms 30 s); memory (RSS, held audio, pending windows) flat while overloaded;
recovery (every steady window captioned, none shed, from some point after the drop on, and
how long after the drop that point is). The last lines are ``name=value`` headlines; the exit
status is 1 if a check fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer

from earwitness.events import CaptionEvent, EventKind
from stream.config import AnalyzerSettings, HttpSettings, KafkaSettings
from stream.engine.settings import BatchSettings
from stream.engine.testmodel import write_test_model
from tests.support.analyzer import AnalyzerProcess, engine_settings, scrape
from tests.support.frames import FRAME_MS, Tone, produce
from tests.support.kafka import LocalBroker, create_topic, unique_name
from tests.support.streams import CaptionWatch, assert_exactly_once, expected_windows
from windowing.config import WindowSettings

WINDOWING = WindowSettings(window_s=4, hop_s=2, min_window_s=1)  # idle_timeout_s: default 10 s
CHUNK_S = 0.2
EVICTION_SIGNS = ("lost [", "revoked [", "maximum poll interval", "MAXPOLL")


def batch_settings(max_lag_s: float) -> BatchSettings:
    return BatchSettings(
        max_batch=2,
        max_wait_ms=50,
        max_inflight=2,
        pause_queued_windows=8,
        resume_queued_windows=2,
        max_lag_s=max_lag_s,
        quiet_activity_db=0.0,  # a steady tone is quiet to its own floor: shed by age only
        drain_timeout_s=30,
    )


@dataclass
class Live:
    """Streams published as they happen: chunk k of a stream when its audio has ended."""

    producer: Producer
    topic: str
    streams: dict[str, tuple[int, float]] = field(default_factory=dict)
    """stream id → (wall-clock start ns, seconds)."""
    sent: dict[str, int] = field(default_factory=dict)

    def add(self, stream_id: str, start_ns: int, seconds: float) -> None:
        self.streams[stream_id] = (start_ns, seconds)
        self.sent[stream_id] = 0

    def pump(self) -> None:
        """Publish every chunk that is due; streams past their end are dropped."""
        now_ns = time.time_ns()
        per_chunk = round(CHUNK_S * 1000 / FRAME_MS)
        for stream_id, (start_ns, seconds) in list(self.streams.items()):
            chunks = round(seconds / CHUNK_S)
            due = min(chunks, int((now_ns - start_ns) / 1e9 / CHUNK_S))
            for k in range(self.sent[stream_id], due):
                tone = Tone(stream_id, CHUNK_S, first_seq=k * per_chunk, ts0_ns=start_ns,
                            eos=k == chunks - 1)  # fmt: skip
                for record in tone.records():
                    produce(self.producer, self.topic, record)
            self.sent[stream_id] = max(self.sent[stream_id], due)
            if due == chunks:
                del self.streams[stream_id]
        self.producer.poll(0)


@dataclass
class Run:
    """What one phase saw: metrics samples and the events (with when each became visible)."""

    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    events: list[tuple[int, CaptionEvent]] = field(default_factory=list)


@dataclass
class Rig:
    """The analyzer process, its /metrics port, the caption reader and the live publisher."""

    proc: AnalyzerProcess
    port: int
    watch: CaptionWatch
    live: Live


def drive(rig: Rig, until_s: float, run: Run, done: set[tuple[str, int]] | None = None) -> None:
    """Publish, read events and scrape /metrics once a second until ``until_s`` (monotonic),
    or, with ``done``, until every one of those (stream, window) has an event."""
    watch = rig.watch
    seen = len(watch.events)
    next_scrape = 0.0
    while time.monotonic() < until_s:
        assert rig.proc.alive, f"the analyzer died\n{rig.proc.tail()}"
        rig.live.pump()
        watch.poll(0.05)
        now_ns = time.time_ns()
        run.events += [(now_ns, e) for e in watch.events[seen:]]
        seen = len(watch.events)
        if time.monotonic() >= next_scrape:
            run.samples.append((time.time(), scrape(rig.port)))
            next_scrape = time.monotonic() + 1.0
        if done is not None and done <= {(e.stream_id, e.window_index) for _, e in run.events}:
            return


def calibrate(rig: Rig) -> float:
    """Windows/s under a backlog that never goes stale (ew-ts in the future)."""
    producer, topic = rig.live.producer, rig.live.topic
    names = [unique_name("calib") for _ in range(2)]
    for name in names:
        for record in Tone(name, 16.0, eos=True).records():  # default ts0: 2027, never stale
            produce(producer, topic, record)
    producer.flush(60)
    grid = expected_windows(16.0, WINDOWING.window_s, WINDOWING.hop_s, WINDOWING.min_window_s)
    run = Run()
    drive(rig, time.monotonic() + 600, run, {(n, i) for n in names for i in grid})
    times = sorted(t for t, e in run.events if e.kind is EventKind.CAPTION)
    captions = len(times)
    assert captions >= 8, f"calibration: {captions} captions"
    return (captions - 1) / ((times[-1] - times[0]) / 1e9)


@dataclass
class Scenario:
    factor: float
    bulk: list[str]
    steady: list[str]
    overload_s: float
    recovery_s: float
    started_ns: int = 0


def run_scenario(rig: Rig, scenario: Scenario) -> Run:
    live = rig.live
    start_ns = time.time_ns()
    scenario.started_ns = start_ns
    for name in scenario.bulk:
        live.add(name, start_ns, scenario.overload_s)
    for name in scenario.steady:
        live.add(name, start_ns, scenario.overload_s + scenario.recovery_s)
    run = Run()
    end = time.monotonic() + scenario.overload_s + scenario.recovery_s
    drive(rig, end, run)
    wanted = {(s, i) for s, grid in expected_of(scenario).items() for i in grid}
    drive(rig, time.monotonic() + 120, run, wanted)  # the last ones
    return run


def expected_of(scenario: Scenario) -> dict[str, list[int]]:
    w = WINDOWING
    bulk = expected_windows(scenario.overload_s, w.window_s, w.hop_s, w.min_window_s)
    total = scenario.overload_s + scenario.recovery_s
    steady = expected_windows(total, w.window_s, w.hop_s, w.min_window_s)
    return {**{s: bulk for s in scenario.bulk}, **{s: steady for s in scenario.steady}}


def evaluate(scenario: Scenario, run: Run, max_lag_s: float) -> dict[str, object]:
    """The figures and checks of one scenario."""
    names = set(scenario.bulk) | set(scenario.steady)
    events = [(t, e) for t, e in run.events if e.stream_id in names]
    kinds = [e.kind for _, e in events]
    captions = [(t, e) for t, e in events if e.kind is EventKind.CAPTION]
    produced_age = [(e.timings.caption_produced_ns - e.window_end_ns) / 1e9 for _, e in captions]
    visible_age = [(t - e.window_end_ns) / 1e9 for t, e in captions]
    in_engine = [(e.timings.engine_latency_ms or 0) / 1000 for _, e in captions]
    one_batch = float(np.percentile(in_engine, 95)) if in_engine else 0.0
    try:
        assert_exactly_once([e for _, e in events], expected_of(scenario))
        accounted = "yes"
    except AssertionError as exc:
        accounted = f"NO: {str(exc)[:300]}"
    drop_ns = scenario.started_ns + int(scenario.overload_s * 1e9)
    overload = [m for t, m in run.samples if t * 1e9 < drop_ns]
    rss = [m["process_resident_memory_bytes"] / 2**20 for m in overload]
    half = len(rss) // 2
    return {
        "factor": scenario.factor,
        "streams": f"{len(scenario.bulk)}+{len(scenario.steady)}",
        "windows": len(events),
        "captioned": len(captions),
        "shed": kinds.count(EventKind.SHED),
        "errors": kinds.count(EventKind.ERROR),
        "accounted": accounted,
        "age_p50_s": float(np.percentile(produced_age, 50)),
        "age_p95_s": float(np.percentile(produced_age, 95)),
        "visible_p95_s": float(np.percentile(visible_age, 95)),
        "one_batch_s": one_batch,
        "bound_s": max_lag_s + one_batch,
        "pending_max": max(m["earwitness_windows_pending"] for _, m in run.samples),
        "paused_s": sum(1 for m in overload if m["earwitness_partitions_paused"] > 0),
        "behind_p50_s": float(
            np.median(
                [m["earwitness_behind_realtime_seconds"] for m in overload[round(max_lag_s) :]]
            )
        ),  # settled
        "behind_max_s": max(m["earwitness_behind_realtime_seconds"] for m in overload),
        "rss_first_half_mib": max(rss[:half]),
        "rss_second_half_mib": max(rss[half:]),
        "held_audio_max_mib": max(m["earwitness_held_audio_bytes"] for m in overload) / 2**20,
        "recovered_after_s": recovered_after(scenario, events, drop_ns),
    }


def recovered_after(scenario: Scenario, events: list[tuple[int, CaptionEvent]],
                    drop_ns: int) -> float | None:  # fmt: skip
    """Seconds from the load drop to the end of the first steady window from which on every
    steady window is captioned (None: never, within the run)."""
    steady = sorted((e.window_end_ns, e.kind) for _, e in events if e.stream_id in scenario.steady)
    first_ok: int | None = None
    for end_ns, kind in steady:
        if kind is not EventKind.CAPTION:
            first_ok = None
        elif first_ok is None:
            first_ok = end_ns
    if first_ok is None or first_ok > drop_ns + scenario.recovery_s * 1e9 - 5e9:
        return None
    return max(0.0, (first_ok - drop_ns) / 1e9)


def checks(figures: dict[str, object]) -> list[tuple[str, bool]]:
    rss_growth = float(figures["rss_second_half_mib"]) - float(figures["rss_first_half_mib"])  # type: ignore[arg-type]
    return [
        ("every window accounted for once", figures["accounted"] == "yes"),
        ("p95 caption age <= max_lag_s + one batch",
         float(figures["age_p95_s"]) <= float(figures["bound_s"])),  # type: ignore[arg-type]
        ("windows were shed (overloaded)", int(figures["shed"]) > 0),  # type: ignore[call-overload]
        ("memory flat while overloaded (RSS +< 64 MiB)", rss_growth < 64),
        ("recovered after the load dropped", figures["recovered_after_s"] is not None),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="a broker to use (default: start a local one)")
    parser.add_argument("--factors", default="2,4", help="offered load / engine capacity")
    parser.add_argument("--overload-s", type=float, default=60.0)
    parser.add_argument("--recovery-s", type=float, default=40.0)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-lag-s", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = None if args.bootstrap else LocalBroker(Path(tmp) / "kafka")
        bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
        try:
            return bench(args, bootstrap, Path(tmp))
        finally:
            if broker is not None:
                broker.stop()


def bench(args: argparse.Namespace, bootstrap: str, tmp: Path) -> int:
    topic = create_topic(bootstrap, unique_name("overload"), partitions=2)
    model = write_test_model(tmp / "model")
    settings = AnalyzerSettings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, frames_topic=topic, captions_topic=f"{topic}.captions",
            group_id=unique_name("overload"), commit_interval_ms=500,
            max_poll_interval_ms=30_000, session_timeout_ms=30_000,
        ),
        windowing=WINDOWING,
        engine=engine_settings(model, max_tokens=args.max_tokens, max_audio_s=4.0),
        batch=batch_settings(args.max_lag_s),
        http=HttpSettings(host="127.0.0.1", port=0),
    )  # fmt: skip
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    live = Live(producer, topic)
    watch = CaptionWatch(bootstrap, settings.kafka.captions_topic)
    results = []
    launched = time.monotonic()
    with AnalyzerProcess(settings, tmp, "overload") as proc:
        port = proc.metrics_port(600)
        proc.wait_for_log(r"assigned \[\d", 600)
        startup_s = time.monotonic() - launched
        rig = Rig(proc, port, watch, live)
        capacity = calibrate(rig)
        print(
            f"engine start {startup_s:.0f} s; capacity C = {capacity:.2f} windows/s "
            f"({args.max_tokens} tokens/window, max_batch 2, max_inflight 2)",
            flush=True,
        )
        for factor in (float(f) for f in args.factors.split(",")):
            per_stream = 1 / WINDOWING.hop_s  # windows/s a live stream offers
            total = max(2, round(factor * capacity / per_stream))
            steady = max(1, round(0.5 * capacity / per_stream))
            scenario = Scenario(
                factor, [unique_name(f"x{factor:g}b") for _ in range(total - steady)],
                [unique_name(f"x{factor:g}s") for _ in range(steady)],
                args.overload_s, args.recovery_s,
            )  # fmt: skip
            run = run_scenario(rig, scenario)
            results.append(evaluate(scenario, run, args.max_lag_s))
            print(f"factor {factor:g}: {results[-1]}", flush=True)
        log = proc.log()
        proc.terminate()
        code = proc.wait_exit(120)
    watch.close()
    evicted = [sign for sign in EVICTION_SIGNS if sign in log]
    return report(args, capacity, results, evicted, code)


def report(args: argparse.Namespace, capacity: float, results: list[dict[str, object]],
           evicted: list[str], code: int) -> int:  # fmt: skip
    print(f"\nwindows {WINDOWING.window_s:g} s / hop {WINDOWING.hop_s:g} s, 20 ms frames, "
          f"max_lag_s {args.max_lag_s:g}; engine capacity {capacity:.2f} windows/s; "
          f"overload {args.overload_s:g} s, then {args.recovery_s:g} s at C/2")  # fmt: skip
    columns = ["factor", "streams", "windows", "captioned", "shed", "errors", "age_p50_s",
               "age_p95_s", "bound_s", "visible_p95_s", "pending_max", "paused_s",
               "behind_p50_s", "behind_max_s", "rss_first_half_mib", "rss_second_half_mib",
               "held_audio_max_mib", "recovered_after_s"]  # fmt: skip
    print(" | ".join(columns))
    for r in results:
        print(" | ".join(_fmt(r[c]) for c in columns))
    failed = []
    for r in results:
        for name, ok in checks(r):
            print(f"{'PASS' if ok else 'FAIL'} {r['factor']:g}x: {name}")
            failed += [] if ok else [name]
        if r["accounted"] != "yes":
            print(f"     {r['accounted']}")
    print(f"{'PASS' if not evicted else 'FAIL'}: no consumer-group eviction {evicted or ''}")
    print(f"{'PASS' if code == 0 else 'FAIL'}: the analyzer exited {code} on SIGTERM")
    print(f"overload_capacity_windows_per_s={capacity:.2f}")
    for r in results:
        f = f"{r['factor']:g}x"
        print(f"overload_{f}_caption_age_p95_s={float(r['age_p95_s']):.1f}")  # type: ignore[arg-type]
        print(f"overload_{f}_age_bound_s={float(r['bound_s']):.1f}")  # type: ignore[arg-type]
        print(f"overload_{f}_recovered_after_s={_fmt(r['recovered_after_s'])}")
    return 1 if failed or evicted or code != 0 else 0


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return "never" if value is None else str(value)


if __name__ == "__main__":
    raise SystemExit(main())
