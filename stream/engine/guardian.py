"""The guardian: a small process that kills the analyzer's engine processes if the analyzer
dies without stopping them (SIGKILL, OOM kill, a crash), at any moment, start-up included.

::

    earwitness analyze (pid A)
    ├── guardian  (python -m stream.engine.guardian A)   started first, before any engine
    └── VLLM::EngineCore ...                             appears while the engine starts

The guardian asks the kernel to signal it when its parent dies (``PR_SET_PDEATHSIG``), notes
A's other descendants every :data:`POLL_S`, and on A's death kills every one it noted. It
needs nothing from A at that moment, so it covers what A's own clean-up (``stop()``, the
reaper of ``processes.py`` at the next start) cannot. Linux only (prctl); elsewhere it just
exits. Owner: ``stream/cli.py``, which starts it and leaves it to exit with the analyzer.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

import psutil

POLL_S = 0.2
PR_SET_PDEATHSIG = 1


def main(parent_pid: int) -> int:
    if not sys.platform.startswith("linux"):
        return 0
    died = []
    signal.signal(signal.SIGTERM, lambda *_: died.append(True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the analyzer
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    noted: dict[int, float] = {}
    while not died and os.getppid() == parent_pid:  # (it may die before prctl took effect)
        _note(parent_pid, noted)
        time.sleep(POLL_S)
    _kill(noted)
    return 0


def _note(parent_pid: int, noted: dict[int, float]) -> None:
    """Remember the parent's descendants (but this guardian) with their create times."""
    try:
        for child in psutil.Process(parent_pid).children(recursive=True):
            if child.pid != os.getpid():
                noted.setdefault(child.pid, child.create_time())
    except psutil.Error:
        return


def _kill(noted: dict[int, float]) -> None:
    for pid, created in noted.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) < 0.01:  # not a pid reused since
                proc.kill()
        except psutil.Error:
            continue


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1])))
