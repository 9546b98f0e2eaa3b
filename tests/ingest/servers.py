"""Real servers for the ingest tests, on 127.0.0.1 only; each has an owner (its fixture) and a
``stop()``.

* :class:`RtspServer`: GStreamer's gst-rtsp-server (``tests/ingest/rtsp_server.py``), run by
  the system Python (Debian's python3-gi), as a child process.
* :class:`MediaHttpServer`: files (HLS playlists and segments) and ``/live/<file>``: a file
  sent at its own pace, chunked, as Icecast and progressive HTTP streams are.
* :class:`UdpTsSender`: MPEG-TS over UDP at real-time pace, as a broadcast encoder sends it.
* :class:`SilentServer`: accepts TCP connections and never answers (the camera of PyAV #584).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SCRIPT = Path(__file__).with_name("rtsp_server.py")
APT_PACKAGES = (
    "gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
)


def require_gstreamer() -> None:
    """Skip without GStreamer's RTSP server, unless in CI (``CI`` set): there, fail."""
    probe = (
        subprocess.run(
            [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
            capture_output=True,
            check=False,
        )
        if shutil.which(SYSTEM_PYTHON)
        else None
    )
    if probe is None or probe.returncode != 0:
        message = f"GStreamer's RTSP server is not installed (apt-get install {APT_PACKAGES})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


class RtspServer:
    """The RTSP server as a child process; ``restart()`` brings it back on the same port."""

    def __init__(self, directory: Path, user: str = "bob", password: str = "s3cret pass") -> None:
        self.user, self.password = user, password
        self._secret = directory / "rtsp-password"
        self._secret.write_text(password)
        self._log = directory / "rtsp-server.log"
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> RtspServer:
        cmd = [SYSTEM_PYTHON, str(RTSP_SCRIPT), "--port", str(self.port)]
        cmd += ["--user", self.user, "--password-file", str(self._secret)]
        with self._log.open("a") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("port="):
            self.stop()
            raise RuntimeError(f"the RTSP server did not start: {line!r}\n{self._log.read_text()}")
        self.port = int(line.removeprefix("port="))
        return self

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}{mount}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        deadline = time.monotonic() + 30
        while True:
            try:
                self.start()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)  # the port may linger a moment


class _Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/live/"):
            self._live(Path(self.directory) / self.path.removeprefix("/live/"))
        else:
            super().do_GET()

    def _live(self, path: Path) -> None:
        """The file at real-time pace: ``seconds`` (query-less; from the name ``*-<N>s.*``)."""
        data = path.read_bytes()
        seconds = float(path.stem.rsplit("-", 1)[1].removesuffix("s"))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        step = max(1, len(data) // int(seconds * 10))
        started = time.monotonic()
        for n, offset in enumerate(range(0, len(data), step)):
            delay = started + n * seconds * step / len(data) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                self.wfile.write(data[offset : offset + step])
                self.wfile.flush()
            except OSError:
                return

    def log_message(self, format: str, *args: object) -> None:
        pass


class MediaHttpServer:
    """Serves ``directory`` on thread ``test-http`` until ``stop()``."""

    def __init__(self, directory: Path) -> None:
        handler = partial(_Handler, directory=str(directory))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-http")

    def start(self) -> MediaHttpServer:
        self._thread.start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


class UdpTsSender:
    """Sends ``datagrams`` to ``127.0.0.1:port``, one every ``every_s``, on thread ``test-udp``."""

    def __init__(self, datagrams: list[bytes], every_s: float, port: int) -> None:
        self._grams, self._every_s = datagrams, every_s
        self.port = port
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-udp", daemon=True)
        self.sent = 0

    def start(self) -> UdpTsSender:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        for n, gram in enumerate(self._grams):
            if self._stop.wait(max(0.0, started + n * self._every_s - time.monotonic())):
                return
            self._sock.sendto(gram, ("127.0.0.1", self.port))
            self.sent += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._sock.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SilentServer:
    """Accepts TCP connections on thread ``test-silent`` and never sends a byte."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, name="test-silent", daemon=True)

    def start(self) -> SilentServer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._sock.close()
        for conn in self._held:
            conn.close()
