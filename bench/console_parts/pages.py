"""Part 2 of bench/console.py: page loads and search over a database of 1 M captions.

The database is built with the console's own writer (``Store.apply``, FTS5 triggers and all)
and kept at ``--db`` for the next run (its row count is checked). The console then serves it
(its topics are new and empty, so it only reads).
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np

from bench.console_parts.common import RARE, caption_text, console, new_topics
from console.records import WindowRow
from console.store import Batch, Store
from tests.console.support import NS

BATCH_ROWS = 2_000
ABSENT = "xylophone"
"""A word no generated caption has: search must say so without reading every caption."""
HOP_NS = 10 * NS
REPEATS = 15


def build(db: Path, captions: int, streams: int) -> float:
    """Fill ``db`` with ``captions`` windows over ``streams`` streams; returns rows/s."""
    db.parent.mkdir(parents=True, exist_ok=True)
    store = Store(db, retention_days=30, journal_rows=200_000)
    rng, now = random.Random(11), time.time_ns()
    first = now - (captions // streams + 1) * HOP_NS
    started = time.monotonic()
    for offset in range(0, captions, BATCH_ROWS):
        rows = [
            _row(k, streams, first, rng) for k in range(offset, min(captions, offset + BATCH_ROWS))
        ]
        store.apply(Batch(windows=rows, offsets={("bench", 0): offset}), now)
    rate = captions / (time.monotonic() - started)
    store.purge(now)  # trims the journal the build filled
    store.close()
    return rate


def _row(k: int, streams: int, first: int, rng: random.Random) -> WindowRow:
    stream, index = k % streams, k // streams
    start = first + index * HOP_NS
    return WindowRow(
        event_id=f"bench-{k}", stream_id=f"cam-{stream:04d}", kind="caption", segment_id=first,
        window_index=index, start_ns=start, end_ns=start + 3 * HOP_NS, text=caption_text(rng),
        rms_dbfs=-20 - (k % 40), peak_dbfs=-6, gap_fraction=0.0, produced_ns=start + 3 * HOP_NS,
        frames=None,
    )  # fmt: skip


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as connection:
        return int(connection.execute("SELECT count(*) FROM windows").fetchone()[0])


def _timed(client: httpx.Client, path: str) -> tuple[float, float, int]:
    """(p50 ms, p95 ms, bytes) of REPEATS loads of ``path`` (after one warm-up)."""
    client.get(path).raise_for_status()
    times, size = [], 0
    for _ in range(REPEATS):
        started = time.perf_counter()
        reply = client.get(path)
        times.append(time.perf_counter() - started)
        reply.raise_for_status()
        size = len(reply.content)
    p50, p95 = np.percentile(times, [50, 95]) * 1000
    return p50, p95, size


def _like_baseline(db: Path, word: str) -> float:
    """Search without FTS5: ``LIKE '%word%'`` over the captions, newest 50 (ms)."""
    with sqlite3.connect(db) as connection:
        started = time.perf_counter()
        connection.execute(
            "SELECT id FROM windows WHERE text LIKE ? ORDER BY id DESC LIMIT 50", (f"%{word}%",)
        ).fetchall()
        return (time.perf_counter() - started) * 1000


def run(bootstrap: str, tmp: Path, db: Path, captions: int, streams: int) -> dict[str, str]:
    if _rows(db) != captions:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        print(f"\n2. building {db} with {captions} captions ...", flush=True)
        print(f"   built at {build(db, captions, streams):.0f} captions/s (Store.apply)")
    work = tmp / "console.db"
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(db, work)
    stream = f"cam-{streams // 2:04d}"
    with sqlite3.connect(work) as connection:
        (last,) = connection.execute("SELECT max(start_ns) FROM windows").fetchone()
    at = last - 3600 * NS
    paths = {
        "static file (baseline)": "/static/console.css",
        f"Streams ({streams} tiles)": "/streams",
        "Stream, last 15 min": f"/streams/{stream}",
        "Stream, 24 h": f"/streams/{stream}?span_s=86400",
        "Stream, at a search hit": f"/streams/{stream}?at={at}",
        "Alerts": "/alerts",
        "search: common word": "/search?q=door",
        f"search: rare word ({RARE})": f"/search?q={RARE}",
        f"search: a word in no caption ({ABSENT})": f"/search?q={ABSENT}",
        "search: phrase": "/search?q=" + quote('"glass breaking"'),
        "search: two words + stream": f"/search?q=siren+dog&stream={stream}",
        "search: word + 1 h range": "/search?q=alarm&from=" + _hour_ago(last),
        "search: kind=error (none)": "/search?kind=error",
    }
    topics = new_topics(bootstrap, "bench-pages")
    with (
        console(bootstrap, topics, tmp, store={"path": str(work)}) as process,
        httpx.Client(base_url=process.url, timeout=60) as client,
    ):
        results = {name: _timed(client, path) for name, path in paths.items()}
        browser = _browser_loads(
            process.url, [paths[f"Streams ({streams} tiles)"], paths["Stream, last 15 min"]]
        )
    like_ms = {word: _like_baseline(work, word) for word in (RARE, ABSENT)}
    return _report(results, browser, like_ms, captions, streams)


def _hour_ago(last_ns: int) -> str:
    from console.views import datetime_local

    return quote(datetime_local(last_ns - 3600 * NS))


def _browser_loads(url: str, paths: list[str]) -> dict[str, float]:
    """Navigation start → load event in headless Chromium (median of 5), if it is here."""
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        return {}
    import os

    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from tests.console.browsers import CHROMIUM_FLAGS

    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    out = {}
    try:
        for path in paths:
            times = []
            for _ in range(5):
                driver.get(url + path)
                times.append(driver.execute_script(
                    "const n = performance.getEntriesByType('navigation')[0];"
                    "return n.loadEventEnd - n.startTime;"
                ))  # fmt: skip
            out[path] = float(np.median(times))
    finally:
        driver.quit()
    return out


def _report(
    results: dict[str, tuple[float, float, int]],
    browser: dict[str, float],
    like_ms: dict[str, float],
    captions: int,
    streams: int,
) -> dict[str, str]:
    print(f"\n2. pages over {captions} captions ({streams} streams), HTTP, {REPEATS} loads each")
    print(f"{'page':<40}{'p50 ms':>9}{'p95 ms':>9}{'KiB':>9}")
    for name, (p50, p95, size) in results.items():
        print(f"{name:<40}{p50:>9.1f}{p95:>9.1f}{size / 1024:>9.0f}")
    for word, ms in like_ms.items():
        print(f"{f'baseline: LIKE %{word}% (no FTS5)':<40}{ms:>9.0f}")
    for path, ms in browser.items():
        print(f"in Chromium, {path}: {ms:.0f} ms to the load event (median of 5)")
    pages = [v[1] for k, v in results.items() if not k.startswith(("search", "static"))]
    search = [v[1] for k, v in results.items() if k.startswith("search")]
    headlines = {
        "console_db_captions": str(captions),
        "console_page_p95_ms": f"{max(pages):.0f}",
        "console_search_p95_ms": f"{max(search):.0f}",
        "console_search_like_baseline_ms": f"{like_ms[ABSENT]:.0f}",
    }
    if browser:
        headlines["console_page_browser_load_ms"] = f"{max(browser.values()):.0f}"
    return headlines
