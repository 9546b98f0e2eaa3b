"""The read side of the database: what each page shows. One connection per thread.

Web handlers run in Starlette's thread pool; each thread opens its own read-only connection
(``PRAGMA query_only``) on first use. WAL mode lets them read while the reader thread writes.

Search goes through FTS5. The user's words become quoted FTS5 strings (no query syntax gets
through: ``"glass breaking" dog`` → the phrase and the word, both required), the stream and
kind filters become FTS5 column filters (so they narrow the index, not the result), and the
newest matches come first (``ORDER BY rowid DESC``: FTS5 walks its index backwards and stops
at the page size). Without words, windows are listed by start time through an index.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.schema import connect

_WORDS = re.compile(r'"([^"]*)"|(\S+)')
SNIPPET_OPEN, SNIPPET_CLOSE = "\x02", "\x03"
"""Markers snippet() puts around hits; the template escapes the text, then marks them."""
_INCIDENTS = (
    "SELECT i.*, a.by AS ack_by, a.note AS ack_note, a.acked_ns AS acked_ns"
    " FROM incidents i LEFT JOIN acks a USING (alert_id)"
)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str = ""
    stream_id: str = ""
    kind: str = ""
    from_ns: int | None = None
    to_ns: int | None = None
    before: int | None = None
    """Paging: only results older than this: a window id with words (FTS5 order), a start
    time (ns) without (time order)."""


class Queries:
    """Read-only queries; safe to call from any thread."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self._path, readonly=True)
        return db

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._db().execute(sql, args).fetchall()

    def _one(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Row | None:
        return self._db().execute(sql, args).fetchone()  # type: ignore[no-any-return]

    def last_change_id(self) -> int:
        row = self._db().execute("SELECT max(id) FROM changes").fetchone()
        return int(row[0] or 0)

    def changes_after(self, after_id: int, limit: int) -> list[sqlite3.Row]:
        """Journal rows after ``after_id``, oldest first (at most ``limit``)."""
        return self._all(
            "SELECT id, kind, stream_id, data FROM changes WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )

    def first_change_id(self) -> int:
        row = self._db().execute("SELECT min(id) FROM changes").fetchone()
        return int(row[0] or 0)

    def streams(self) -> list[sqlite3.Row]:
        """Every stream's tile, with its firing incidents (open = not acked)."""
        return self._all(
            "SELECT s.*, coalesce(i.open, 0) AS open, coalesce(i.acked, 0) AS acked"
            " FROM streams s LEFT JOIN ("
            "  SELECT stream_id, sum(a.alert_id IS NULL) AS open, sum(a.alert_id IS NOT NULL)"
            "  AS acked FROM incidents LEFT JOIN acks a USING (alert_id)"
            "  WHERE state = 'firing' GROUP BY stream_id"
            " ) i USING (stream_id) ORDER BY s.stream_id"
        )

    def stream(self, stream_id: str) -> sqlite3.Row | None:
        return self._one("SELECT * FROM streams WHERE stream_id = ?", (stream_id,))

    def windows(self, stream_id: str, from_ns: int, to_ns: int, limit: int) -> list[sqlite3.Row]:
        """The stream's windows that start in ``[from_ns, to_ns)``, oldest first."""
        rows = self._all(
            "SELECT * FROM windows WHERE stream_id = ? AND start_ns >= ? AND start_ns < ?"
            " ORDER BY start_ns DESC LIMIT ?",
            (stream_id, from_ns, to_ns, limit),
        )
        return rows[::-1]

    def window(self, event_id: str) -> sqlite3.Row | None:
        return self._one("SELECT * FROM windows WHERE event_id = ?", (event_id,))

    def incidents(
        self, *, stream_id: str | None = None, state: str | None = None, limit: int = 500
    ) -> list[sqlite3.Row]:
        """Incidents with their ack, newest change first."""
        where, args = [], []
        if stream_id is not None:
            where.append("i.stream_id = ?")
            args.append(stream_id)
        if state is not None:
            where.append("i.state = ?")
            args.append(state)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self._all(
            f"{_INCIDENTS} {clause} ORDER BY i.updated_ns DESC LIMIT ?",
            (*args, limit),
        )

    def incident(self, alert_id: str) -> sqlite3.Row | None:
        return self._one(f"{_INCIDENTS} WHERE i.alert_id = ?", (alert_id,))

    def incidents_between(self, stream_id: str, from_ns: int, to_ns: int) -> list[sqlite3.Row]:
        """The stream's incidents that overlap ``[from_ns, to_ns)`` (stream time)."""
        return self._all(
            f"{_INCIDENTS} WHERE i.stream_id = ? AND i.started_ns < ?"
            " AND coalesce(i.ended_ns, i.last_match_ns + 1) >= ? ORDER BY i.started_ns",
            (stream_id, to_ns, from_ns),
        )

    def search(self, query: SearchQuery, limit: int) -> list[sqlite3.Row]:
        """Windows matching ``query``, newest first; full text through FTS5 when given."""
        match = fts_query(query)
        where, args = _time_filters(query)
        if match is None:
            if query.stream_id:
                where.append("w.stream_id = ?")
                args.append(query.stream_id)
            if query.kind:
                where.append("w.kind = ?")
                args.append(query.kind)
            if query.before is not None:
                where.append("w.start_ns < ?")
                args.append(query.before)
            clause = f"WHERE {' AND '.join(where)}" if where else ""
            return self._all(
                f"SELECT w.*, w.text AS snippet FROM windows w {clause}"
                " ORDER BY w.start_ns DESC LIMIT ?",  # an index: by stream, by kind, by time
                (*args, limit),
            )
        if query.before is not None:
            where.append("w.id < ?")
            args.append(query.before)
        where.insert(0, "windows_fts MATCH ?")
        args.insert(0, match)
        if query.stream_id:
            where.append("w.stream_id = ?")
            args.append(query.stream_id)
        return self._all(
            f"SELECT w.*, snippet(windows_fts, 0, '{SNIPPET_OPEN}', '{SNIPPET_CLOSE}', '…', 24)"
            " AS snippet FROM windows_fts JOIN windows w ON w.id = windows_fts.rowid"
            f" WHERE {' AND '.join(where)} ORDER BY windows_fts.rowid DESC LIMIT ?",
            (*args, limit),
        )


def _time_filters(query: SearchQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if query.from_ns is not None:
        where.append("w.start_ns >= ?")
        args.append(query.from_ns)
    if query.to_ns is not None:
        where.append("w.start_ns < ?")
        args.append(query.to_ns)
    return where, args


def fts_query(query: SearchQuery) -> str | None:
    """The FTS5 MATCH expression for ``query``, or None when it has no words.

    Every word and every quoted phrase is an FTS5 string (``"..."``, inner quotes doubled),
    so nothing the user types is FTS5 syntax; they are ANDed. Stream and kind filters are
    column filters on the same index.
    """
    terms = [_quoted(phrase or word) for phrase, word in _WORDS.findall(query.text)]
    terms = [term for term in terms if term != '""']
    if not terms:
        return None
    parts = [f"text : ({' '.join(terms)})"]
    if query.stream_id:
        parts.append(f"stream_id : {_quoted(query.stream_id)}")
    if query.kind:
        parts.append(f"kind : {_quoted(query.kind)}")
    return " AND ".join(parts)


def _quoted(text: str) -> str:
    return '"' + text.strip().replace('"', '""') + '"'
