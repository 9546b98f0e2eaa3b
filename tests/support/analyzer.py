"""Running the analyzer in tests: in-process on a shared engine, or as a real process.

``running()`` drives :class:`~stream.analyzer.Analyzer` on a thread of the test process with an
engine worker the test owns (cheap: no engine start). :class:`AnalyzerProcess` runs
``earwitness analyze`` as a child process with its own engine (~30 s to start on CPU) and its log
in a file, for what only a process can show: SIGKILL at a failpoint, SIGTERM, ``/metrics``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from stream.analyzer import Analyzer
from stream.config import AnalyzerSettings, HttpSettings, KafkaSettings
from stream.engine.settings import BatchSettings, EngineSettings
from stream.engine.worker import EngineWorker
from stream.metrics import AnalyzerMetrics
from stream.probes import Health
from stream.topics import ensure_topics
from tests.support.kafka import unique_name
from windowing.config import WindowSettings

REPO = Path(__file__).resolve().parents[2]

THREAD_NAME = "analyzer-test"

BATCH = BatchSettings(max_batch=4, max_wait_ms=50, max_inflight=8, drain_timeout_s=60)
"""Micro-batching for CPU tests: small batches, a generous drain."""


PROCESS_WINDOWING = WindowSettings(window_s=4, hop_s=2, min_window_s=1, idle_timeout_s=600)
"""Short windows, and segments that never close for idleness during a test."""
ENGINE_START_S = 240
"""Bound on an analyzer process's start (engine warm-up included) on a loaded 2-core box."""


def analyzer_settings(
    bootstrap: str, frames_topic: str, model_dir: Path, group: str = "eo", **kafka: object
) -> AnalyzerSettings:
    """An analyzer on ``frames_topic`` → ``<frames_topic>.captions``, a fresh group
    ``<group>-…``, frequent commits, the tiny model, a free HTTP port."""
    return AnalyzerSettings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap,
            frames_topic=frames_topic,
            captions_topic=f"{frames_topic}.captions",
            group_id=unique_name(group),
            commit_interval_ms=200,
            **kafka,  # type: ignore[arg-type]
        ),
        windowing=PROCESS_WINDOWING,
        engine=engine_settings(model_dir),
        batch=BATCH,
        http=HttpSettings(host="127.0.0.1", port=0),
    )


def engine_settings(model_dir: Path, **overrides: object) -> EngineSettings:
    """The tiny random-weight model on the CPU build of vLLM, engine core in-process."""
    fields: dict[str, object] = {
        "model": str(model_dir),
        "load_format": "dummy",
        "dtype": "bfloat16",
        "enforce_eager": True,
        "max_model_len": 1024,
        "max_tokens": 8,
        "ignore_eos": True,
        "cpu_kv_cache_bytes": 256 * 2**20,
        "limit_mm_per_prompt": {"audio": 1, "image": 0, "video": 0},
        "vllm_env": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
    }
    return EngineSettings(**{**fields, **overrides})  # type: ignore[arg-type]


@contextmanager
def running(
    settings: AnalyzerSettings,
    worker: EngineWorker,
    *,
    expect_exit: int | None = 0,
    join_timeout_s: float = 120,
) -> Iterator[Analyzer]:
    """An analyzer on thread ``analyzer-test``; stopped (drained) on exit of the block.

    The thread is a daemon: an analyzer wedged inside a Kafka client call cannot keep the test
    process from exiting.
    """
    ensure_topics(settings.kafka)
    analyzer = Analyzer(settings, worker, AnalyzerMetrics(), Health(stall_s=60))
    codes: list[int] = []
    errors: list[BaseException] = []

    def main() -> None:
        try:
            codes.append(analyzer.run())
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    thread = threading.Thread(target=main, name=THREAD_NAME, daemon=True)
    thread.start()
    try:
        yield analyzer
    finally:
        analyzer.stop()
        thread.join(join_timeout_s)
    assert not thread.is_alive(), f"the in-process analyzer did not stop in {join_timeout_s} s"
    assert not errors, f"the in-process analyzer raised {errors[0]!r}"
    if expect_exit is not None:
        assert codes == [expect_exit], f"the analyzer exited {codes}, not {expect_exit}"


class ServiceProcess:
    """``earwitness ARGS...`` as a child process; its stdout and stderr go to ``log_path``.

    The test owns it: ``close()`` (or the context manager) kills it if it still runs.
    """

    def __init__(
        self, args: list[str], directory: Path, name: str, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.args = args
        self.env = env or {}
        self.log_path = directory / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "earwitness.cli", *self.args],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        text = "\n".join(self.log().splitlines()[-lines:])
        return f"---- last {lines} lines of {self.name}'s log ({self.log_path}) ----\n{text}"

    def wait_for_log(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """Block until a log line matches ``pattern``; fail (with the log's tail) otherwise."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            found = regex.search(self.log())
            if found:
                return found
            if not self.alive:
                raise AssertionError(
                    f"{self.name} exited ({self.returncode}) before logging {pattern!r}\n"
                    + self.tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} logged no {pattern!r} in {timeout_s:.0f} s\n" + self.tail()
                )
            time.sleep(0.2)

    def wait_exit(self, timeout_s: float) -> int:
        assert self.proc is not None, "not started"
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still runs after {timeout_s:.0f} s\n" + self.tail()
            ) from None

    def terminate(self) -> None:
        assert self.proc is not None, "not started"
        self.proc.send_signal(signal.SIGTERM)

    def close(self) -> None:
        """Kill the process if it still runs (only this process, by its pid)."""
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(30)

    def metrics_port(self, timeout_s: float = 120) -> int:
        found = self.wait_for_log(r"serving /metrics\S*.* on port (\d+)", timeout_s)
        return int(found.group(1))


class AnalyzerProcess(ServiceProcess):
    """``earwitness analyze`` with ``settings`` (secrets masked: pass them in ``env``)."""

    def __init__(
        self,
        settings: AnalyzerSettings,
        directory: Path,
        name: str,
        env: dict[str, str] | None = None,
        log_level: str = "info",
    ) -> None:
        self.config = directory / f"{name}.json"
        self.config.write_text(settings.model_dump_json())
        args = ["--log-level", log_level, "analyze", "--config", str(self.config)]
        super().__init__(args, directory, name, env)


def scrape(port: int, timeout_s: float = 5) -> dict[str, float]:
    """``/metrics`` of an analyzer as ``{'name{labels}': value}`` (samples only)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as reply:
        text = reply.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def stack_of(thread_name: str) -> list[traceback.FrameSummary]:
    """The current stack of a live thread of this process (empty if none has that name)."""
    frames = sys._current_frames()
    for thread in threading.enumerate():
        if thread.name == thread_name and thread.ident in frames:
            return traceback.extract_stack(frames[thread.ident])
    return []
