"""Building the images once per session and running them as pods run them.

:func:`build` runs ``scripts/build-images`` (its caches make a second build quick);
:class:`Container` runs ``scripts/run-image`` (podman: the image's entrypoint, user 10001, a
read-only root filesystem) as a child process that the test owns, with its log in a file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "scripts" / "build-images"
RUN = REPO / "scripts" / "run-image"
ARCHIVES = REPO / "build" / "images"
BUILT = ("analyzer-cpu", "alerts", "ingest", "console")
"""What this tier builds: every image but the GPU analyzer (~10 GB; built by hand, --gpu)."""
BUILD_TIMEOUT_S = 3600
"""A cold build on a loaded 2-core machine (a warm one takes a fraction: docs/deploy.md)."""


ARCHIVED = ("alerts", "ingest", "console")
"""Built with their archives (build/images/NAME.tar); analyzer-cpu into the store only: its
archive (~3 GB of gzip, or ~6 GB written twice uncompressed) took 5-8 minutes on every run."""


def build(*args: str) -> str:
    """``scripts/build-images ARGS``; returns its log. Fails (with the log) if the build fails."""
    done = subprocess.run(
        [str(BUILD), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"scripts/build-images exited {done.returncode}\n{log[-6000:]}"
    return log


def tag_of(name: str) -> str:
    return subprocess.run(
        [str(BUILD), "--tag", name], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def run(
    name: str, *args: str, options: tuple[str, ...] = (), timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """One short run of image ``name`` with ``args`` for its entrypoint."""
    return subprocess.run(
        [str(RUN), name, *options, "--", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def archive_index(name: str) -> dict:
    """index.json of build/images/NAME.tar (an OCI image layout in a tar)."""
    with tarfile.open(ARCHIVES / f"{name}.tar") as archive:
        names = set(archive.getnames())
        assert {"oci-layout", "index.json"} <= names, sorted(names)[:10]
        member = archive.extractfile("index.json")
        assert member is not None
        return json.load(member)


def readable(path: Path) -> Path:
    """Make ``path`` (a directory tree) readable by the image's user, 10001."""
    for root, _, files in os.walk(path):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    return path


class Container:
    """``scripts/run-image NAME OPTIONS -- ARGS`` in the background; the test owns it."""

    def __init__(self, name: str, log_path: Path, *args: str, options: tuple[str, ...] = ()):
        self.name = name
        self.log_path = log_path
        self.command = [str(RUN), name, *options, "--", *args]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Container:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop it if it still runs: SIGTERM (podman passes it on), then SIGKILL of our child."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        text = "\n".join(self.log().splitlines()[-lines:])
        return f"---- last {lines} lines of {self.name}'s log ({self.log_path}) ----\n{text}"

    def wait_for_log(self, pattern: str, timeout_s: float) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while not (found := regex.search(self.log())):
            assert self.alive, f"{self.name} exited before logging {pattern!r}\n{self.tail()}"
            assert time.monotonic() < deadline, (
                f"{self.name} logged no {pattern!r} in {timeout_s:.0f} s\n{self.tail()}"
            )
            time.sleep(0.2)
        return found

    def stop(self, timeout_s: float = 120) -> int:
        """SIGTERM, as the kubelet sends it; returns the exit status of the entrypoint."""
        assert self.proc is not None, "not started"
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still runs {timeout_s:.0f} s after SIGTERM\n" + self.tail()
            ) from None
