"""The database's tables: what the console keeps, and how one connection is set up.

::

    windows      one row per caption event (event_id unique): the timeline and search
    windows_fts  FTS5 index of windows.text (caption, or why there is none), stream_id, kind
    streams      one row per stream: its latest window and its last caption's first sentence
    incidents    one row per alert id: its latest state (firing → resolved, never back)
    acks         one row per acknowledged alert id (from the acks topic)
    changes      the live-update journal: SSE event ids are its ids (resumable across restarts)
    offsets      next offset per (topic, partition), written in the same transaction as the
                 rows, so a restart resumes exactly where the database stands
    meta         epoch (a random id made with the file: a rebuilt file is a new epoch), schema

Everything here is rebuilt from Kafka when the file is gone: the topics are the truth.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = "1"

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS windows (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    stream_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    segment_id INTEGER NOT NULL,
    window_index INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    text TEXT,
    rms_dbfs REAL NOT NULL,
    peak_dbfs REAL NOT NULL,
    gap_fraction REAL NOT NULL,
    produced_ns INTEGER NOT NULL,
    frames_topic TEXT,
    frames_partition INTEGER,
    first_offset INTEGER,
    last_offset INTEGER
);
CREATE INDEX IF NOT EXISTS windows_by_stream ON windows (stream_id, start_ns);
CREATE INDEX IF NOT EXISTS windows_by_time ON windows (start_ns);
CREATE INDEX IF NOT EXISTS windows_by_kind ON windows (kind, start_ns);
CREATE VIRTUAL TABLE IF NOT EXISTS windows_fts USING fts5 (
    text, stream_id, kind,
    content = 'windows', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS windows_fts_insert AFTER INSERT ON windows
WHEN new.text IS NOT NULL BEGIN
    INSERT INTO windows_fts (rowid, text, stream_id, kind)
    VALUES (new.id, new.text, new.stream_id, new.kind);
END;
CREATE TRIGGER IF NOT EXISTS windows_fts_delete AFTER DELETE ON windows
WHEN old.text IS NOT NULL BEGIN
    INSERT INTO windows_fts (windows_fts, rowid, text, stream_id, kind)
    VALUES ('delete', old.id, old.text, old.stream_id, old.kind);
END;
CREATE TABLE IF NOT EXISTS streams (
    stream_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT '',
    rms_dbfs REAL NOT NULL DEFAULT -120,
    end_ns INTEGER NOT NULL DEFAULT 0,
    seen_ns INTEGER NOT NULL DEFAULT 0,
    event_id TEXT NOT NULL DEFAULT '',
    first_sentence TEXT NOT NULL DEFAULT '',
    caption_end_ns INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incidents (
    alert_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    description TEXT NOT NULL,
    severity TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    started_ns INTEGER NOT NULL,
    last_match_ns INTEGER NOT NULL,
    ended_ns INTEGER,
    windows INTEGER NOT NULL,
    matched TEXT NOT NULL,
    phrases TEXT NOT NULL,
    caption TEXT NOT NULL,
    evidence TEXT NOT NULL,
    resolution TEXT,
    resolution_note TEXT,
    last_event_id TEXT NOT NULL,
    updated_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS incidents_by_stream ON incidents (stream_id, state);
CREATE INDEX IF NOT EXISTS incidents_by_update ON incidents (updated_ns);
CREATE TABLE IF NOT EXISTS acks (
    alert_id TEXT PRIMARY KEY, by TEXT NOT NULL, note TEXT NOT NULL, acked_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode (readers never block the writer, nor it them)."""
    connection = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA busy_timeout = 30000")
    if readonly:
        connection.execute("PRAGMA query_only = 1")
    else:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
    return connection
