"""The console under load: live fan-out, page loads over 1 M captions, search, Listen.

    .venv/bin/python bench/console.py [--bootstrap HOST:PORT] [--streams 1000] [--clients 50]
        [--seconds 60] [--captions 1000000] [--db out/bench/console-1M.db]

Every part runs ``earwitness console`` as its own process against a real broker (a private
one unless ``--bootstrap``), and compares with a baseline measured in the same run:

1. live: ``--streams`` streams each send one caption every 10 s (committed in transactions
   every second, as the analyzer does) while ``--clients`` SSE clients follow the Streams
   view. Commit → client latency (p50/p95/max), the console's CPU (share of one core) and
   resident memory. Baseline: a bare read_committed consumer of the same records.
2. pages: a database of ``--captions`` captions over ``--streams`` streams, built with the
   console's own writer (kept in ``--db`` for the next run); the time to load each page over
   HTTP (and, with Chromium, in the browser: navigation start → load event), and search.
   Baselines: a static file (the server's floor) and a LIKE scan (search without FTS5).
3. listen: 50 streams interleaved on one partition of the frames topic; the time to the first
   byte of a window's WAV (the server rebuilds the whole window first, so it is also the time
   to the whole file). Baseline: a bare consumer reading the same offset range.

Headline ``name=value`` lines come last (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.console_parts import listen, live, pages
from tests.support.kafka import LocalBroker


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="an existing broker (default: a private one)")
    parser.add_argument("--streams", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured live time")
    parser.add_argument("--captions", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("out/bench/console-1M.db"))
    parser.add_argument("--parts", default="live,pages,listen")
    args = parser.parse_args()
    print(f"cpu cores {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        broker = None if args.bootstrap else LocalBroker(Path(tmp) / "kafka")
        bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
        try:
            headlines = _run(args, bootstrap, Path(tmp))
        finally:
            if broker is not None:
                broker.stop()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    for name, value in headlines.items():
        print(f"{name}={value}")
    return 0


def _run(args: argparse.Namespace, bootstrap: str, tmp: Path) -> dict[str, str]:
    parts = set(args.parts.split(","))
    headlines: dict[str, str] = {}
    started = time.monotonic()
    if "live" in parts:
        headlines |= live.run(bootstrap, tmp / "live", args.streams, args.clients, args.seconds)
    if "pages" in parts:
        headlines |= pages.run(bootstrap, tmp / "pages", args.db, args.captions, args.streams)
    if "listen" in parts:
        headlines |= listen.run(bootstrap, tmp / "listen")
    print(f"bench took {time.monotonic() - started:.0f} s")
    return headlines


if __name__ == "__main__":
    raise SystemExit(main())
