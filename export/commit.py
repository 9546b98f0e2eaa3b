"""Exactly once into files: the commit order of a flush, and the recovery that undoes or
finishes a crashed one. The manifest is the commit point; the files are the source of truth
for where to resume (the consumer group's offsets are for lag monitoring only).

A flush of partition ``p``, offsets ``first..last`` (named ``<first>-<end>``, end = last + 1;
``export/layout.py`` names the paths)::

    1. stage     every data file (one per date/hour) and the rejects file  → _staging/...
                 failpoint export.staged
    2. fence     the newest manifest of p must end at first - 1, else another exporter has
                 taken p over: FencedError, exit
    3. manifest  _manifests/<table>/p/<first>-<end>.json: the span, every file (staged and
                 final name, rows, bytes)                                  ← COMMIT POINT
                 failpoint export.manifest_written
    4. publish   move each staged file to its final name
                 failpoint export.published
    5. (caller)  commit offset last + 1 to the consumer group (lag monitoring)
                 failpoint export.offsets_committed

Recovery of partition ``p`` (on every assignment, before a record of ``p`` is read)::

    newest manifest M (none: write an empty one at the start offset, so a crash before the
    first flush resumes at the same offset)
    for each file of M: staged copy still there → move it (or drop it if the final is there:
    a copy whose delete did not happen)                                    roll forward
    every other file under _staging/<table>/p                              roll back (delete)
    resume at M.last + 1

So a crash before step 3 leaves only staged files (deleted; the rows are consumed again), and
a crash after it leaves a manifest whose files are finished by the next start. Readers of the
final names never see a duplicate row: a row's file is published only after its manifest, and
the replayed offsets of an uncommitted flush were never published. Until a crashed exporter is
restarted, a committed flush's files may be partly published (a reader can list
``_manifests/`` for the complete set).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from earwitness import __version__, failpoints
from earwitness.errors import FatalError
from export import layout
from export.layout import Span
from export.store import Store

logger = logging.getLogger(__name__)


PRUNE_SLACK = 50
"""Manifests past ``keep_manifests`` before a commit prunes them (recovery always does)."""


class FencedError(FatalError):
    """Another exporter committed a flush of this partition past where this one resumed."""


@dataclass
class Flush:
    """What one flush writes: data tables by (date, hour), and the rejected records."""

    table: str
    topic: str
    partition: int
    span: Span
    hours: dict[tuple[str, str], pa.Table] = field(default_factory=dict)
    rejects: pa.Table | None = None


class Committer:
    """Writes flushes in the commit order and recovers partitions; owned by the poll loop."""

    def __init__(self, store: Store, instance: str, keep_manifests: int = 200) -> None:
        self.store = store
        self.instance = instance
        self.keep_manifests = keep_manifests

    # --- the commit order -----------------------------------------------------------------

    def commit(self, flush: Flush) -> dict[str, Any]:
        """Steps 1-4 of the module docstring; the manifest written."""
        files = self._stage(flush)
        failpoints.hit("export.staged")
        spans = self._fence(flush.table, flush.partition, flush.span)
        manifest = self._manifest(flush, files)
        path = layout.manifest_path(flush.table, flush.partition, flush.span)
        self.store.put(path, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        failpoints.hit("export.manifest_written")
        self._publish(manifest)
        failpoints.hit("export.published")
        if len(spans) >= self.keep_manifests + PRUNE_SLACK:  # keeps the fence's listing short
            self._prune(flush.table, flush.partition, [*spans, flush.span])
        return manifest

    def _stage(self, flush: Flush) -> list[dict[str, Any]]:
        parts: list[tuple[str, pa.Table]] = [
            (layout.data_path(flush.table, flush.partition, flush.span, hour), table)
            for hour, table in sorted(flush.hours.items())
        ]
        if flush.rejects is not None:
            parts.append(
                (layout.rejects_path(flush.table, flush.partition, flush.span), flush.rejects)
            )
        files = []
        for n, (final, table) in enumerate(parts):
            staged = layout.staged_path(flush.table, flush.partition, flush.span, n)
            size = self.store.write_parquet(staged, table)
            files.append({"path": final, "staged": staged, "rows": table.num_rows, "bytes": size})
        return files

    def _fence(self, table: str, partition: int, span: Span) -> list[Span]:
        """The partition's manifests, after checking that the newest ends where ``span`` starts."""
        spans = self._spans(table, partition)
        newest = spans[-1] if spans else None
        if newest is not None and newest.last != span.first - 1:
            raise FencedError(
                f"{table} partition {partition}: a manifest ends at {newest.last}, this flush "
                f"starts at {span.first}; another exporter owns the partition"
            )
        return spans

    def _manifest(self, flush: Flush, files: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "table": flush.table,
            "topic": flush.topic,
            "partition": flush.partition,
            "first_offset": flush.span.first,
            "last_offset": flush.span.last,
            "rows": sum(t.num_rows for t in flush.hours.values()),
            "rejected": 0 if flush.rejects is None else flush.rejects.num_rows,
            "files": files,
            "written_ns": time.time_ns(),
            "exporter": {"instance": self.instance, "version": __version__},
        }

    def _publish(self, manifest: dict[str, Any]) -> None:
        for entry in manifest["files"]:
            if self.store.exists(entry["staged"]):
                if self.store.exists(entry["path"]):
                    self.store.delete(entry["staged"])  # moved by a copy whose delete was lost
                else:
                    self.store.move(entry["staged"], entry["path"])

    # --- recovery ---------------------------------------------------------------------------

    def recover(self, table: str, topic: str, partition: int, start_offset: int) -> int:
        """Finish or undo a crashed flush of ``partition``; the offset to resume at.

        ``start_offset`` is where a partition that was never exported starts.
        """
        spans = self._spans(table, partition)
        if not spans:
            origin = Flush(table, topic, partition, Span(start_offset, start_offset - 1))
            path = layout.manifest_path(table, partition, origin.span)
            self.store.put(path, orjson.dumps(self._manifest(origin, [])))
            logger.info(
                "%s partition %d: first export, from offset %d", table, partition, start_offset
            )
            return start_offset
        newest = spans[-1]
        manifest = orjson.loads(self.store.get(layout.manifest_path(table, partition, newest)))
        self._publish(manifest)
        self.clean_staging(table, partition)
        self._prune(table, partition, spans)
        logger.info("%s partition %d: resuming at offset %d", table, partition, newest.next_offset)
        return newest.next_offset

    def clean_staging(self, table: str, partition: int) -> None:
        """Delete what failed or crashed flushes left under the partition's staging folder
        (only valid once the newest manifest is published: then nothing there is needed)."""
        for leftover in self.store.files(layout.staging_dir(table, partition)):
            logger.info("%s partition %d: deleting uncommitted %s", table, partition, leftover)
            self.store.delete(leftover)

    def prune(self, table: str, partition: int) -> None:
        self._prune(table, partition, self._spans(table, partition))

    def _prune(self, table: str, partition: int, spans: list[Span]) -> None:
        for span in spans[: -self.keep_manifests]:
            self.store.delete(layout.manifest_path(table, partition, span))

    def _spans(self, table: str, partition: int) -> list[Span]:
        names = self.store.files(layout.manifests_dir(table, partition))
        return sorted(span for name in names if (span := layout.span_of_manifest(name)))
