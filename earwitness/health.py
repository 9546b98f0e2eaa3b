"""``/metrics``, ``/healthz`` and ``/readyz`` on thread ``ew-http`` (owner: ``HealthServer``).

Shared by the analyzer (``stream/probes.py`` adds the engine) and the alert runner (``sinks/``).
``/healthz`` is 200 while the poll loop is turning; ``/readyz`` is 200 once the consumer holds
partitions (and whatever the component adds). Kubernetes restarts on the first and routes (and
KEDA/rollouts wait) on the second.

The server is small on purpose and bounded: at most ``max_connections`` connections are served
at once (one thread each; more are closed at once), a connection idle for ``timeout_s`` is
closed, and with a ``token`` ``/metrics`` answers 401 without ``Authorization: Bearer
<token>`` (the probes stay open: the kubelet sends no token).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` at once; the rest are closed."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int) -> None:
        super().__init__(address, handler)
        self.limit = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            logger.warning("http: %d connections already open; closing a new one", self.limit)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class HealthServer:
    """Serves the probes and metrics until ``stop()``."""

    def __init__(
        self,
        host: str,
        port: int,
        health: LoopHealth,
        registry: CollectorRegistry,
        thread_name: str = "ew-http",
        *,
        token: str | None = None,
        timeout_s: float = 10.0,
        max_connections: int = 16,
    ) -> None:
        handler = _handler(health, registry, token, timeout_s)
        self._server = _BoundedServer((host, port), handler, max_connections)
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


def _handler(
    health: LoopHealth, registry: CollectorRegistry, token: str | None, timeout_s: float
) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {token}".encode() if token else None

    class Handler(BaseHTTPRequestHandler):
        timeout = timeout_s  # socket timeout: an idle or slow client is dropped

        def do_GET(self) -> None:
            if self.path == "/metrics":
                if not self._authorized():
                    self._reply(401, b"bearer token required\n", "text/plain", bearer=True)
                    return
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path in ("/healthz", "/readyz"):
                ok, why = health.healthy() if self.path == "/healthz" else health.ready()
                self._reply(200 if ok else 503, why.encode() + b"\n", "text/plain")
            else:
                self._reply(404, b"not found\n", "text/plain")

        def _authorized(self) -> bool:
            if expected is None:
                return True
            offered = self.headers.get("Authorization", "").encode()
            return hmac.compare_digest(offered, expected)

        def _reply(self, status: int, body: bytes, content_type: str, bearer: bool = False) -> None:
            self.send_response(status)
            if bearer:
                self.send_header("WWW-Authenticate", "Bearer")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("http: %s", format % args)

    return Handler
