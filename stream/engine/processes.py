"""The engine's child processes: found when it starts, reaped when it stops, and killed by the
next engine start when their analyzer died without stopping them.

:class:`EngineProcesses` (owner: one ``CaptionEngine``) notes every process that appears while
vLLM builds the engine (the ``VLLM::EngineCore``, on CPU also its workers), records them in the
file below, and at ``reap()`` waits for them to exit, killing any straggler.

Orphans:
vLLM's engine core runs in a child process (on GPU; the CPU path keeps it in-process). If the
analyzer is SIGKILLed or OOM-killed, nothing tells that child to exit: it keeps the GPU's
memory and the next engine on the host cannot start. So every engine start records its
processes here (pid and create time, with the analyzer's own), and the next start on the same
host kills recorded processes whose analyzer is gone. The create times guard against reused
pids; a file lock guards against analyzers starting side by side. In Kubernetes the end of the
container kills them anyway; this covers restarts on a plain host.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import psutil

logger = logging.getLogger(__name__)

RECORD = Path(tempfile.gettempdir()) / f"earwitness-engine-processes-{os.getuid()}.json"


class EngineProcesses:
    """The child processes of one engine; not thread-safe (used by its engine only)."""

    def __init__(self) -> None:
        self._children: list[psutil.Process] = []

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(child.pid for child in self._children)

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Note (and record for the reaper) every process that appears inside the block."""
        me = psutil.Process()
        before = {child.pid for child in me.children(recursive=True)}
        try:
            yield
        finally:
            self._children = [
                child
                for child in me.children(recursive=True)
                if child.pid not in before and not _is_multiprocessing_helper(child)
            ]
            record(self._children)
            logger.info("engine processes: %s", _describe(self._children))

    def reap(self, timeout_s: float) -> None:
        """Wait for the processes to exit; kill (and log) any that do not. Blocks."""
        children, self._children = self._children, []
        if not children:
            return
        _, alive = psutil.wait_procs(children, timeout=timeout_s)
        for proc in alive:
            logger.warning("engine process %d outlived shutdown; killing it", proc.pid)
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(alive, timeout=timeout_s)
        forget(child.pid for child in children)


def start_guardian() -> subprocess.Popen[bytes]:
    """The guardian of ``guardian.py``: kills this process's descendants if it dies."""
    return subprocess.Popen(
        [sys.executable, "-m", "stream.engine.guardian", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        close_fds=True,
    )


def kill_descendants(keep: Iterable[int] = (), timeout_s: float = 10.0) -> int:
    """On the way out: kill every descendant still alive (but ``keep`` and Python's own
    helpers), e.g. an engine core still starting when a signal came. Returns how many."""
    kept = set(keep)
    left = [
        child
        for child in psutil.Process().children(recursive=True)
        if child.pid not in kept and not _is_multiprocessing_helper(child)
    ]
    for proc in left:
        logger.warning("killing leftover process %d on exit", proc.pid)
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(left, timeout=timeout_s)
    return len(left)


def record(children: Iterable[psutil.Process], path: Path = RECORD) -> None:
    """Remember ``children`` as this process's engine processes."""
    me = psutil.Process()
    entries = [_entry(child, me) for child in children]
    with _locked(path) as current:
        current.extend(e for e in entries if e is not None)


def forget(pids: Iterable[int], path: Path = RECORD) -> None:
    """The engine stopped cleanly: its processes need no reaping."""
    gone = set(pids)
    with _locked(path) as current:
        current[:] = [e for e in current if e["pid"] not in gone]


def reap_orphans(path: Path = RECORD) -> int:
    """Kill recorded engine processes whose analyzer is gone; returns how many were killed."""
    killed = 0
    with _locked(path) as current:
        keep = []
        for entry in current:
            if _alive(entry["parent"], entry["parent_created"]):
                keep.append(entry)
            elif _alive(entry["pid"], entry["created"]):
                logger.warning(
                    "killing engine process %d left by a dead analyzer (pid %d)",
                    entry["pid"],
                    entry["parent"],
                )
                _kill(entry["pid"])
                killed += 1
        current[:] = keep
    return killed


def _entry(child: psutil.Process, parent: psutil.Process) -> dict[str, float] | None:
    try:
        return {
            "pid": child.pid,
            "created": child.create_time(),
            "parent": parent.pid,
            "parent_created": parent.create_time(),
        }
    except psutil.Error:
        return None


def _alive(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - created) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _kill(pid: int) -> None:
    try:
        psutil.Process(pid).kill()
    except psutil.Error:
        return


class _locked:
    """``with _locked(path) as entries:`` read, edit in place, written back under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[dict] = []

    def __enter__(self) -> list[dict]:
        self.file = open(self.path, "a+b")  # closed in __exit__
        fcntl.flock(self.file, fcntl.LOCK_EX)
        self.file.seek(0)
        raw = self.file.read()
        try:
            self.entries = orjson.loads(raw) if raw else []
        except orjson.JSONDecodeError:
            aside = self.path.with_suffix(f".corrupt-{os.getpid()}")
            aside.write_bytes(raw)
            logger.error(
                "engine process record %s is unreadable; kept as %s, starting afresh "
                "(processes it named are not reaped)",
                self.path,
                aside,
            )
            self.entries = []
        if not isinstance(self.entries, list):
            logger.error("engine process record %s is not a list; starting afresh", self.path)
            self.entries = []
        return self.entries

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self.file.seek(0)
                self.file.truncate()
                self.file.write(orjson.dumps(self.entries))
        finally:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()


def _is_multiprocessing_helper(proc: psutil.Process) -> bool:
    """Python's resource tracker / forkserver: shared by the process, it exits with it."""
    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return False
    return "multiprocessing.resource_tracker" in cmdline or "multiprocessing.forkserver" in cmdline


def _describe(procs: list[psutil.Process]) -> list[str]:
    described = []
    for proc in procs:
        try:
            described.append(f"{proc.name()}[{proc.pid}]")
        except psutil.Error:
            described.append(f"?[{proc.pid}]")
    return described
