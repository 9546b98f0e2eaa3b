"""``earwitness tail``: print caption events (or, with ``--alerts``, alerts) as they arrive.

Reads with ``isolation.level=read_committed`` in a throw-away group from the end of the topic
(``--from-beginning`` to replay). One line per event; ``--json`` prints the raw JSON.
"""

from __future__ import annotations

import argparse
import signal
import uuid
from pathlib import Path

from confluent_kafka import Consumer

from earwitness.events import ALERTS_TOPIC, CaptionEvent
from earwitness.kafka import load_tool_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="analyzer or alert runner settings (for broker and topic)"
    )
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: from settings)")
    parser.add_argument("--topic", help="topic to read (default: captions, or alerts)")
    parser.add_argument("--alerts", action="store_true", help="read the alerts topic instead")
    parser.add_argument("--alerts-topic", default=ALERTS_TOPIC, help="alerts topic name")
    parser.add_argument("--from-beginning", action="store_true", help="replay the whole topic")
    parser.add_argument("--json", action="store_true", help="print the raw JSON values")
    parser.add_argument("--max-events", type=int, default=0, help="stop after N (0: never)")
    parser.add_argument(
        "--idle-exit-s",
        type=float,
        default=0.0,
        help="stop after this many seconds without an event (0: never)",
    )


def run(args: argparse.Namespace) -> int:
    settings = load_tool_settings(args.config)
    topic = args.topic or (args.alerts_topic if args.alerts else settings.kafka.captions_topic)
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            **({"bootstrap.servers": args.bootstrap} if args.bootstrap else {}),
            "group.id": f"earwitness-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    stopping = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        return _print_events(consumer, args, stopping)
    finally:
        consumer.close()


def _print_events(consumer: Consumer, args: argparse.Namespace, stopping: list[bool]) -> int:
    seen, idle_s = 0, 0.0
    while not stopping and (args.max_events <= 0 or seen < args.max_events):
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            idle_s += 0.5
            if args.idle_exit_s and idle_s >= args.idle_exit_s:
                break
            continue
        idle_s = 0.0
        seen += 1
        print(_line(msg.value() or b"", args), flush=True)
    return 0


def _line(value: bytes, args: argparse.Namespace) -> str:
    if args.json or args.alerts:
        return value.decode("utf-8", "replace")
    try:
        event = CaptionEvent.from_json(value)
    except ValueError:
        return f"(not a caption event) {value[:200]!r}"
    text = event.caption or event.error or event.skipped or ""
    text = " ".join(text.split())
    return (
        f"{event.window_start[11:19]} {event.stream_id} seg={event.segment_id} "
        f"#{event.window_index} {event.kind.value:7} {event.audio.rms_dbfs:6.1f} dBFS  "
        f"{text[:160]}"
    )
