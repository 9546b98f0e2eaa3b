"""``python -m tests.export.crash_flush URL FIRST COUNT [FAILPOINT]``: commit one flush of
COUNT caption rows (offsets FIRST..) to the destination URL, SIGKILLed at FAILPOINT.
``CRASH_FLUSH_OPTIONS`` (JSON) holds the filesystem options (an S3 endpoint and keys)."""

from __future__ import annotations

import os
import sys

import orjson

from earwitness import failpoints
from export.buffer import PartitionBuffer
from export.commit import Committer, Flush
from export.schema import captions_table, to_arrow
from export.store import Store, open_filesystem
from tests.export.support import captions

TOPIC = "earwitness.captions"


def flush_of(first: int, count: int, partition: int = 0) -> Flush:
    table = captions_table()
    buffer = PartitionBuffer(table, TOPIC, partition, first)
    for offset, event in enumerate(captions(count, start=first), start=first):
        buffer.add(offset, event.stream_id.encode(), event.to_json(), 0, None)
    buffer.add(first + count, b"k", b"not json", 0, [("h", b"v")])
    schema = table.arrow_schema()
    hours = {hour: to_arrow(table, schema, rows) for hour, rows in buffer.rows.items()}
    from export.exporter import to_arrow_rejects

    return Flush("captions", TOPIC, partition, buffer.span, hours, to_arrow_rejects(buffer.rejects))


def main(argv: list[str]) -> int:
    root, first, count = argv[0], int(argv[1]), int(argv[2])
    if len(argv) > 3:
        failpoints.arm({argv[3]: 1})
    options = orjson.loads(os.environ.get("CRASH_FLUSH_OPTIONS", "{}"))
    filesystem, path = open_filesystem(root, options)
    Committer(Store(filesystem, path), "crash-test").commit(flush_of(first, count))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
