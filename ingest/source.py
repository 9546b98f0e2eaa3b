"""One configured source, kept running forever: connect, read, fail, back off, reconnect.

::

    ┌──────────► connecting ──► up (audio flows) ──┐
    │                │                             │ fails, stalls, ends
    │                └──────── fails ──────────────┤
    │                                              ▼
    └── wait: initial_s · 2^(n-1) ≤ max_s,   backoff (transient: refused, timeout, ended ...)
        jittered over its upper half          failed  (needs a person: auth, not_found, ...)

Before every wait the open segment is closed with an ``ew-eos`` frame, so its last window is
captioned at once. A reconnect starts a new segment (``ew-seq`` 0, time forward).

Threads and owners: the :class:`~ingest.service.Ingest` supervisor owns every ``Source``; a
``Source`` owns its reader thread ``ew-ingest-src-<stream_id>``. The framer and the generation
number are guarded by the source's lock: a reader hands frames on only while its generation
is current (:meth:`Source.emit`).

The watchdog (:meth:`Source.check`, called by the supervisor every second) is for a reader
stuck inside FFmpeg past every timeout (PyAV #584: ``av.open`` on a camera that accepts and
never answers). A thread inside a C call cannot be stopped, so the watchdog *abandons* it:
the generation moves on (whatever the stuck thread does later is dropped), the open segment
gets its ``ew-eos``, and a fresh reader thread starts after the backoff. The stuck thread
holds no lock and no other source's resources, so it slows no one; it exits when FFmpeg
returns. ``earwitness_ingest_watchdog_abandoned_total`` counts them.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from earwitness.errors import ConfigError
from ingest.config import SourceSettings
from ingest.framer import Framer, OutFrame
from ingest.media import InputSpec, SourceError, ffmpeg_options
from ingest.metrics import IngestMetrics
from ingest.producer import Publisher
from ingest.reader import Connection
from ingest.urls import redact, with_credentials

logger = logging.getLogger(__name__)

WATCHDOG_GRACE_S = 5.0
"""How far past its own timeouts a reader may be before the watchdog abandons it."""
NEEDS_A_PERSON = frozenset({"auth", "not_found", "bad_url", "no_audio", "config"})


class Source:
    """A source's lifecycle; ``start()`` once, ``stop()`` once (by the supervisor)."""

    def __init__(
        self, settings: SourceSettings, publisher: Publisher, metrics: IngestMetrics
    ) -> None:
        self.settings = settings
        self.stream_id = settings.stream_id
        self.redacted_url = redact(settings.url)
        self._publisher = publisher
        self._metrics = metrics
        self._m = metrics.source(self.stream_id)
        self._lock = threading.Lock()
        self._framer = Framer(self.stream_id, settings.sample_format, settings.frame_ms)
        self._generation = 0
        self._deadline_mono = float("inf")
        self._stop = threading.Event()
        self._rng = random.Random()
        self._thread: threading.Thread | None = None
        self.state = "connecting"
        self.last_error = ""
        """The last failure, redacted (for logs and probes)."""
        self.stuck_threads: list[threading.Thread] = []

    # --- the supervisor's side -------------------------------------------------------------

    def start(self) -> None:
        self._set_state("connecting")
        self._spawn(self._generation, first=True)

    def stop(self) -> None:
        """Close the open segment (``ew-eos``) now, and let the reader go (it exits at its next
        packet or timeout; nothing it does after this reaches Kafka)."""
        self._stop.set()
        with self._lock:
            self._generation += 1
            self._close_segment()
        self._set_state("stopped")

    def join(self, timeout_s: float) -> bool:
        """Wait for the reader thread to end; whether it did."""
        if self._thread is not None:
            self._thread.join(max(0.0, timeout_s))
            return not self._thread.is_alive()
        return True

    def check(self, now_mono: float) -> bool:
        """The watchdog: abandon a reader stuck past its deadline. True if it did."""
        thread = self._thread
        if self._stop.is_set() or thread is None or now_mono <= self._deadline_mono:
            return False
        with self._lock:
            if now_mono <= self._deadline_mono:
                return False
            self._generation += 1
            self._deadline_mono = float("inf")
            self._close_segment()
            generation = self._generation
        self._m.abandoned.inc()
        self.stuck_threads = [t for t in [*self.stuck_threads, thread] if t.is_alive()]
        logger.error(
            "source %s (%s): its reader is stuck inside FFmpeg past every timeout; left behind "
            "(%d stuck now), a new one starts",
            self.stream_id,
            self.redacted_url,
            len(self.stuck_threads),
        )
        self._spawn(generation, first=False)
        return True

    # --- the reader's side (the Gate of ingest.reader) -------------------------------------

    def emit(self, generation: int, work: Callable[[Framer, list[OutFrame]], None]) -> bool:
        out: list[OutFrame] = []
        with self._lock:
            if generation != self._generation:
                return False
            work(self._framer, out)
            if out:  # under the lock: a stale reader's frames can never follow the ew-eos
                self._publisher.put(out)
        return True

    def progress(self, generation: int, deadline_mono: float) -> None:
        if generation == self._generation:
            self._deadline_mono = deadline_mono

    # --- the reader thread -----------------------------------------------------------------

    def _spawn(self, generation: int, *, first: bool) -> None:
        self._thread = threading.Thread(
            target=self._run,
            args=(generation, 0 if first else 1),
            name=f"ew-ingest-src-{self.stream_id}",
            daemon=True,
        )
        self._thread.start()

    def _run(self, generation: int, failures: int) -> None:
        while self._current(generation):
            if failures and not self._wait(failures):
                return
            if failures:
                self._m.reconnects.inc()
            self._set_state("connecting")
            connection: Connection | None = None
            try:
                connection = self._connection(generation)
                connection.run(WATCHDOG_GRACE_S)
            except (SourceError, ConfigError) as exc:
                self._failed(generation, exc)
            except Exception as exc:  # a bug in a reader must not end the source for good
                logger.exception("source %s: unexpected error in its reader", self.stream_id)
                self._failed(generation, SourceError("internal", type(exc).__name__))
            if not self._current(generation):
                return
            failures = self._next_failures(failures, connection)
            with self._lock:
                if generation == self._generation:
                    self._deadline_mono = float("inf")
                    self._close_segment()

    def _connection(self, generation: int) -> Connection:
        s = self.settings
        password = s.password()
        spec = InputSpec(
            url=with_credentials(s.url, s.username, password),
            redacted=self.redacted_url,
            input_format=s.input_format,
            options=ffmpeg_options(s.url, s.transport, s.read_timeout_s, s.options),
            open_timeout_s=s.open_timeout_s,
            read_timeout_s=s.read_timeout_s,
            secrets=(password.get_secret_value(),) if password is not None else (),
        )
        return Connection(s, spec, self, generation, self._m, self._up)

    def _next_failures(self, failures: int, connection: Connection | None) -> int:
        """A connection that carried ``reset_after_s`` of audio starts the count afresh."""
        if connection is not None and connection.audio_s >= self.settings.backoff.reset_after_s:
            return 1
        return failures + 1

    def _wait(self, failures: int) -> bool:
        """Sleep the backoff (False: stopped meanwhile)."""
        backoff = self.settings.backoff
        cap = min(backoff.max_s, backoff.initial_s * 2 ** min(failures - 1, 30))
        delay = self._rng.uniform(cap / 2, cap)
        logger.warning(
            "source %s (%s): %s; retrying in %.1f s",
            self.stream_id,
            self.redacted_url,
            self.last_error,
            delay,
        )
        return not self._stop.wait(delay)

    def _failed(self, generation: int, exc: SourceError | ConfigError) -> None:
        reason = exc.reason if isinstance(exc, SourceError) else "config"
        if not self._current(generation):
            return
        self._metrics.errors.labels(self.stream_id, reason).inc()
        self.last_error = str(exc)
        self._set_state("failed" if reason in NEEDS_A_PERSON else "backoff")

    def _up(self, what: str) -> None:
        self._set_state("up")
        logger.info("source %s (%s) up: %s", self.stream_id, self.redacted_url, what)

    def _current(self, generation: int) -> bool:
        return generation == self._generation and not self._stop.is_set()

    def _close_segment(self) -> None:
        """Under the lock: the open segment's ``ew-eos`` frame, to Kafka."""
        out: list[OutFrame] = []
        self._framer.close(out, time.monotonic())
        if out:
            self._publisher.put(out)

    def _set_state(self, state: str) -> None:
        self.state = state
        self._metrics.set_state(self.stream_id, state)
