"""``/metrics``, ``/healthz`` and ``/readyz`` on thread ``ew-http`` (owner: ``HealthServer``).

Shared by the analyzer (``stream/probes.py`` adds the engine) and the alert runner (``sinks/``).
``/healthz`` is 200 while the poll loop is turning; ``/readyz`` is 200 once the consumer holds
partitions (and whatever the component adds). Kubernetes restarts on the first and routes (and
KEDA/rollouts wait) on the second.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)


class LoopHealth:
    """What the probes read; written by the poll loop, read by the HTTP threads.

    Components with more to say (the analyzer's engine) subclass it and call ``super()``.
    """

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self.heartbeat_s = time.monotonic()
        self.assigned = False

    def beat(self) -> None:
        self.heartbeat_s = time.monotonic()

    def healthy(self) -> tuple[bool, str]:
        stalled = time.monotonic() - self.heartbeat_s
        if stalled > self.stall_s:
            return False, f"poll loop stalled for {stalled:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if not self.assigned:
            return False, "no partitions assigned"
        return self.healthy()


class HealthServer:
    """Serves the probes and metrics until ``stop()``."""

    def __init__(
        self,
        host: str,
        port: int,
        health: LoopHealth,
        registry: CollectorRegistry,
        thread_name: str = "ew-http",
    ) -> None:
        handler = _handler(health, registry)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=thread_name, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        logger.info("serving /metrics, /healthz, /readyz on port %d", self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _handler(health: LoopHealth, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path in ("/healthz", "/readyz"):
                ok, why = health.healthy() if self.path == "/healthz" else health.ready()
                self._reply(200 if ok else 503, why.encode() + b"\n", "text/plain")
            else:
                self._reply(404, b"not found\n", "text/plain")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("http: %s", format % args)

    return Handler
