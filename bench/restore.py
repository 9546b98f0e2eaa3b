"""Benchmark of the changelog restore (``stream/changelog.py``) at 1M stream cursors.

    .venv/bin/python bench/restore.py --bootstrap 127.0.0.1:9092 [--keys 1000000] [--partitions 4]

What an analyzer does when it is assigned partitions: read their changelog partitions to the
end (``read_committed``) and keep the last cursor of every stream. A fresh compacted topic is
filled with ``--keys`` cursors (one per stream id, spread by key over ``--partitions``, written
in transactions of 50,000 as the analyzer writes them, so transaction markers are there too),
then read three ways, each timed from the call to the last record:

- **raw read** (the floor): a plain consumer reads the same partitions in batches, decoding
  nothing;
- **restore, one partition after another**: ``load_cursors`` per partition, in turn (the
  baseline: what assigning the partitions one at a time costs);
- **restore, all at once**: ``load_cursors`` of every partition in one call (what the analyzer
  does on an assignment, ``Analyzer._restore_pending``).

Memory: resident bytes the restored cursors hold, per stream. The topic is deleted at the end.
The last line is ``restore_1m_keys_s=<all at once> restore_keys_per_s=<all at once>``.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path[0] = str(Path(__file__).resolve().parents[1])
from stream.changelog import Restored, encode_cursor, load_cursors  # noqa: E402
from windowing.window import Cursor  # noqa: E402

TXN_RECORDS = 50_000
TIMEOUT_S = 600.0


def main() -> None:
    args = _parser().parse_args()
    config = {"bootstrap.servers": args.bootstrap}
    topic = f"bench-restore-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(config)
    topic_config = {"cleanup.policy": "compact"}
    new = NewTopic(topic, args.partitions, replication_factor=1, config=topic_config)
    admin.create_topics([new])[topic].result(30)
    try:
        fill_s = _fill(config, topic, args.keys)
        rows = _measure(config, topic, list(range(args.partitions)), args.keys)
    finally:
        admin.delete_topics([topic])[topic].result(30)
    _print(args, fill_s, rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--keys", type=int, default=1_000_000, help="stream cursors written")
    parser.add_argument("--partitions", type=int, default=4, help="changelog partitions")
    return parser


def cursor(i: int) -> Cursor:
    """A cursor as the analyzer writes it (a closed-segment-free, mid-stream one)."""
    return Cursor(
        stream_id=f"camera-{i:07d}",
        segment_id=3,
        window_index=1_000 + i % 97,
        final=False,
        seq=500_000 + i,
        ts_ns=1_800_000_000_000_000_000 + i * 20_000_000,
        in_sample=160_000 * (i % 50),
        rate_hz=16_000,
        channels=1,
        fmt="s16le",
        position=(i % 4, 1_000_000 + i),
    )


def _fill(config: dict[str, str], topic: str, keys: int) -> float:
    producer = Producer(
        {
            **config,
            "transactional.id": f"bench-restore-{uuid.uuid4().hex[:8]}",
            "linger.ms": 5,
            "compression.type": "zstd",
        }
    )
    producer.init_transactions(30)
    start = time.perf_counter()
    for first in range(0, keys, TXN_RECORDS):
        producer.begin_transaction()
        for i in range(first, min(keys, first + TXN_RECORDS)):
            c = cursor(i)
            _produce(producer, topic, c.stream_id.encode(), encode_cursor(c))
        producer.commit_transaction(60)
    return time.perf_counter() - start


def _produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.05)


Row = tuple[str, float, int, float]
"""(way, seconds, records or cursors read, resident bytes per cursor; nan: not measured)"""


def _measure(config: dict[str, str], topic: str, partitions: list[int], keys: int) -> list[Row]:
    rows: list[Row] = [
        ("raw read (floor, no decoding)", *_timed(lambda: _raw(config, topic, partitions)))
    ]

    def one_by_one() -> int:
        return sum(len(load_cursors(config, topic, [p], TIMEOUT_S).cursors) for p in partitions)

    rows.append(("restore, one partition after another", *_timed(one_by_one)))
    gc.collect()
    before = psutil.Process().memory_info().rss
    held: list[Restored] = []

    def at_once() -> int:
        held.append(load_cursors(config, topic, partitions, TIMEOUT_S))
        return len(held[0].cursors)

    way, seconds, count, _ = ("restore, all at once (the analyzer)", *_timed(at_once))
    gc.collect()
    per_cursor = (psutil.Process().memory_info().rss - before) / max(1, count)
    rows.append((way, seconds, count, per_cursor))
    assert all(row[2] == keys for row in rows), f"not every cursor was read: {rows}"
    return rows


def _timed(read: Callable[[], int]) -> tuple[float, int, float]:
    start = time.perf_counter()
    count = read()
    return time.perf_counter() - start, count, float("nan")


def _reader(config: dict[str, str]) -> Consumer:
    return Consumer(
        {
            **config,
            "group.id": f"bench-restore-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )


def _raw(config: dict[str, str], topic: str, partitions: list[int]) -> int:
    consumer = _reader(config)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, 30)[1] for tp in tps}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        count, todo = 0, set(partitions)
        while todo:
            count += sum(1 for m in consumer.consume(1000, timeout=0.2) if not m.error())
            done = consumer.position([TopicPartition(topic, p) for p in todo])
            todo -= {tp.partition for tp in done if tp.offset >= ends[tp.partition]}
        return count
    finally:
        consumer.close()


def _print(args: argparse.Namespace, fill_s: float, rows: list[Row]) -> None:
    floor = rows[0][1]
    print(
        f"changelog: {args.keys:,} cursors, {args.partitions} partitions, filled in {fill_s:.1f} s"
    )
    print(f"{'way':<44} {'s':>8} {'cursors/s':>12} {'x floor':>8} {'bytes/cursor':>13}")
    for way, seconds, count, per in rows:
        per_cursor = "-" if math.isnan(per) else f"{per:,.0f}"
        rate, ratio = count / seconds, seconds / floor
        print(f"{way:<44} {seconds:>8.1f} {rate:>12,.0f} {ratio:>8.2f} {per_cursor:>13}")
    _, seconds, count, _ = rows[-1]
    headline = seconds * 1_000_000 / count
    print(f"restore_1m_keys_s={headline:.1f} restore_keys_per_s={count / seconds:.0f}")


if __name__ == "__main__":
    main()
