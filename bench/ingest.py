"""Benchmark of ``earwitness ingest``: N live 48 kHz stereo AAC sources in one process, against
a naive baseline of one ``ffmpeg`` process per source piping PCM, in the same run.

    .venv/bin/python bench/ingest.py --bootstrap HOST:PORT [--sources 50,100,200]
        [--baseline-sources 50] [--warmup-s 15] [--measure-s 30]

The sources are MPEG-TS over UDP on 127.0.0.1, as broadcast encoders send it: one sender
*process* (``--serve``, its CPU not counted) paces the same pre-encoded AAC (FFmpeg's encoder,
48 kHz stereo) to N ports in real time. Ingest reads each into 16 kHz mono s16 frames of
20 ms onto a fresh topic of the given broker. Measured over ``--measure-s`` after warm-up:

* cores: CPU seconds of the process (every thread: readers, librdkafka) ÷ wall seconds;
  sources/core = N ÷ cores, counted only when every source kept real time;
* real time: per source, audio delivered (acknowledged by Kafka) ÷ wall time (min, median);
* p95 capture-to-produce latency: from ``earwitness_ingest_capture_to_produce_seconds`` as
  ``histogram_quantile`` would compute it (first audio of a frame read → handed to librdkafka);
* memory per source: RSS growth of the process since before the sources started, ÷ N.

The baseline is ``ffmpeg -i udp://... -f s16le -ac 1 -ar 16000 pipe:1`` per source (apt's
ffmpeg), its output read in 640-byte frames by one thread per source of this process and
produced by one idempotent producer. Its cores add the ffmpeg processes' CPU; its memory adds
their RSS; its latency is from the frame's bytes read off the pipe to ``produce()``.

The last line is ``ingest_sources_per_core=... ingest_p95_ms=... ingest_mb_per_source=...``
for the largest N that kept real time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_PER_CORE, TARGET_P95_MS, TARGET_MB = 100, 100, 5
FRAME_MS, OUT_RATE = 20, 16_000
DATAGRAM = 7 * 188


def main() -> None:
    args = _parser().parse_args()
    if args.serve:
        _serve(args)
        return
    seconds = args.warmup_s + args.measure_s + 15
    ts_path = Path(args.workdir) / "bench-ingest.ts"
    _encode(ts_path, seconds)
    rows = []
    for n in [int(x) for x in args.sources.split(",")]:
        rows.append(("ingest", n, *_measure(args, ts_path, n, _run_ingest)))
    if args.baseline_sources:
        rows.append(("ffmpeg per source", args.baseline_sources,
                     *_measure(args, ts_path, args.baseline_sources, _run_baseline)))  # fmt: skip
    _print(rows, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", required=True, help="a Kafka broker to produce to")
    parser.add_argument("--sources", default="50,100,200", help="N values for ingest")
    parser.add_argument("--baseline-sources", type=int, default=50, help="N for ffmpeg (0: none)")
    parser.add_argument("--warmup-s", type=float, default=15.0)
    parser.add_argument("--measure-s", type=float, default=30.0)
    parser.add_argument("--workdir", default="/tmp")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--ts", help=argparse.SUPPRESS)
    return parser


# --- the sources ---------------------------------------------------------------------------


def _encode(path: Path, seconds: float) -> None:
    """``seconds`` of a 48 kHz stereo tone as AAC in MPEG-TS, with PyAV's bundled encoder."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    out = av.open(buffer, "w", format="mpegts")
    stream = out.add_stream("aac", rate=48_000, layout="stereo")
    t = np.arange(int(48_000 * seconds)) / 48_000
    tone = np.tile((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), (2, 1))
    for start in range(0, tone.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(tone[:, start : start + 1024]), format="fltp", layout="stereo"
        )
        frame.sample_rate, frame.pts = 48_000, start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    path.write_bytes(buffer.getvalue())


def _serve(args: argparse.Namespace) -> None:
    """The sender process: the TS file's datagrams to every port, paced in real time."""
    data = Path(args.ts).read_bytes()
    grams = [data[i : i + DATAGRAM] for i in range(0, len(data), DATAGRAM)]
    seconds = float(args.measure_s)
    every_s = seconds / len(grams)
    ports = [int(p) for p in args.ports.split(",")]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    started = time.monotonic()
    for n, gram in enumerate(grams):
        delay = started + n * every_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for port in ports:
            sock.sendto(gram, ("127.0.0.1", port))


def _sender(ts_path: Path, ports: list[int], seconds: float) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, __file__, "--serve", "--bootstrap", "-", "--ts", str(ts_path),
           "--ports", ",".join(map(str, ports)), "--measure-s", str(seconds)]  # fmt: skip
    return subprocess.Popen(cmd)


def _ports(n: int) -> list[int]:
    ports: list[int] = []
    socks = []
    for _ in range(n):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        ports.append(sock.getsockname()[1])
        socks.append(sock)
    for sock in socks:
        sock.close()
    return ports


# --- one measurement -----------------------------------------------------------------------


def _measure(args, ts_path: Path, n: int, runner) -> tuple[float, float, float, float, float]:
    """(cores, min real time, median real time, p95 ms, MB per source)."""
    ports = _ports(n)
    topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    _create_topic(args.bootstrap, topic)
    ts_seconds = args.warmup_s + args.measure_s + 15
    sender = _sender(ts_path, ports, ts_seconds)
    try:
        return runner(args, ports, topic)
    finally:
        sender.kill()
        sender.wait()
        _delete_topic(args.bootstrap, topic)


def _run_ingest(args, ports: list[int], topic: str) -> tuple[float, float, float, float, float]:
    from ingest.config import IngestKafka, IngestSettings, SourceSettings
    from ingest.metrics import IngestMetrics
    from ingest.service import Health, Ingest

    me = psutil.Process()
    rss0 = me.memory_info().rss
    sources = tuple(
        SourceSettings(stream_id=f"src-{i}", url=f"udp://127.0.0.1:{port}", input_format="mpegts")
        for i, port in enumerate(ports)
    )
    settings = IngestSettings(
        kafka=IngestKafka(bootstrap_servers=args.bootstrap, frames_topic=topic),
        http={"port": None},  # type: ignore[arg-type]
        sources=sources,
    )
    ingest = Ingest(settings, IngestMetrics(), Health(60))
    ingest.start()
    stop = threading.Event()
    ticker = threading.Thread(target=_every, args=(stop, 1.0, ingest.tick), name="bench-tick")
    ticker.start()
    try:
        time.sleep(args.warmup_s)
        before = _snapshot(ingest, me)
        time.sleep(args.measure_s)
        after = _snapshot(ingest, me)
        rss = me.memory_info().rss
    finally:
        stop.set()
        ticker.join()
        ingest.stop()
    wall = after["wall"] - before["wall"]
    cores = (after["cpu"] - before["cpu"]) / wall
    ratios = [
        (after["frames"][sid] - before["frames"][sid]) * FRAME_MS / 1000 / wall
        for sid in after["frames"]
    ]
    p95 = _quantile(_delta(after["buckets"], before["buckets"]), 0.95) * 1000
    return cores, min(ratios), statistics.median(ratios), p95, (rss - rss0) / len(ports) / 2**20


def _every(stop: threading.Event, period_s: float, work) -> None:
    while not stop.wait(period_s):
        work()


def _snapshot(ingest, me: psutil.Process) -> dict:
    cpu = me.cpu_times()
    frames, buckets = {}, {}
    for metric in ingest.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "earwitness_ingest_frames_total":
                frames[sample.labels["stream_id"]] = sample.value
            elif sample.name == "earwitness_ingest_capture_to_produce_seconds_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    return {"wall": time.monotonic(), "cpu": cpu.user + cpu.system, "frames": frames,
            "buckets": buckets}  # fmt: skip


def _delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {le: after[le] - before.get(le, 0.0) for le in after}


def _quantile(buckets: dict[float, float], q: float) -> float:
    """``histogram_quantile``: linear within the bucket that holds the q-th observation."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(buckets[le] - below, 1e-9)
        lower, below = le, buckets[le]
    return lower


def _run_baseline(args, ports: list[int], topic: str) -> tuple[float, float, float, float, float]:
    from confluent_kafka import Producer

    from windowing.wire import encode_frame

    me = psutil.Process()
    rss0 = me.memory_info().rss
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True,
                         "linger.ms": 5})  # fmt: skip
    counts = [0] * len(ports)
    latencies: list[float] = []
    lock = threading.Lock()
    procs = [
        subprocess.Popen(
            [
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-f",
                "mpegts",
                "-i",
                f"udp://127.0.0.1:{port}?fifo_size=1024&overrun_nonfatal=1",
                "-f",
                "s16le",
                "-ac",
                "1",
                "-ar",
                str(OUT_RATE),
                "pipe:1",
            ],
            stdout=subprocess.PIPE,
        )
        for port in ports
    ]

    def read(i: int, proc: subprocess.Popen[bytes]) -> None:
        size, seq, t0 = OUT_RATE * FRAME_MS // 1000 * 2, 0, time.time_ns()
        assert proc.stdout is not None
        while True:
            first = proc.stdout.read(1)
            got = time.monotonic()
            rest = proc.stdout.read(size - 1)
            if not first or len(rest) < size - 1:
                return
            key, value, headers = encode_frame(f"src-{i}", seq, t0 + seq * FRAME_MS * 10**6,
                                               OUT_RATE, 1, "s16le", first + rest)  # fmt: skip
            with lock:
                while True:
                    try:
                        producer.produce(topic, value, key, headers=headers)
                        break
                    except BufferError:
                        producer.poll(0.05)
                latencies.append(time.monotonic() - got)
                counts[i] += 1
            seq += 1

    readers = [threading.Thread(target=read, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for thread in readers:
        thread.start()
    stop = threading.Event()
    poller = threading.Thread(
        target=_every, args=(stop, 0.0, lambda: producer.poll(0.05)), name="bench-poll"
    )
    poller.start()
    try:
        time.sleep(args.warmup_s)
        t0, cpu0, c0, n0 = time.monotonic(), _cpu(me, procs), list(counts), len(latencies)
        time.sleep(args.measure_s)
        t1, cpu1, c1 = time.monotonic(), _cpu(me, procs), list(counts)
        rss = (
            me.memory_info().rss
            - rss0
            + sum(psutil.Process(p.pid).memory_info().rss for p in procs)
        )
        window = sorted(latencies[n0:])
    finally:
        stop.set()
        poller.join()
        for proc in procs:
            proc.kill()
            proc.wait()
        producer.flush(30)
    wall = t1 - t0
    ratios = [(b - a) * FRAME_MS / 1000 / wall for a, b in zip(c0, c1, strict=True)]
    p95 = window[int(0.95 * (len(window) - 1))] * 1000 if window else float("nan")
    return (
        (cpu1 - cpu0) / wall,
        min(ratios),
        statistics.median(ratios),
        p95,
        rss / len(ports) / 2**20,
    )


def _cpu(me: psutil.Process, procs: list[subprocess.Popen[bytes]]) -> float:
    total = sum(me.cpu_times()[:2])
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(psutil.Process(proc.pid).cpu_times()[:2])
    return total


def _create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)


def _delete_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(30)


# --- the table -----------------------------------------------------------------------------


def _print(rows: list, args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(f"\n{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"warm-up {args.warmup_s:g} s, measured {args.measure_s:g} s\n")  # fmt: skip
    header = (
        "path",
        "sources",
        "cores",
        "sources/core",
        "real time min/median",
        "p95 ms",
        "MB/source",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    best = None
    for path, n, cores, rt_min, rt_median, p95, mb in rows:
        kept = rt_min >= 0.97
        per_core = n / cores if cores > 0 else float("inf")
        print(f"| {path} | {n} | {cores:.2f} | {per_core:.0f}{'' if kept else ' (lagging)'} | "
              f"{rt_min:.3f} / {rt_median:.3f} | {p95:.1f} | {mb:.2f} |")  # fmt: skip
        if path == "ingest" and kept:
            best = (per_core, p95, mb)
    print(f"\ntargets: >= {TARGET_PER_CORE} sources/core at real time, p95 <= {TARGET_P95_MS} ms, "
          f"<= {TARGET_MB} MB/source")  # fmt: skip
    if best is not None:
        print(f"ingest_sources_per_core={best[0]:.0f} ingest_p95_ms={best[1]:.1f} "
              f"ingest_mb_per_source={best[2]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
