"""What the templates show: states, times, highlights, timeline data. Pure functions.

Everything that reaches HTML as markup goes through :func:`highlight` or :func:`marks`, which
escape the text first and add only ``<mark>`` elements; the rest is escaped by Jinja2.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from typing import Any

import orjson
from markupsafe import Markup, escape

from console.queries import SNIPPET_CLOSE, SNIPPET_OPEN

STATES = {"caption": "captioning", "silence": "silence", "shed": "shed", "error": "error"}
"""Window kind → tile state (and ``stale`` when a stream went quiet)."""
NS = 1_000_000_000


def tile_state(kind: str, seen_ns: int, now_ns: int, stale_after_s: float) -> str:
    if now_ns - seen_ns > stale_after_s * NS:
        return "stale"
    return STATES.get(kind, "stale")


def utc(ns: int | None, seconds: bool = True) -> str:
    """``2026-12-02 07:48:13Z`` (or without seconds)."""
    if ns is None:
        return ""
    moment = datetime.fromtimestamp(ns / NS, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%MZ")


def clock(ns: int | None) -> str:
    """``07:48:13``, UTC."""
    return "" if ns is None else datetime.fromtimestamp(ns / NS, tz=UTC).strftime("%H:%M:%S")


def parse_utc(text: str | None) -> int | None:
    """A ``datetime-local`` value (``2026-12-02T07:48``, read as UTC) or Unix ns → ns."""
    text = (text or "").strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.removesuffix("Z"))
    except ValueError:
        return None
    return int(moment.replace(tzinfo=UTC).timestamp()) * NS


def datetime_local(ns: int | None) -> str:
    """ns → the value of an ``<input type=datetime-local>`` (UTC)."""
    if ns is None:
        return ""
    return datetime.fromtimestamp(ns / NS, tz=UTC).strftime("%Y-%m-%dT%H:%M")


def highlight(text: str, phrases: list[str] | str) -> Markup:
    """``text`` escaped, with every case-insensitive occurrence of ``phrases`` in ``<mark>``."""
    if isinstance(phrases, str):
        phrases = orjson.loads(phrases or "[]")
    spans = sorted(
        (m.start(), m.end())
        for phrase in phrases
        if phrase.strip()
        for m in re.finditer(re.escape(phrase.strip()), text, re.IGNORECASE)
    )
    out, at = [], 0
    for start, end in _merged(spans):
        out += [
            escape(text[at:start]),
            Markup("<mark>"),
            escape(text[start:end]),
            Markup("</mark>"),
        ]
        at = end
    out.append(escape(text[at:]))
    return Markup("").join(out)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def marks(snippet: str | None) -> Markup:
    """An FTS5 snippet escaped, its hit markers turned into ``<mark>``."""
    escaped = str(escape(snippet or ""))
    return Markup(escaped.replace(SNIPPET_OPEN, "<mark>").replace(SNIPPET_CLOSE, "</mark>"))


def evidence(raw: str) -> list[dict[str, Any]]:
    """The alert's evidence items (sentence, confidence, why), as stored."""
    items = orjson.loads(raw or "[]")
    return [item for item in items if isinstance(item, dict)]


def timeline(
    windows: list[sqlite3.Row], incidents: list[sqlite3.Row], from_ns: int, to_ns: int
) -> dict[str, Any]:
    """The timeline's data for ``static/stream.js`` (stream time, ns)."""
    return {
        "from": from_ns,
        "to": to_ns,
        "windows": [
            {"id": w["event_id"], "kind": w["kind"], "start": w["start_ns"], "end": w["end_ns"]}
            for w in windows
        ],
        "incidents": [incident_span(i) for i in incidents],
    }


def incident_span(i: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": i["alert_id"],
        "rule": i["description"] or i["rule_id"],
        "severity": i["severity"],
        "state": i["state"],
        "acked": i["ack_by"] is not None,
        "start": i["started_ns"],
        "end": i["ended_ns"] or i["last_match_ns"],
    }
