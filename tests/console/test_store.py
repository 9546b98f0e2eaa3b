"""The database: idempotent batches, stream tiles, incidents, acks, search, retention."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import orjson
import pytest

from console.queries import Queries, SearchQuery, fts_query
from console.records import AckRow, alert_row, window_row
from console.store import NS_PER_DAY, Batch, Store
from earwitness.errors import ConfigError
from earwitness.events import EventKind
from sinks.alerts import AlertState
from tests.console.support import NS, alert, caption

NOW = time.time_ns()
T0 = NOW - 3600 * NS


def _store(tmp_path: Path, retention_days: float = 7.0) -> tuple[Store, Queries]:
    path = tmp_path / "console.db"
    return Store(path, retention_days, journal_rows=1_000), Queries(path)


def _windows(*events) -> Batch:  # type: ignore[no-untyped-def]
    return Batch(windows=[window_row(e.to_json()) for e in events],
                 offsets={("captions", 0): len(events)})  # fmt: skip


def test_a_replayed_batch_changes_nothing(tmp_path: Path) -> None:
    store, queries = _store(tmp_path)
    batch = _windows(*(caption("cam-1", i, f"window {i}.", segment_id=T0) for i in range(3)))
    first = store.apply(batch)
    again = store.apply(batch)
    assert [c.kind for c in first] == ["window"] * 3
    assert again == []
    assert len(queries.windows("cam-1", 0, NOW * 2, 100)) == 3
    assert store.offsets() == {("captions", 0): 3}


def test_the_tile_shows_the_latest_window_and_the_last_caption(tmp_path: Path) -> None:
    store, queries = _store(tmp_path)
    store.apply(_windows(
        caption("cam-1", 1, "A dog barks. A car passes.", segment_id=T0),
        caption("cam-1", 2, None, segment_id=T0, kind=EventKind.SILENCE, rms_dbfs=-80),
        caption("cam-1", 0, "An older window, replayed late.", segment_id=T0),
    ))  # fmt: skip
    tile = queries.stream("cam-1")
    assert tile is not None
    assert (tile["kind"], tile["rms_dbfs"]) == ("silence", -80)
    assert tile["first_sentence"] == "A dog barks."
    assert tile["end_ns"] == T0 + 50 * NS


def _alert_batch(*alerts) -> Batch:  # type: ignore[no-untyped-def]
    return Batch(alerts=[alert_row(a.to_json()) for a in alerts])


def test_incidents_fire_resolve_and_never_fire_again(tmp_path: Path) -> None:
    store, queries = _store(tmp_path)
    firing = alert("a1", AlertState.FIRING, stream_id="cam-1", started_ns=T0,
                   text="Glass shatters.", matched=("glass",))  # fmt: skip
    resolved = firing.model_copy(update={"state": AlertState.RESOLVED, "ended_ns": T0 + 90 * NS})
    store.apply(_alert_batch(firing))
    assert queries.incident("a1")["state"] == "firing"  # type: ignore[index]
    assert [c.kind for c in store.apply(_alert_batch(resolved))] == ["alert"]
    assert store.apply(_alert_batch(firing)) == []  # a late duplicate of "firing"
    incident = queries.incident("a1")
    assert incident is not None and incident["state"] == "resolved"
    assert orjson.loads(incident["phrases"]) == ["glass"]


def test_acks_join_incidents_whichever_comes_first(tmp_path: Path) -> None:
    store, queries = _store(tmp_path)
    store.apply(_windows(caption("cam-1", 0, "Glass.", segment_id=T0)))
    ack = AckRow(alert_id="a1", by="ana", note="guard sent", acked_ns=NOW)
    (change,) = store.apply(Batch(acks=[ack]))
    assert change.stream_id == ""  # the alert is not here yet
    store.apply(_alert_batch(alert("a1", AlertState.FIRING, stream_id="cam-1", started_ns=T0,
                                   text="Glass.", matched=("glass",))))  # fmt: skip
    incident = queries.incident("a1")
    assert incident is not None
    assert (incident["ack_by"], incident["ack_note"]) == ("ana", "guard sent")
    (tile,) = queries.streams()
    assert (tile["open"], tile["acked"]) == (0, 1)


def test_journal_ids_keep_counting_after_a_reopen(tmp_path: Path) -> None:
    store, queries = _store(tmp_path)
    store.apply(_windows(caption("cam-1", 0, "one.", segment_id=T0)))
    epoch = store.epoch
    store.close()
    store, queries = _store(tmp_path)
    (change,) = store.apply(_windows(caption("cam-1", 1, "two.", segment_id=T0)))
    assert store.epoch == epoch
    assert change.id == 2
    assert [r["id"] for r in queries.changes_after(0, 10)] == [1, 2]


def test_a_database_of_another_schema_is_refused(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    store.close()
    with sqlite3.connect(tmp_path / "console.db") as db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'schema'")
    with pytest.raises(ConfigError, match="delete the file"):
        _store(tmp_path)


# --- search ----------------------------------------------------------------------------------


@pytest.fixture
def searchable(tmp_path: Path) -> Queries:
    store, queries = _store(tmp_path)
    store.apply(_windows(
        caption("cam-1", 0, "A dog barks twice near the gate.", segment_id=T0),
        caption("cam-1", 1, "Glass breaking, then a car alarm.", segment_id=T0),
        caption("cam-2", 0, "Breaking news on a radio; no glass.", segment_id=T0 + 600 * NS),
        caption("cam-2", 1, None, segment_id=T0 + 600 * NS, kind=EventKind.ERROR),
        caption("cam-12", 0, "Dogs barking in the distance.", segment_id=T0),
    ))  # fmt: skip
    return queries


def _found(queries: Queries, **query: object) -> list[tuple[str, int]]:
    rows = queries.search(SearchQuery(**query), 50)  # type: ignore[arg-type]
    return [(r["stream_id"], r["window_index"]) for r in rows]


def test_search_words_phrases_and_stems(searchable: Queries) -> None:
    assert _found(searchable, text="glass") == [("cam-2", 0), ("cam-1", 1)]  # newest first
    assert _found(searchable, text='"glass breaking"') == [("cam-1", 1)]
    assert _found(searchable, text="dog bark") == [("cam-12", 0), ("cam-1", 0)]  # stems


def test_search_filters_stream_kind_and_time(searchable: Queries) -> None:
    assert _found(searchable, text="dog", stream_id="cam-1") == [("cam-1", 0)]  # not cam-12
    assert _found(searchable, text="engine", kind="error") == [("cam-2", 1)]
    assert _found(searchable, kind="error") == [("cam-2", 1)]
    assert _found(searchable, text="glass", from_ns=T0 + 300 * NS) == [("cam-2", 0)]
    assert _found(searchable, text="glass", to_ns=T0 + 300 * NS) == [("cam-1", 1)]


def test_search_pages_backwards(searchable: Queries) -> None:
    (newest,) = searchable.search(SearchQuery(text="glass"), 1)
    older = searchable.search(SearchQuery(text="glass", before=newest["id"]), 1)
    assert [r["window_index"] for r in older] == [1]
    (latest,) = searchable.search(SearchQuery(stream_id="cam-1"), 1)  # no words: by time
    earlier = searchable.search(SearchQuery(stream_id="cam-1", before=latest["start_ns"]), 5)
    assert (latest["window_index"], [r["window_index"] for r in earlier]) == (1, [0])


@pytest.mark.parametrize(
    "text", ['"', "glass OR", "NEAR(dog bark)", "dog*", "text:dog", "^dog", "-glass", "(", "'"]
)
def test_no_query_syntax_gets_through(searchable: Queries, text: str) -> None:
    searchable.search(SearchQuery(text=text), 10)  # no sqlite3.OperationalError


def test_fts_query_quotes_everything() -> None:
    query = fts_query(SearchQuery(text='glass "car alarm" x"y', stream_id="cam-1", kind="caption"))
    assert query == (
        'text : ("glass" "car alarm" "x""y") AND stream_id : "cam-1" AND kind : "caption"'
    )


# --- retention -------------------------------------------------------------------------------


def test_retention_skips_old_rows_and_purges_them_later(tmp_path: Path) -> None:
    store, queries = _store(tmp_path, retention_days=1)
    old = NOW - 2 * NS_PER_DAY
    store.apply(_windows(caption("cam-old", 0, "Ancient glass.", segment_id=old)))
    assert queries.stream("cam-old") is None  # older than retention: never written
    store.apply(_windows(caption("cam-1", 0, "Fresh glass.", segment_id=T0)))
    store.apply(_alert_batch(
        alert("a1", AlertState.RESOLVED, stream_id="cam-1", started_ns=T0, text="x",
              matched=("glass",)),
    ))  # fmt: skip
    later = NOW + 2 * NS_PER_DAY
    assert store.purge(later) == 1
    assert queries.search(SearchQuery(text="glass"), 10) == []  # the FTS index followed
    assert queries.streams() == []
    assert queries.incident("a1") is None


def test_purge_trims_the_journal(tmp_path: Path) -> None:
    store, queries = _store(tmp_path)
    for i in range(1_200):
        store.apply(_windows(caption("cam-1", i, f"w{i}.", segment_id=T0)))
    store.purge()
    assert queries.first_change_id() == 201
    assert queries.last_change_id() == 1_200
