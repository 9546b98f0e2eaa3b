"""The console as a real process against the real broker: live updates and their resume,
listening over HTTP, acks that every restart keeps, and logs that never hold captions."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import soundfile

from sinks.alerts import AlertState
from tests.console.support import (
    NS,
    ConsoleProcess,
    alert,
    alert_record,
    analyzer_windows,
    caption,
    console_settings,
    events_records,
    produce_committed,
    publish_tones,
    wait_for,
    window_event,
)
from tests.support.frames import Tone
from tests.support.kafka import produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MARKER = "zebracrossingquokka"
"""A word that must never reach the console's log."""


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    names = ("captions", "alerts", "acks", "frames")
    return {
        n: new_topic(config={"cleanup.policy": "compact"} if n == "acks" else None) for n in names
    }


@pytest.fixture
def console(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> Iterator[ConsoleProcess]:
    process = ConsoleProcess(
        tmp_path / "console.yaml",
        tmp_path / "console.log",
        console_settings(tmp_path, kafka_bootstrap, topics),
    )
    process.start()
    yield process
    if process.proc is not None:
        assert process.stop() == 0, process.log.read_text()[-3000:]
    assert MARKER not in process.log.read_text()


@dataclass
class Event:
    name: str
    id: str
    data: str
    at: float


@dataclass
class Listener:
    """An SSE client on its own thread (``test-sse``), like a browser's EventSource."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Listener:
        threading.Thread(target=self._run, name="test-sse", daemon=True).start()
        wait_for(lambda: self.events, 30, "the ready event")
        return self

    def _run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=60) as reply:
                self._read(reply.iter_lines())
        except httpx.HTTPError:
            pass  # the server went away: the test restarts it
        finally:
            self.done.set()

    def _read(self, lines: Iterator[str]) -> None:
        name, event_id, data = "message", "", []
        for line in lines:
            if not line:
                if data or name != "message":
                    self.events.append(Event(name, event_id, "\n".join(data), time.monotonic()))
                name, data = "message", []
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())

    def changes(self) -> list[dict[str, object]]:
        return [c for e in self.events if e.name == "changes" for c in json.loads(e.data)]


def test_a_caption_reaches_live_clients_within_two_seconds(
    kafka_bootstrap: str, topics: dict[str, str], console: ConsoleProcess
) -> None:
    listener = Listener(f"{console.url}/events?view=streams").start()
    segment = time.time_ns() - 60 * NS
    event = caption("cam-7", 0, f"A {MARKER} honks twice. Then silence.", segment_id=segment)
    produce_committed(kafka_bootstrap, topics["captions"], events_records([event]))
    committed = time.monotonic()
    wait_for(listener.changes, 10, "the change")
    arrived = next(e.at for e in listener.events if e.name == "changes")
    assert arrived - committed < 2.0
    (change,) = listener.changes()
    assert change["stream"] == "cam-7" and change["first"] == f"A {MARKER} honks twice."
    page = httpx.get(f"{console.url}/streams").text
    assert 'data-stream="cam-7"' in page and "honks twice" in page
    assert (
        httpx.get(f"{console.url}/search", params={"q": MARKER}).text.count('class="result kind')
        == 1
    )


def test_a_client_resumes_after_a_restart_without_losing_or_repeating(
    kafka_bootstrap: str, topics: dict[str, str], console: ConsoleProcess
) -> None:
    segment = time.time_ns() - 600 * NS
    url = f"{console.url}/events?view=stream&stream=cam-1"
    listener = Listener(url).start()
    produce_committed(kafka_bootstrap, topics["captions"], events_records(
        [caption("cam-1", i, f"before {i}.", segment_id=segment) for i in range(3)]
    ))  # fmt: skip
    wait_for(lambda: len(listener.changes()) == 3, 20, "3 changes")
    last_id = listener.events[-1].id
    console.stop()
    wait_for(listener.done.is_set, 20, "the stream to end")
    produce_committed(kafka_bootstrap, topics["captions"], events_records(
        [caption("cam-1", i, f"while down {i}.", segment_id=segment) for i in range(3, 6)]
        + [caption("cam-2", 0, "another stream.", segment_id=segment)]
    ))  # fmt: skip
    console.start()
    resumed = Listener(url, {"Last-Event-ID": last_id}).start()
    produce_committed(kafka_bootstrap, topics["captions"], events_records(
        [caption("cam-1", 6, "after.", segment_id=segment)]
    ))  # fmt: skip
    wait_for(lambda: len(resumed.changes()) >= 4, 20, "the missed and the new changes")
    time.sleep(1)
    indexes = [(c["start"] - segment) // (10 * NS) for c in resumed.changes()]  # type: ignore[operator]
    assert indexes == [3, 4, 5, 6]


def test_a_rebuilt_database_tells_old_clients_to_reload(
    kafka_bootstrap: str, topics: dict[str, str], console: ConsoleProcess
) -> None:
    listener = Listener(f"{console.url}/events?view=streams").start()
    old_id = listener.events[0].id
    console.stop()
    db = Path(console.settings["store"]["path"])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    console.start()
    reset = Listener(f"{console.url}/events?view=streams", {"Last-Event-ID": old_id}).start()
    assert reset.events[0].name == "reset"


def test_ack_over_http_survives_a_restart(
    kafka_bootstrap: str, topics: dict[str, str], console: ConsoleProcess
) -> None:
    firing = alert("a-77", AlertState.FIRING, stream_id="cam-3", started_ns=time.time_ns(),
                   text="Glass breaking near the door.", matched=("glass breaking",))  # fmt: skip
    produce(kafka_bootstrap, topics["alerts"], [alert_record(firing)])
    with httpx.Client(base_url=console.url) as client:
        wait_for(lambda: "i-a-77" in client.get("/alerts").text, 20, "the incident")
        page = client.get("/alerts").text
        assert "<mark>Glass breaking</mark>" in page
        csrf = client.cookies["ew_csrf"]
        reply = client.post("/alerts/a-77/ack", data={"csrf": csrf, "note": "guard on the way"},
                            headers={"Accept": "application/json"})  # fmt: skip
        assert reply.status_code == 202
        wait_for(lambda: "Acknowledged by local" in client.get("/fragments/incident/a-77").text,
                 20, "the ack read back")  # fmt: skip
    console.restart()
    fragment = httpx.get(f"{console.url}/fragments/incident/a-77").text
    assert (
        "guard on the way" in fragment
        and 'class="incident state-firing sev-critical acked"' in fragment
    )


def test_listen_serves_the_window_as_wav(
    kafka_bootstrap: str, topics: dict[str, str], console: ConsoleProcess
) -> None:
    frames = publish_tones(kafka_bootstrap, topics["frames"],
                           [Tone("cam-5", 32, ts0_ns=time.time_ns() - 40 * NS)])  # fmt: skip
    window = analyzer_windows(frames)[0]
    event = window_event(window, topics["frames"], f"A tone; {MARKER}.")
    produce_committed(kafka_bootstrap, topics["captions"], events_records([event]))
    url = f"{console.url}/listen/{event.event_id}.wav"
    wait_for(lambda: httpx.get(f"{console.url}/fragments/window/{event.event_id}").is_success,
             20, "the window")  # fmt: skip
    reply = httpx.get(url, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "audio/wav"
    assert reply.headers["cache-control"] == "no-store"
    samples, rate = soundfile.read(io.BytesIO(reply.content))
    assert (rate, len(samples)) == (16_000, 30 * 16_000)
    assert httpx.get(f"{console.url}/listen/nope.wav").status_code == 404
