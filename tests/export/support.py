"""Helpers for export tests: caption records, an exporter process, reading what it wrote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import yaml

from earwitness.events import CaptionEvent
from export import layout
from tests.sinks.sinkutil import caption_event

REPO = Path(__file__).resolve().parents[2]
HOUR_NS = 3_600_000_000_000
BAD_RECORDS = [b"not json at all", b'{"kind": "caption"}', b"[1, 2]"]


def captions(n: int, *, streams: int = 8, start: int = 0) -> list[CaptionEvent]:
    """``n`` caption events over ``streams`` streams; every 40th window falls in the next hour."""
    events = []
    for i in range(start, start + n):
        stream = f"cam-{i % streams}"
        event = caption_event(i, f"caption {i}: a dog barks", stream_id=stream)
        if i % 40 == 39:
            later = event.window_start_ns + HOUR_NS
            event = event.model_copy(update={"window_start_ns": later})
        events.append(event)
    return events


def records(events: Iterable[CaptionEvent]) -> list[tuple[bytes, bytes]]:
    return [(event.stream_id.encode(), event.to_json()) for event in events]


def write_config(directory: Path, bootstrap: str, topic: str, url: str, **extra: Any) -> Path:
    """An export.yaml for a test: small files, quick rolls, no metrics port."""
    settings: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "captions_topic": topic,
            "group_id": f"export-{topic}",
            "session_timeout_ms": 30_000,
        },
        "destination": {"url": url},
        "roll": {"max_rows": 40, "max_age_s": 1.0},
        "metrics_port": None,
    }
    for section, values in extra.items():
        if isinstance(values, dict) and isinstance(settings.get(section), dict):
            settings[section] = {**settings[section], **values}
        else:
            settings[section] = values
    path = directory / f"export-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


class ExporterProcess:
    """``earwitness export`` as a child process with its log in a file; the test owns it."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "earwitness.cli", "export", "--config", str(config)],
            cwd=REPO,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._out.close()

    def terminate(self, timeout_s: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(30)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def committed_end(fs: pafs.FileSystem, root: str, table: str, partition: int) -> int:
    """The offset after the newest manifest of ``partition`` (0 if none)."""
    folder = f"{root}/{layout.manifests_dir(table, partition)}"
    infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    spans = [s for i in infos if (s := layout.span_of_manifest(i.path))]
    return max((s.next_offset for s in spans), default=0)


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def data_files(fs: pafs.FileSystem, root: str, table: str) -> list[str]:
    infos = fs.get_file_info(
        pafs.FileSelector(f"{root}/{table}", recursive=True, allow_not_found=True)
    )
    return sorted(i.path for i in infos if i.type == pafs.FileType.File)


def read_table(fs: pafs.FileSystem, root: str, table: str) -> pa.Table:
    """Every published data file of ``table``, concatenated (schemas merged by name)."""
    tables = [pq.read_table(path, filesystem=fs) for path in data_files(fs, root, table)]
    return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})


def read_rejects(fs: pafs.FileSystem, root: str, table: str) -> pa.Table:
    infos = fs.get_file_info(
        pafs.FileSelector(f"{root}/{layout.REJECTS}/{table}", allow_not_found=True)
    )
    tables = [pq.read_table(i.path, filesystem=fs) for i in infos]
    return pa.concat_tables(tables) if tables else pa.table({})


def manifests(fs: pafs.FileSystem, root: str, table: str) -> list[dict[str, Any]]:
    selector = pafs.FileSelector(f"{root}/{layout.MANIFESTS}/{table}", recursive=True)
    out = []
    for info in fs.get_file_info(selector):
        if info.type == pafs.FileType.File and layout.span_of_manifest(info.path):
            with fs.open_input_stream(info.path) as stream:
                out.append(orjson.loads(stream.read()))
    return out
