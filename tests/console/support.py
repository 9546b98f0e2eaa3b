"""Helpers for console tests: caption events now, frames with their real offsets, the console
as a real process, a real uvicorn server for the app.

Events are what the analyzer would publish: frames go to a real topic, their delivery offsets
become the frames' positions, the real Windower cuts them into windows, and
``stream.outcome.frame_range`` (the analyzer's own function) fills the event's ``frames``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from confluent_kafka import Message, Producer

from earwitness.events import AudioStats, CaptionEvent, EventKind, Timings, event_id, rfc3339
from sinks.alerts import Alert, AlertState
from sinks.formats import kafka_record
from sinks.rules import Severity
from stream.outcome import frame_range
from tests.sinks.sinkutil import caption_event
from tests.support.frames import Tone, interleaved
from tests.support.kafka import REPO
from windowing import Frame, Window, Windower, WindowSettings, decode_frame

NS = 1_000_000_000
WINDOWING = WindowSettings(window_s=30, hop_s=10, idle_timeout_s=5)
"""The demo analyzer's grid (examples/analyzer-demo.yaml)."""


def caption(
    stream_id: str,
    index: int,
    text: str | None,
    *,
    segment_id: int,
    kind: EventKind = EventKind.CAPTION,
    rms_dbfs: float = -30.0,
    produced_ns: int | None = None,
) -> CaptionEvent:
    """Window ``index`` of the 30 s / 10 s grid from ``segment_id`` (tests/sinks' builder),
    made now: its level ``rms_dbfs``, produced at ``produced_ns`` (default: now)."""
    event = caption_event(index, text, stream_id=stream_id, kind=kind, segment_id=segment_id)
    now = time.time_ns()
    return event.model_copy(
        update={
            "audio": AudioStats(rms_dbfs=rms_dbfs, peak_dbfs=rms_dbfs + 12, gap_fraction=0.0),
            "timings": Timings(window_closed_ns=now, caption_produced_ns=produced_ns or now),
        }
    )


def alert(
    alert_id: str,
    state: AlertState,
    *,
    stream_id: str,
    started_ns: int,
    text: str,
    matched: tuple[str, ...],
    rule_id: str = "glass-breaking",
    **extra: Any,
) -> Alert:
    """An alert as the alert runner's Kafka receiver writes it (sinks.alerts.Alert)."""
    return Alert(
        alert_id=alert_id,
        state=state,
        rule_id=rule_id,
        description="Glass breaking (possible break-in)",
        severity=Severity.CRITICAL,
        stream_id=stream_id,
        started_ns=started_ns,
        last_match_ns=started_ns + 30 * NS,
        ended_ns=started_ns + 90 * NS if state is AlertState.RESOLVED else None,
        windows=3,
        matched=matched,
        caption=text,
        first_segment_id=started_ns,
        first_window_index=0,
        last_event_id="e0",
        **extra,
    )


def alert_record(alert: Alert) -> tuple[bytes, bytes]:
    key, value, _ = kafka_record(alert)
    return key, value


def produce_committed(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    *,
    abort: bool = False,
) -> None:
    """Produce ``records`` in one transaction (as the analyzer does), committed or aborted."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"test-{time.time_ns()}"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for key, value in records:
        producer.produce(topic, value, key)
    if abort:
        producer.flush(30)
        producer.abort_transaction(30)
    else:
        producer.commit_transaction(30)


def events_records(events: Iterable[CaptionEvent]) -> list[tuple[bytes | None, bytes]]:
    return [(e.stream_id.encode(), e.to_json()) for e in events]


def publish_tones(bootstrap: str, topic: str, tones: Iterable[Tone]) -> list[Frame]:
    """Produce the tones' frames interleaved (as live streams arrive); return them decoded,
    each with its real ``(partition, offset)`` position, in offset order."""
    records = list(interleaved(tones))
    positions: list[tuple[int, int] | None] = [None] * len(records)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20}
    )

    def delivered(i: int) -> Callable[[Any, Message], None]:
        def on_delivery(err: Any, msg: Message) -> None:
            assert err is None, err
            positions[i] = (msg.partition(), msg.offset())  # type: ignore[assignment]

        return on_delivery

    for i, (key, value, headers) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=delivered(i))  # type: ignore[arg-type]
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0
    frames = [decode_frame(k, v, h, positions[i]) for i, (k, v, h) in enumerate(records)]
    return sorted(frames, key=lambda f: f.position)  # type: ignore[arg-type, return-value]


def analyzer_windows(frames: Iterable[Frame], settings: WindowSettings = WINDOWING) -> list[Window]:
    """The windows the analyzer's windower makes of ``frames`` (final tails included)."""
    windower = Windower(settings)
    out = [window for frame in frames for window in windower.push(frame, 0.0)]
    return out + windower.flush_all()


def window_event(window: Window, frames_topic: str, text: str) -> CaptionEvent:
    """The caption event of ``window`` with its frame positions, as the analyzer builds it."""
    return CaptionEvent(
        event_id=event_id(window.stream_id, window.segment_id, window.index, "main"),
        kind=EventKind.CAPTION,
        stream_id=window.stream_id,
        segment_id=window.segment_id,
        window_index=window.index,
        window_start_ns=window.start_ns,
        window_end_ns=window.end_ns,
        window_start=rfc3339(window.start_ns),
        window_end=rfc3339(window.end_ns),
        caption=text,
        model="tiny",
        model_revision="main",
        audio=AudioStats(rms_dbfs=window.rms_dbfs, peak_dbfs=window.peak_dbfs, gap_fraction=0),
        timings=Timings(window_closed_ns=time.time_ns(), caption_produced_ns=time.time_ns()),
        frames=frame_range(window, frames_topic),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], object], timeout_s: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.1)
    return result


@dataclass
class ConsoleProcess:
    """``earwitness console --config FILE`` as a real process (log in ``log``)."""

    config: Path
    log: Path
    settings: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)
    log_level: str = "debug"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings['http']['port']}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.settings['metrics_port']}"

    def start(self, ready_timeout_s: float = 90) -> None:
        self.config.write_text(yaml.safe_dump(self.settings))
        env = {k: v for k, v in os.environ.items() if not k.startswith("EARWITNESS_")}
        self.starts += 1
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "earwitness.cli", "--log-level", self.log_level, "console",
                 "--config", str(self.config)],
                cwd=REPO, env={**env, **self.env}, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(self._ready, ready_timeout_s, f"the console to be ready (log: {self.log})")

    def _ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            return httpx.get(f"{self.metrics_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.proc = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()


def console_settings(
    tmp_path: Path, bootstrap: str, topics: dict[str, str], **extra: Any
) -> dict[str, Any]:
    """A console settings file's content for ``topics`` (captions, alerts, acks, frames)."""
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "captions_topic": topics["captions"],
            "alerts_topic": topics["alerts"],
            "acks_topic": topics["acks"],
            "frames_topic": topics["frames"],
            "batch_wait_ms": 50,
            "metadata_refresh_s": 2,
        },
        "store": {"path": str(tmp_path / "console.db"), "retention_days": 7},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "listen": {"windowing": WINDOWING.model_dump(mode="json")},
        "metrics_port": free_port(),
        "metrics_host": "127.0.0.1",
        **extra,
    }


@contextmanager
def serving(asgi: Any) -> Iterator[str]:
    """A real uvicorn server for ``asgi`` on 127.0.0.1 in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(asgi, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="test-uvicorn")
    thread.start()
    try:
        wait_for(lambda: server.started, 30, "uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
