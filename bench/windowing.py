"""Benchmark of ``windowing/``: decode + reassembly + windowing on one core, and memory per stream.

    .venv/bin/python bench/windowing.py [--streams 1000] [--seconds 36] [--profile]

Frames are 20 ms, round-robin over the streams (as a partition interleaves them), encoded
beforehand in batches outside the timed region; the timed loop is exactly what the analyzer
runs per record: ``decode_frame`` then ``Windower.push``. Windows are 30 s with a 5 s hop.
frames/s divides by the process's CPU time (one thread, so one core); the wall-clock rate,
lower on a shared machine, is in the notes.

Resident bytes per stream: RSS growth over the 16 kHz mono run (all 1,000 streams past 30 s,
so every ring is at its largest), divided by the streams; the audio ``windowing/`` itself
holds (``Windower.held_bytes``) is shown next to it.

The naive baseline is what a first version tends to be: headers parsed into a str dict,
``np.concatenate`` onto a per-stream array each frame, a slice per window. It is run on a few
streams only, because each frame copies the whole growing window.

The last line is ``frames_per_s=<16 kHz mono> bytes_per_stream=<resident bytes>``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

# This file is named like the package it measures: put the repository root first on the path.
sys.path[0] = str(Path(__file__).resolve().parents[1])
from windowing import Windower, WindowSettings, decode_frame, encode_frame  # noqa: E402

FRAME_MS = 20
TS0_NS = 1_700_000_000_000_000_000
TARGET_FRAMES_PER_S = 150_000
TARGET_BYTES_PER_STREAM = 2_500_000
Record = tuple[bytes, bytes, list[tuple[str, bytes]], tuple[int, int]]


def main() -> None:
    args = _parser().parse_args()
    settings = WindowSettings(window_s=30.0, hop_s=5.0)
    rows: list[tuple[str, str, str, str]] = []
    mono, per_stream, held = _run_mono(args, settings, rows)
    _run_stereo(args, settings, rows)
    rows.append(("naive baseline, 16 kHz mono", f"{_naive(settings):,.0f} frames/s", "-", "-"))
    rows.append(("resident bytes/stream", f"{per_stream:,.0f}", _verdict(per_stream), ""))
    rows.append(("held audio bytes/stream", f"{held:,.0f}", "", "windowing's own rings"))
    _print(rows)
    print(f"frames_per_s={mono:.0f} bytes_per_stream={per_stream:.0f}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=36.0, help="audio per stream, 16k mono")
    parser.add_argument("--stereo-seconds", type=float, default=8.0, help="audio per stream, 48k")
    parser.add_argument("--profile", action="store_true", help="cProfile the 16 kHz mono run")
    return parser


def _run_mono(
    args: argparse.Namespace, settings: WindowSettings, rows: list[tuple[str, str, str, str]]
) -> tuple[float, float, float]:
    windower = Windower(settings.model_copy(update={"max_streams": args.streams}))
    rss_before = _rss_bytes()
    pcm = _pcm(16_000, 1)
    frames = int(args.seconds * 1000 / FRAME_MS)
    run = lambda: _drive(windower, _batches(args.streams, frames, 16_000, 1, pcm))  # noqa: E731
    cpu, wall, windows = _profiled(run) if args.profile else run()
    gc.collect()
    per_stream = (_rss_bytes() - rss_before) / args.streams
    held = windower.held_bytes() / args.streams
    rate = args.streams * frames / cpu
    note = (
        f"{args.streams} streams x {args.seconds:g} s, {windows} windows; "
        f"wall clock {args.streams * frames / wall:,.0f}/s"
    )
    rows.append(("16 kHz mono s16, frames/s", f"{rate:,.0f}", _verdict(rate, True), note))
    windower.flush_all()
    return rate, per_stream, held


def _run_stereo(
    args: argparse.Namespace, settings: WindowSettings, rows: list[tuple[str, str, str, str]]
) -> None:
    windower = Windower(settings.model_copy(update={"max_streams": args.streams}))
    frames = int(args.stereo_seconds * 1000 / FRAME_MS)
    batches = _batches(args.streams, frames, 48_000, 2, _pcm(48_000, 2))
    cpu, wall, _ = _drive(windower, batches)
    rate = args.streams * frames / cpu
    note = (
        f"{args.streams} streams x {args.stereo_seconds:g} s, soxr HQ; "
        f"wall clock {args.streams * frames / wall:,.0f}/s"
    )
    rows.append(("48 kHz stereo s16, frames/s", f"{rate:,.0f}", "(no target)", note))
    windower.flush_all()


def _pcm(rate_hz: int, channels: int) -> bytes:
    """20 ms of a 440 Hz tone at -12 dBFS, interleaved s16le."""
    n = rate_hz * FRAME_MS // 1000
    tone = 0.25 * np.sin(2 * np.pi * 440 * np.arange(n) / rate_hz)
    return np.repeat((tone * 32767).astype("<i2"), channels).tobytes()


def _batches(
    streams: int, frames: int, rate_hz: int, channels: int, pcm: bytes, *, per_batch: int = 10
) -> Iterator[list[Record]]:
    """Records in partition order (round-robin over streams), ``per_batch`` rounds at a time."""
    ids = [f"camera-{i:05d}" for i in range(streams)]
    step_ns = FRAME_MS * 1_000_000
    offset = 0
    for first in range(0, frames, per_batch):
        batch = []
        for seq in range(first, min(frames, first + per_batch)):
            for stream_id in ids:
                key, value, headers = encode_frame(
                    stream_id, seq, TS0_NS + seq * step_ns, rate_hz, channels, "s16le", pcm
                )
                batch.append((key, value, headers, (0, offset)))
                offset += 1
        yield batch


def _drive(windower: Windower, batches: Iterator[list[Record]]) -> tuple[float, float, int]:
    """CPU and wall seconds spent in decode + push (batch building excluded), windows emitted.

    CPU time (``time.process_time``) is the one-core figure: on a shared machine the wall clock
    also counts the time other processes held the core.
    """
    cpu, wall, windows, now_s = 0.0, 0.0, 0, 0.0
    push = windower.push
    for batch in batches:
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        for key, value, headers, position in batch:
            windows += len(push(decode_frame(key, value, headers, position), now_s))
        cpu += time.process_time() - started_cpu
        wall += time.perf_counter() - started_wall
        now_s += 0.2
    return cpu, wall, windows


def _profiled(run: Callable[[], tuple[float, float, int]]) -> tuple[float, float, int]:
    profile = cProfile.Profile()
    result = profile.runcall(run)
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)
    return result


def _naive(settings: WindowSettings, streams: int = 20, frames: int = 1_600) -> float:
    """Frames/s of the naive design (see the module docstring) on the same records."""
    buffers: dict[str, np.ndarray] = {}
    cpu = 0.0
    window, hop = settings.window_samples, settings.hop_samples
    for batch in _batches(streams, frames, 16_000, 1, _pcm(16_000, 1)):
        started = time.process_time()
        for key, value, headers, _ in batch:
            fields = {name: raw.decode() for name, raw in headers}
            int(fields["ew-seq"]), int(fields["ew-ts"]), int(fields["ew-rate"])
            stream_id = key.decode()
            samples = np.frombuffer(value, dtype="<i2").astype(np.float32) / 32768
            held = np.concatenate((buffers.get(stream_id, samples[:0]), samples))
            if len(held) >= window:
                held[:window].copy()
                held = held[hop:]
            buffers[stream_id] = held
        cpu += time.process_time() - started
    return streams * frames / cpu


def _rss_bytes() -> int:
    fields = Path("/proc/self/statm").read_text().split()
    return int(fields[1]) * 4096


def _verdict(value: float, higher_is_better: bool = False) -> str:
    if higher_is_better:
        return f"{'PASS' if value >= TARGET_FRAMES_PER_S else 'MISS'} (>= {TARGET_FRAMES_PER_S:,})"
    ok = value <= TARGET_BYTES_PER_STREAM
    return f"{'PASS' if ok else 'MISS'} (<= {TARGET_BYTES_PER_STREAM:,})"


def _print(rows: list[tuple[str, str, str, str]]) -> None:
    header = ("measure", "value", "target", "notes")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
