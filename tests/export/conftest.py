"""A real S3 server for export tests: versitygw's POSIX backend on 127.0.0.1 (marker ``s3``).

The binary is built once from the Go module proxy by ``scripts/install-versitygw`` (~10 min the
first time on 2 cores) and cached under ``~/.cache/earwitness``; without ``go`` the tests skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from tests.export.support import REPO

INSTALL = REPO / "scripts" / "install-versitygw"
ACCESS_KEY = "earwitness-test"
SECRET_KEY = "earwitness-test-secret"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    """host:port"""

    def options(self) -> dict[str, str | bool]:
        """pyarrow S3FileSystem arguments (what ``destination.options`` holds)."""
        return {
            "endpoint_override": self.endpoint,
            "scheme": "http",
            "region": "us-east-1",
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
        }

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(**self.options(), allow_bucket_creation=True)

    def new_bucket(self) -> str:
        name = f"lake-{uuid.uuid4().hex[:10]}"
        self.filesystem().create_dir(name)
        return name


def _binary() -> Path:
    path = Path(
        subprocess.run(
            [str(INSTALL), "--path"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    if path.exists():
        return path
    if shutil.which("go") is None:
        pytest.skip("versitygw is not built and go is not installed (scripts/install-versitygw)")
    subprocess.run([str(INSTALL)], check=True, timeout=1800, stdout=subprocess.DEVNULL)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """One versitygw process serving ``root`` on ``port``; the fixture that makes it owns it."""

    def __init__(self, binary: Path, root: Path, port: int) -> None:
        self.binary, self.root, self.port = binary, root, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> S3Server:
        cmd = [str(self.binary), "--access", ACCESS_KEY, "--secret", SECRET_KEY]
        cmd += ["--port", f"127.0.0.1:{self.port}", "posix", str(self.root)]
        with (self.root.parent / f"versitygw-{self.port}.log").open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _wait_for_port(self.port, self.proc)
        return S3Server(f"127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    gateway = Gateway(_binary(), tmp_path_factory.mktemp("versitygw"), _free_port())
    try:
        yield gateway.start()
    finally:
        gateway.stop()


@pytest.fixture
def private_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway of the test's own, for tests that stop and restart it (same port, same data)."""
    gateway = Gateway(_binary(), tmp_path_factory.mktemp("private-versitygw"), _free_port())
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"versitygw exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("versitygw did not listen within 60 s")
