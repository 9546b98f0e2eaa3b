"""Engine processes left by a SIGKILLed analyzer are killed by the next engine start."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from stream.engine import processes as orphans

# A stand-in "analyzer" that starts a long-lived child (its "engine"), records it, and waits.
ANALYZER = """
import subprocess, sys, time, psutil
from pathlib import Path
from stream.engine import processes as orphans
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
orphans.record([psutil.Process(child.pid)], Path(sys.argv[1]))
print(child.pid, flush=True)
time.sleep(600)
"""


def start_analyzer(record: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", ANALYZER, str(record)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def test_a_dead_analyzers_engine_is_killed_and_a_live_ones_is_not(tmp_path: Path):
    record = tmp_path / "engines.json"
    dead, dead_child = start_analyzer(record)
    live, live_child = start_analyzer(record)
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait(10)
        assert psutil.pid_exists(dead_child), "the orphan should outlive its analyzer"

        assert orphans.reap_orphans(record) == 1

        deadline = time.monotonic() + 10
        while psutil.pid_exists(dead_child) and time.monotonic() < deadline:
            if psutil.Process(dead_child).status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.05)
        assert (
            not psutil.pid_exists(dead_child)
            or psutil.Process(dead_child).status() == psutil.STATUS_ZOMBIE
        )
        assert psutil.Process(live_child).is_running()
        assert orphans.reap_orphans(record) == 0
    finally:
        for proc in (live, dead):
            proc.kill()
            proc.wait(10)
            proc.stdout.close()  # type: ignore[union-attr]
        psutil.Process(live_child).kill()


def test_forget_drops_a_cleanly_stopped_engine(tmp_path: Path):
    record = tmp_path / "engines.json"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphans.record([psutil.Process(child.pid)], record)
        orphans.forget([child.pid], record)
        assert record.read_bytes() == b"[]"
    finally:
        child.kill()
        child.wait()
