"""Live streams fed in chunks, the windows they must yield, and exactly-once checks.

A :class:`Feeder` publishes several streams' audio one chunk (e.g. 1 s of each stream) at a time,
so a test decides what is on the topic before a crash and what arrives after it. Whatever the
timing, the full audio is the same, so :func:`expected_windows` knows the final grid::

    stream of D s, window W, hop H, tail only if it adds audio and is ≥ min_window_s
    ├──── #0 ────┤
          ├──── #1 ────┤
                ├──── #k ────┤              k = floor((D - W) / H)
                      ├─ tail #k+1 ─┤ D     (eos on the last frame flushes it)
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from earwitness.events import CaptionEvent
from tests.support.frames import FRAME_MS, Tone, interleaved, produce
from tests.support.kafka import unique_name
from windowing.config import OUT_RATE_HZ

Record = tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes | None]] | None]


def keys_on_partitions(prefix: str, partitions: int, per_partition: int) -> list[str]:
    """Stream ids that librdkafka's default partitioner (crc32 of the key) spreads evenly."""
    chosen: dict[int, list[str]] = {p: [] for p in range(partitions)}
    n = 0
    while any(len(keys) < per_partition for keys in chosen.values()):
        key = f"{prefix}{n}"
        bucket = chosen[zlib.crc32(key.encode()) % partitions]
        if len(bucket) < per_partition:
            bucket.append(key)
        n += 1
    return [key for keys in chosen.values() for key in keys]


def expected_windows(
    seconds: float, window_s: float, hop_s: float, min_window_s: float
) -> list[int]:
    """Window indices of one continuous 16 kHz segment of ``seconds``, closed by eos."""
    total = round(seconds * OUT_RATE_HZ)
    window, hop = round(window_s * OUT_RATE_HZ), round(hop_s * OUT_RATE_HZ)
    full = (total - window) // hop + 1 if total >= window else 0
    lo = full * hop
    emitted_end = lo if full == 0 else (full - 1) * hop + window
    tail = total > emitted_end and total - lo >= round(min_window_s * OUT_RATE_HZ)
    return list(range(full + int(tail)))


@dataclass
class Feeder:
    """``streams`` x ``seconds`` of tone, published ``chunk_s`` of every stream at a time.

    The last chunk carries ew-eos. ``extra[k]`` are records (e.g. bad frames) published right
    after chunk ``k``, on their own keys' partitions. Owns one idempotent producer.
    """

    bootstrap: str
    topic: str
    streams: list[str]
    seconds: float
    chunk_s: float = 1.0
    extra: dict[int, list[Record]] = field(default_factory=dict)
    ts0_ns: int = Tone.ts0_ns
    """ew-ts of the first frame; the default lies in the future, so nothing is ever stale."""
    published: int = 0
    """Chunks published so far."""

    def __post_init__(self) -> None:
        self._producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True})
        self.frames_per_chunk = round(self.chunk_s * 1000 / FRAME_MS)
        self.chunks = round(self.seconds / self.chunk_s)

    @property
    def done(self) -> bool:
        return self.published >= self.chunks

    def expected(self, window_s: float, hop_s: float, min_window_s: float) -> dict[str, list[int]]:
        grid = expected_windows(self.seconds, window_s, hop_s, min_window_s)
        return {stream: grid for stream in self.streams}

    def publish(self, chunks: int = 1) -> None:
        """Publish the next ``chunks`` chunks (fewer at the end), flushed."""
        for _ in range(chunks):
            if self.done:
                break
            self._chunk(self.published)
            self.published += 1
        assert self._producer.flush(60) == 0, "frames still undelivered after 60 s"

    def publish_rest(self) -> None:
        self.publish(self.chunks - self.published)

    def publish_while(
        self, condition: Callable[[], bool], *, interval_s: float, at_most: int
    ) -> int:
        """One chunk every ``interval_s`` while ``condition()`` holds; returns chunks published."""
        sent = 0
        while sent < at_most and not self.done and condition():
            self.publish()
            sent += 1
            deadline = time.monotonic() + interval_s
            while condition() and time.monotonic() < deadline:
                time.sleep(0.05)
        return sent

    def _chunk(self, k: int) -> None:
        last = k == self.chunks - 1
        tones = [
            Tone(s, self.chunk_s, first_seq=k * self.frames_per_chunk, ts0_ns=self.ts0_ns, eos=last)
            for s in self.streams
        ]
        for record in [*interleaved(tones), *self.extra.get(k, [])]:
            produce(self._producer, self.topic, record)


def read_to_end(bootstrap: str, topic: str, timeout_s: float = 60) -> list[Message]:
    """Every committed record of ``topic`` (``read_committed``), read up to the log end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("reader"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), 30)[1] for p in partitions
        }
        todo = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while todo:
            assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout_s} s"
            msg = consumer.poll(0.2)
            if msg is not None and msg.error():
                raise KafkaException(msg.error())
            if msg is not None:
                messages.append(msg)
            positions = consumer.position([TopicPartition(topic, p) for p in todo])
            todo -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
        return messages
    finally:
        consumer.close()


class CaptionWatch:
    """Reads a caption topic (``read_committed``) as it fills; the test polls ``wait_for``."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.events: list[CaptionEvent] = []
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique_name("watch"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self._consumer.subscribe([topic])

    def poll(self, seconds: float = 0.2) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = self._consumer.poll(0.05)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue  # the analyzer creates the topic once it starts
                raise KafkaException(msg.error())
            self.events.append(CaptionEvent.from_json(msg.value()))

    def wait_for(
        self, done: Callable[[list[CaptionEvent]], bool], timeout_s: float, why: Callable[[], str]
    ) -> None:
        """Poll until ``done(events)``; fail with ``why()`` (e.g. a log tail) after the timeout."""
        deadline = time.monotonic() + timeout_s
        while not done(self.events):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.topic}: condition not met in {timeout_s:.0f} s with "
                    f"{len(self.events)} events\n{why()}"
                )
            self.poll()

    def close(self) -> None:
        self._consumer.close()


def covered(expected: dict[str, list[int]]) -> Callable[[list[CaptionEvent]], bool]:
    """A ``wait_for`` condition: every expected (stream, window) has an event."""
    wanted = {(s, i) for s, grid in expected.items() for i in grid}

    def done(events: list[CaptionEvent]) -> bool:
        return wanted <= {(e.stream_id, e.window_index) for e in events}

    return done


def assert_exactly_once(events: Iterable[CaptionEvent], expected: dict[str, list[int]]) -> None:
    """Each expected window once: no duplicate, no gap, one segment per stream, unique ids."""
    events = list(events)
    keys = [(e.stream_id, e.segment_id, e.window_index) for e in events]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"windows published more than once: {duplicates}"
    ids = [e.event_id for e in events]
    assert len(set(ids)) == len(ids), "event ids are not unique"
    got: dict[str, list[int]] = {}
    segments: dict[str, set[int]] = {}
    for e in events:
        got.setdefault(e.stream_id, []).append(e.window_index)
        segments.setdefault(e.stream_id, set()).add(e.segment_id)
    got = {s: sorted(indices) for s, indices in got.items()}
    assert got == expected, f"window grid differs:\n got      {got}\n expected {expected}"
    split = {s: sorted(ids) for s, ids in segments.items() if len(ids) != 1}
    assert not split, f"streams split into several segments: {split}"


def events_of(messages: Iterable[Message]) -> list[CaptionEvent]:
    return [CaptionEvent.from_json(m.value()) for m in messages]
