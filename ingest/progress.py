"""One progress bar with an ETA for a whole ``earwitness publish`` job, on stderr.

Progress is counted in input bytes (every file has a size; not every file knows its duration),
read as demuxing goes (``packet.pos``), over all files, whichever worker reads them::

    [###########...................]  37.5%  2/5 files  1.2 GiB/3.1 GiB  ETA 0:04:12

Drawn at most five times a second, and only when stderr is a terminal (or when forced, for
tests). Thread-safe: the workers of a job share one.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

_WIDTH = 30
_EVERY_S = 0.2


class Progress:
    """The job's bar. ``update(file, pos)`` as a file is read, ``done(file)`` when it ends."""

    def __init__(
        self,
        sizes: dict[str, int],
        *,
        enabled: bool,
        out: TextIO | None = None,
        force: bool = False,
    ) -> None:
        self._out = out or sys.stderr
        self.enabled = enabled and (force or self._out.isatty())
        self._sizes = sizes
        self._total = max(1, sum(sizes.values()))
        self._read = dict.fromkeys(sizes, 0)
        self._finished: set[str] = set()
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._shown = 0.0

    def update(self, name: str, position: int) -> None:
        if position > self._read.get(name, 0):
            self._read[name] = min(position, self._sizes.get(name, position))
        self._draw(force=False)

    def done(self, name: str) -> None:
        self._read[name] = self._sizes.get(name, 0)
        self._finished.add(name)
        self._draw(force=True)

    def close(self) -> None:
        if self.enabled:
            self._draw(force=True)
            self._out.write("\n")
            self._out.flush()

    def line(self, now: float | None = None) -> str:
        """The bar as text (what is drawn)."""
        share = min(1.0, sum(self._read.values()) / self._total)
        filled = int(share * _WIDTH)
        elapsed = (now if now is not None else time.monotonic()) - self._started
        eta = _clock(elapsed * (1 - share) / share) if share > 0 else "--:--:--"
        return (
            f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {share:6.1%}  "
            f"{len(self._finished)}/{len(self._sizes)} files  "
            f"{_size(sum(self._read.values()))}/{_size(self._total)}  ETA {eta}"
        )

    def _draw(self, *, force: bool) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._shown < _EVERY_S:
                return
            self._shown = now
            self._out.write("\r" + self.line(now))
            self._out.flush()


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"
