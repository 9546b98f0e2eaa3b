"""The writer of the console's SQLite database (tables: :mod:`console.schema`).

One :class:`Store`, one connection, one owner: the reader thread (``ew-console-reader``), which
applies each batch of Kafka records in one transaction::

    BEGIN
      windows   INSERT, skipping event ids it has (a replay changes nothing) and windows
                older than the retention; the FTS index follows by trigger
      streams   the stream's latest window (by stream time), its last caption
      incidents upsert by alert id; a resolved incident never fires again
      acks      upsert by alert id
      changes   one journal row per row that changed (the live updates)
      offsets   the next offset of every partition the batch read
    COMMIT     → the journal rows go to the live clients (console.live)

A crash before COMMIT loses nothing: the offsets did not move either. Web requests read through
their own connections (:mod:`console.queries`); WAL mode keeps them from blocking this one.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from console.records import AckRow, AlertRow, WindowRow
from console.schema import DDL, SCHEMA_VERSION, connect
from earwitness.errors import ConfigError

logger = logging.getLogger(__name__)

NS_PER_DAY = 86_400 * 1_000_000_000
PURGE_CHUNK_ROWS = 5_000


@dataclass
class Batch:
    """Records read since the last commit, and where reading stands."""

    windows: list[WindowRow] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)
    acks: list[AckRow] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    """(topic, partition) → next offset to read."""

    def __len__(self) -> int:
        return len(self.windows) + len(self.alerts) + len(self.acks)


@dataclass(frozen=True, slots=True)
class Change:
    """One live update: a journal row. ``data`` is its JSON (see :func:`window_change`)."""

    id: int
    kind: str
    stream_id: str
    data: str


class Store:
    """Writes batches, deletes what retention expired, trims the journal."""

    def __init__(self, path: Path, retention_days: float, journal_rows: int) -> None:
        self.path = path
        self._retention_ns = int(retention_days * NS_PER_DAY)
        self._journal_rows = journal_rows
        self.created = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect(path)
        self._db.executescript(DDL)
        self.epoch = self._meta_epoch()
        if self.created:
            logger.info("created %s (epoch %s): rebuilding from Kafka", path, self.epoch)

    def _meta_epoch(self) -> str:
        found = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not found:
            epoch = uuid.uuid4().hex[:12]
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("epoch", epoch), ("schema", SCHEMA_VERSION)],
                )
            return epoch
        if found.get("schema") != SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path} has schema {found.get('schema')}, this console {SCHEMA_VERSION}: "
                "delete the file and the console rebuilds it from Kafka"
            )
        return str(found["epoch"])

    def offsets(self) -> dict[tuple[str, int], int]:
        rows = self._db.execute("SELECT topic, partition, next_offset FROM offsets")
        return {(topic, partition): offset for topic, partition, offset in rows}

    def apply(self, batch: Batch, now_ns: int | None = None) -> list[Change]:
        """Write ``batch`` in one transaction; return the journal rows it added."""
        cutoff = (now_ns or time.time_ns()) - self._retention_ns
        changes: list[Change] = []
        with self._transaction():
            for window in batch.windows:
                if window.end_ns >= cutoff and self._insert_window(window):
                    changes.append(self._journal("window", window.stream_id, window_change(window)))
            for alert in batch.alerts:
                if (alert.ended_ns or alert.last_match_ns) >= cutoff and self._upsert_alert(alert):
                    changes.append(self._journal("alert", alert.stream_id, alert_change(alert)))
            for ack in batch.acks:
                stream_id = self._upsert_ack(ack)
                changes.append(self._journal("ack", stream_id, ack_change(ack, stream_id)))
            self._db.executemany(
                "INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?) "
                "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                [
                    (topic, partition, offset)
                    for (topic, partition), offset in batch.offsets.items()
                ],
            )
        return changes

    def _insert_window(self, w: WindowRow) -> bool:
        frames = w.frames or (None, None, None, None)
        inserted = self._db.execute(
            "INSERT INTO windows (event_id, stream_id, kind, segment_id, window_index, start_ns,"
            " end_ns, text, rms_dbfs, peak_dbfs, gap_fraction, produced_ns, frames_topic,"
            " frames_partition, first_offset, last_offset)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (event_id) DO NOTHING",
            (w.event_id, w.stream_id, w.kind, w.segment_id, w.window_index, w.start_ns, w.end_ns,
             w.text, w.rms_dbfs, w.peak_dbfs, w.gap_fraction, w.produced_ns, *frames),
        ).rowcount  # fmt: skip
        if inserted:
            self._update_stream(w)
        return bool(inserted)

    def _update_stream(self, w: WindowRow) -> None:
        db = self._db
        db.execute(
            "INSERT INTO streams (stream_id) VALUES (?) ON CONFLICT DO NOTHING", (w.stream_id,)
        )
        db.execute(
            "UPDATE streams SET kind = ?, rms_dbfs = ?, end_ns = ?, event_id = ?,"
            " seen_ns = max(seen_ns, ?) WHERE stream_id = ? AND end_ns <= ?",
            (w.kind, w.rms_dbfs, w.end_ns, w.event_id, w.produced_ns, w.stream_id, w.end_ns),
        )
        if w.kind == "caption":
            db.execute(
                "UPDATE streams SET first_sentence = ?, caption_end_ns = ?"
                " WHERE stream_id = ? AND caption_end_ns <= ?",
                (w.first_sentence, w.end_ns, w.stream_id, w.end_ns),
            )

    def _upsert_alert(self, a: AlertRow) -> bool:
        """Insert or move the incident on; False for a late ``firing`` of a resolved one."""
        values = (
            a.alert_id, a.state, a.rule_id, a.description, a.severity, a.stream_id, a.started_ns,
            a.last_match_ns, a.ended_ns, a.windows, orjson.dumps(a.matched).decode(),
            orjson.dumps(a.phrases()).decode(), a.caption,
            orjson.dumps([e.model_dump() for e in a.evidence]).decode(), a.resolution,
            a.resolution_note, a.last_event_id, time.time_ns(),
        )  # fmt: skip
        columns = (
            "alert_id, state, rule_id, description, severity, stream_id, started_ns,"
            " last_match_ns, ended_ns, windows, matched, phrases, caption, evidence, resolution,"
            " resolution_note, last_event_id, updated_ns"
        )
        updates = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in columns.split(",")[1:])
        cursor = self._db.execute(
            f"INSERT INTO incidents ({columns}) VALUES ({', '.join('?' * len(values))})"
            f" ON CONFLICT (alert_id) DO UPDATE SET {updates} WHERE incidents.state = 'firing'",
            values,
        )
        return bool(cursor.rowcount)

    def _upsert_ack(self, ack: AckRow) -> str:
        """Record the ack; return the incident's stream ('' while the alert is not here yet)."""
        self._db.execute(
            "INSERT INTO acks (alert_id, by, note, acked_ns) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (alert_id) DO UPDATE SET by = excluded.by, note = excluded.note,"
            " acked_ns = excluded.acked_ns",
            (ack.alert_id, ack.by, ack.note, ack.acked_ns),
        )
        row = self._db.execute(
            "SELECT stream_id FROM incidents WHERE alert_id = ?", (ack.alert_id,)
        ).fetchone()
        return str(row[0]) if row else ""

    def _journal(self, kind: str, stream_id: str, data: dict[str, object]) -> Change:
        text = orjson.dumps(data).decode()
        (change_id,) = self._db.execute(
            "INSERT INTO changes (kind, stream_id, data) VALUES (?, ?, ?) RETURNING id",
            (kind, stream_id, text),
        ).fetchone()
        return Change(change_id, kind, stream_id, text)

    def purge(self, now_ns: int | None = None) -> int:
        """Delete windows, resolved incidents and streams past retention; trim the journal.

        Deletes in chunks, one transaction each, so readers and the writer's next batch never
        wait long. Returns the windows deleted.
        """
        cutoff = (now_ns or time.time_ns()) - self._retention_ns
        deleted = 0
        while True:
            with self._transaction():
                n = self._db.execute(
                    "DELETE FROM windows WHERE id IN"
                    " (SELECT id FROM windows WHERE start_ns < ? AND end_ns < ? LIMIT ?)",
                    (cutoff, cutoff, PURGE_CHUNK_ROWS),
                ).rowcount
            deleted += n
            if n < PURGE_CHUNK_ROWS:
                break
        with self._transaction():
            self._purge_small(cutoff)
        if deleted:
            logger.info("retention: deleted %d window(s) older than the cutoff", deleted)
        return deleted

    def _purge_small(self, cutoff: int) -> None:
        db = self._db
        db.execute(
            "DELETE FROM incidents WHERE state = 'resolved' AND coalesce(ended_ns, 0) < ?",
            (cutoff,),
        )
        db.execute(
            "DELETE FROM acks WHERE acked_ns < ? AND alert_id NOT IN"
            " (SELECT alert_id FROM incidents)",
            (cutoff,),
        )
        db.execute("DELETE FROM streams WHERE end_ns < ?", (cutoff,))
        db.execute(
            "DELETE FROM changes WHERE id <= (SELECT max(id) FROM changes) - ?",
            (self._journal_rows,),
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


def window_change(w: WindowRow) -> dict[str, object]:
    """A window's live update: what a stream tile and a timeline need (no full caption)."""
    return {
        "t": "window",
        "stream": w.stream_id,
        "id": w.event_id,
        "kind": w.kind,
        "start": w.start_ns,
        "end": w.end_ns,
        "rms": round(w.rms_dbfs, 1),
        "seen": w.produced_ns,
        "first": w.first_sentence,
    }


def alert_change(a: AlertRow) -> dict[str, object]:
    return {"t": "alert", "id": a.alert_id, "stream": a.stream_id, "state": a.state,
            "severity": a.severity}  # fmt: skip


def ack_change(ack: AckRow, stream_id: str) -> dict[str, object]:
    return {"t": "ack", "id": ack.alert_id, "stream": stream_id}
