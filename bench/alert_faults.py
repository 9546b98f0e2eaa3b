"""The alert runner under every fault at once (issue 15): the webhook down for ``--outage-s``
(default 300 s: five minutes), Slack answering 429 with ``Retry-After`` for the first fifth of
it, the SIEM's TLS collector restarting (down 10 s) and the Kafka broker restarting, while a new
stream starts firing every ``--every-s`` seconds. Afterwards every receiver must hold every
firing alert (0 lost), and the receivers that were up must have had theirs without waiting for
the webhook (their delays stay near ``park_after_s``, the webhook's span the outage).

    .venv/bin/python bench/alert_faults.py                 # the five-minute run (~7 min)
    .venv/bin/python bench/alert_faults.py --outage-s 30   # a quick look (~2 min)

Real parts only: its own broker (``scripts/kafka-local``, restarted with its data), the runner
in-process (``AlertRunner``, as ``earwitness alerts`` runs it), real HTTP servers for the
webhook and Slack, a real TLS listener for the SIEM, a JSONL file as the always-up control.
Syslog has no acknowledgement: a line written into the collector's dropped connection is lost;
the SIEM row counts it, and it does not fail the run.
Prints a table; exit 1 when an acknowledged receiver (webhook, Slack, file) lost an alert.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.sinks.runnerutil import BANG, SECRET, running, settings
from tests.sinks.sinkutil import Receiver, caption_event, handler
from tests.support.kafka import LocalBroker, unique_name
from tests.support.tls import TlsCollector, TlsFiles, make_tls

STREAM = re.compile(rb"cam-\d{4}")
RETRY = {"timeout_s": 2, "max_attempts": 100_000, "backoff_initial_s": 0.1, "backoff_max_s": 2}
PARK_AFTER_S = 5.0
ACKNOWLEDGED = ("webhook", "slack", "file")
"""Receivers that confirm a delivery (syslog does not)."""


class Arrivals:
    """First arrival (monotonic s) of each stream's alert at each receiver; thread-safe."""

    def __init__(self) -> None:
        self.first: dict[str, dict[str, float]] = {}
        self.count: dict[str, int] = {}
        self._lock = threading.Lock()

    def seen(self, receiver: str, body: bytes) -> None:
        with self._lock:
            for stream in {m.decode() for m in STREAM.findall(body)}:
                self.first.setdefault(receiver, {}).setdefault(stream, time.monotonic())
                self.count[receiver] = self.count.get(receiver, 0) + 1


def http_server(name: str, arrivals: Arrivals) -> tuple[Receiver, Callable[[], None]]:
    ref: list[Receiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(ref))
    server.daemon_threads = True
    receiver = Receiver(server)
    ref.append(receiver)
    previous = receiver.check

    def check(request: object) -> int | None:
        status = previous(request) if previous else None  # type: ignore[arg-type]
        if status is None or status < 300:
            arrivals.seen(name, request.body)  # type: ignore[attr-defined]
        return status

    receiver.check = check
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=f"bench-{name}")
    thread.daemon = True
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return receiver, stop


def topics(bootstrap: str) -> dict[str, str]:
    names = {"captions": unique_name("captions"), "state": unique_name("state"),
             "dlq": unique_name("dlq")}  # fmt: skip
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [
        NewTopic(names["captions"], num_partitions=2, replication_factor=1),
        NewTopic(names["state"], 1, 1, config={"cleanup.policy": "compact"}),
        NewTopic(names["dlq"], 1, 1),
    ]
    for future in admin.create_topics(new).values():
        future.result(timeout=60)
    return names


def run(outage_s: float, every_s: float, folder: Path) -> int:
    broker = LocalBroker(folder / "broker", heap_opts="-Xmx512m -Xms512m")
    bootstrap = broker.start()
    names = topics(bootstrap)
    arrivals = Arrivals()
    webhook, stop_webhook = http_server("webhook", arrivals)
    slack, stop_slack = http_server("slack", arrivals)
    t0 = time.monotonic()
    slack_429_s = outage_s / 5
    webhook.status = 503
    slack.check = _throttled(slack.check, lambda: time.monotonic() - t0 < slack_429_s)
    slack.reply = lambda n: ({"Retry-After": "2"}, b"ok")
    files = make_tls(folder / "siem")
    collector = TlsCollector(files)
    out = folder / "alerts.jsonl"
    receivers = {
        "webhook": {"type": "webhook", "url": webhook.url, "secret": SECRET, "retry": RETRY},
        "slack": {"type": "slack", "url": f"{slack.url}/services/T0/B0/X", "retry": RETRY},
        "siem": {"type": "syslog", "host": "127.0.0.1", "port": collector.port,
                 "transport": "tls", "ca_file": str(files.ca), "retry": RETRY},
        "file": {"type": "jsonl", "path": str(out)},
    }  # fmt: skip
    raw = settings(bootstrap, names, receivers, park_after_s=PARK_AFTER_S)
    raw["kafka"]["session_timeout_ms"] = 30_000
    faults = Faults(broker, collector, files, t0)
    produced, events = faults.produced, faults.events
    watching = threading.Event()

    def watch() -> None:  # the file and the SIEM are read 5 times a second
        while not watching.wait(0.2):
            _watch(out, faults.collector, arrivals)

    threading.Thread(target=watch, name="bench-watch", daemon=True).start()
    with running(raw):
        collector = _feed(faults, names["captions"], outage_s, every_s)
        webhook.status = 200
        events.append(f"{time.monotonic() - t0:.0f} s: webhook back")
        back = time.monotonic()
        deadline = back + 600
        while time.monotonic() < deadline and not _complete(arrivals, produced):
            _watch(out, collector, arrivals)
            time.sleep(0.5)
        recovered_s = time.monotonic() - back
        siem_until = time.monotonic() + 60  # syslog: what is not lost arrives soon after
        while time.monotonic() < siem_until and not _complete(arrivals, produced, ("siem",)):
            _watch(out, collector, arrivals)
            time.sleep(0.5)
    watching.set()
    _watch(out, collector, arrivals)
    collector.close()
    stop_webhook()
    stop_slack()
    broker.stop()
    return _report(arrivals, produced, events, outage_s, recovered_s)


class Faults:
    """What the feed loop breaks on schedule: the SIEM collector, then the broker."""

    def __init__(
        self, broker: LocalBroker, collector: TlsCollector, files: TlsFiles, t0: float
    ) -> None:
        self.broker, self.collector, self.files, self.t0 = broker, collector, files, t0
        self.produced: dict[str, float] = {}
        """Stream → when its firing captions were in Kafka (monotonic s)."""
        self.events: list[str] = []


def _feed(
    faults: Faults,
    topic: str,
    outage_s: float,
    every_s: float,
) -> TlsCollector:
    """A new firing stream every ``every_s`` until the outage ends; the SIEM collector
    restarts at 30 % of it, the broker at 50 %. Returns the collector now listening."""
    producer = Producer({"bootstrap.servers": faults.broker.bootstrap, "acks": "all"})
    t0, n, produced, events = faults.t0, 0, faults.produced, faults.events
    siem_at, broker_at = 0.3 * outage_s, 0.5 * outage_s
    while time.monotonic() - t0 < outage_s:
        tick = time.monotonic()
        stream = f"cam-{n:04d}"
        for i in range(2):
            event = caption_event(i, BANG, stream_id=stream)
            producer.produce(topic, key=stream.encode(), value=event.to_json())
        producer.flush(120)
        produced[stream] = time.monotonic()
        n += 1
        now = time.monotonic() - t0
        if siem_at and now >= siem_at:
            faults.collector = _restart_collector(faults.collector, faults.files, events, t0)
            siem_at = 0.0
        if broker_at and now >= broker_at:
            events.append(f"{now:.0f} s: broker restart")
            faults.broker.restart()
            events.append(f"{time.monotonic() - t0:.0f} s: broker back")
            broker_at = 0.0
        time.sleep(max(0.0, every_s - (time.monotonic() - tick)))
    return faults.collector


def _throttled(previous: object, on: Callable[[], bool]) -> Callable[[object], int | None]:
    def check(request: object) -> int | None:
        if on():
            return 429
        return previous(request) if callable(previous) else None

    return check


def _restart_collector(
    collector: TlsCollector, files: TlsFiles, events: list[str], t0: float
) -> TlsCollector:
    port = collector.port
    kept = collector.frames
    collector.close()
    events.append(f"{time.monotonic() - t0:.0f} s: SIEM collector down")
    time.sleep(10)
    fresh = TlsCollector(files, port)
    fresh.frames = kept
    events.append(f"{time.monotonic() - t0:.0f} s: SIEM collector back")
    return fresh


def _watch(out: Path, collector: TlsCollector, arrivals: Arrivals) -> None:
    if out.exists():
        for line in out.read_bytes().splitlines():
            arrivals.seen("file", line)
    for frame in list(collector.frames):
        arrivals.seen("siem", frame)


def _complete(
    arrivals: Arrivals, produced: dict[str, float], names: tuple[str, ...] = ACKNOWLEDGED
) -> bool:
    wanted = set(produced)
    return all(wanted <= set(arrivals.first.get(r, {})) for r in names)


def _report(
    arrivals: Arrivals,
    produced: dict[str, float],
    events: list[str],
    outage_s: float,
    recovered_s: float,
) -> int:
    print(f"faults: webhook down {outage_s:.0f} s, Slack 429 (Retry-After 2) {outage_s / 5:.0f} s;")
    print("  " + "; ".join(events))
    print(f"alerts fired: {len(produced)}; all delivered {recovered_s:.1f} s after the webhook")
    print()
    print(f"{'receiver':<10}{'delivered':>10}{'lost':>6}{'p50 delay s':>13}{'max delay s':>13}")
    failed = False
    for name in ("webhook", "slack", "siem", "file"):
        first = arrivals.first.get(name, {})
        delays = [first[s] - t for s, t in produced.items() if s in first]
        lost = len(produced) - len(delays)
        failed |= lost > 0 and name in ACKNOWLEDGED
        p50 = statistics.median(delays) if delays else float("nan")
        worst = max(delays) if delays else float("nan")
        print(f"{name:<10}{len(delays):>10}{lost:>6}{p50:>13.1f}{worst:>13.1f}")
    print()
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage-s", type=float, default=300.0)
    parser.add_argument("--every-s", type=float, default=5.0, help="a new firing stream each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ew-alert-faults-") as folder:
        return run(args.outage_s, args.every_s, Path(folder))


if __name__ == "__main__":
    sys.exit(main())
