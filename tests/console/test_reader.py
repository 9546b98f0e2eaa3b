"""The reader against the real broker: read_committed, restarts, the rebuild, bad records."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from console.config import ConsoleKafka, StoreSettings
from console.metrics import ConsoleMetrics
from console.queries import Queries, SearchQuery
from console.reader import ConsoleHealth, TopicReader
from console.records import AckRow
from console.store import NS_PER_DAY, Change, Store
from sinks.alerts import AlertState
from tests.console.support import (
    NS,
    alert,
    alert_record,
    caption,
    events_records,
    produce_committed,
    wait_for,
)
from tests.support.kafka import produce

pytestmark = pytest.mark.kafka

T0 = time.time_ns() - 3600 * NS


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {"captions": new_topic(partitions=2), "alerts": new_topic(),
            "acks": new_topic(config={"cleanup.policy": "compact"})}  # fmt: skip


@contextmanager
def reading(
    bootstrap: str, topics: dict[str, str], db: Path, retention_days: float = 7
) -> Iterator[tuple[Queries, list[Change], ConsoleMetrics]]:
    kafka = ConsoleKafka(bootstrap_servers=bootstrap, captions_topic=topics["captions"],
                         alerts_topic=topics["alerts"], acks_topic=topics["acks"],
                         batch_wait_ms=50, metadata_refresh_s=1)  # fmt: skip
    store = Store(db, retention_days, 10_000)
    published: list[Change] = []
    metrics, health = ConsoleMetrics(), ConsoleHealth(60)
    reader = TopicReader(kafka=kafka, store_settings=StoreSettings(path=db), store=store,
                         publish=published.extend, metrics=metrics, health=health)  # fmt: skip
    reader.start()
    try:
        wait_for(lambda: health.caught_up, 60, "the reader to catch up")
        yield Queries(db), published, metrics
    finally:
        reader.stop()
        assert not reader.alive() and reader.error is None
        store.close()


def _dump(queries: Queries) -> dict[str, list[tuple[object, ...]]]:
    db = queries._db()
    return {
        table: [tuple(row) for row in db.execute(f"SELECT {cols} FROM {table} ORDER BY 1")]
        for table, cols in [
            ("windows", "event_id, stream_id, kind, start_ns, text"),
            ("streams", "stream_id, kind, end_ns, first_sentence"),
            ("incidents", "alert_id, state, stream_id, caption"),
            ("acks", "alert_id, by, note"),
        ]
    }


def test_only_committed_captions_are_read(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    committed = [caption("cam-1", i, f"Committed {i}.", segment_id=T0) for i in range(3)]
    aborted = [caption("cam-1", 9, "Aborted, never shown.", segment_id=T0)]
    produce_committed(kafka_bootstrap, topics["captions"], events_records(aborted), abort=True)
    produce_committed(kafka_bootstrap, topics["captions"], events_records(committed))
    with reading(kafka_bootstrap, topics, tmp_path / "c.db") as (queries, published, _):
        wait_for(lambda: len(published) == 3, 30, "three changes")
        rows = queries.search(SearchQuery(text="committed"), 10)
        assert sorted(r["window_index"] for r in rows) == [0, 1, 2]
        assert queries.search(SearchQuery(text="aborted"), 10) == []


def test_a_restart_resumes_and_a_lost_file_is_rebuilt(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "console.db"
    first = [caption(f"cam-{i % 3}", i, f"Glass breaking {i}.", segment_id=T0) for i in range(6)]
    firing = alert("a1", AlertState.FIRING, stream_id="cam-1", started_ns=T0,
                   text="Glass breaking.", matched=("glass breaking",))  # fmt: skip
    produce_committed(kafka_bootstrap, topics["captions"], events_records(first))
    produce(kafka_bootstrap, topics["alerts"], [alert_record(firing)])
    ack = AckRow(alert_id="a1", by="ana", note="on it", acked_ns=time.time_ns())
    produce(kafka_bootstrap, topics["acks"], [(b"a1", ack.to_json())])
    with reading(kafka_bootstrap, topics, db) as (queries, published, _):
        wait_for(lambda: len(published) == 8, 30, "8 changes")
        before = _dump(queries)
    assert len(before["windows"]) == 6 and before["acks"] == [("a1", "ana", "on it")]

    more = [caption("cam-9", 0, "Later window.", segment_id=T0)]
    produce_committed(kafka_bootstrap, topics["captions"], events_records(more))
    with reading(kafka_bootstrap, topics, db) as (queries, published, _):
        wait_for(lambda: published, 30, "the new window")
        assert [c.stream_id for c in published] == ["cam-9"]  # nothing read twice
        resumed = _dump(queries)
        last_id = queries.last_change_id()
    assert last_id == 9

    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with reading(kafka_bootstrap, topics, db) as (queries, published, _):
        assert _dump(queries) == resumed  # ready only once the backlog is read
        assert len(published) == 9


def test_a_rebuild_keeps_only_what_retention_allows(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    old = time.time_ns() - 3 * NS_PER_DAY
    events = [caption("cam-1", 0, "Three days ago.", segment_id=old),
              caption("cam-1", 1, "An hour ago.", segment_id=T0)]  # fmt: skip
    produce_committed(kafka_bootstrap, topics["captions"], events_records(events))
    with reading(kafka_bootstrap, topics, tmp_path / "c.db", retention_days=1) as (q, _, _):
        assert [r["text"] for r in q.search(SearchQuery(stream_id="cam-1"), 10)] == ["An hour ago."]


def test_bad_records_are_counted_and_skipped(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    good = caption("cam-1", 0, "Fine.", segment_id=T0)
    produce(kafka_bootstrap, topics["alerts"], [(b"x", b"{not json"), (b"y", b'{"state": "x"}')])
    produce_committed(kafka_bootstrap, topics["captions"],
                      [(b"cam-1", b"\x00garbage"), *events_records([good])])  # fmt: skip
    with reading(kafka_bootstrap, topics, tmp_path / "c.db") as (_, published, metrics):
        wait_for(lambda: published, 30, "the good window")
        sample = metrics.registry.get_sample_value
        assert sample("earwitness_console_bad_records_total",
                      {"topic": topics["captions"], "reason": "bad_json"}) == 1  # fmt: skip
        assert sample("earwitness_console_bad_records_total",
                      {"topic": topics["alerts"], "reason": "bad_json"}) == 1  # fmt: skip
        assert sample("earwitness_console_bad_records_total",
                      {"topic": topics["alerts"], "reason": "bad_alert"}) == 1  # fmt: skip
        assert [c.stream_id for c in published] == ["cam-1"]


def test_a_topic_made_later_is_picked_up(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    from tests.support.kafka import create_topic

    missing = {**topics, "alerts": f"{topics['alerts']}-later"}
    with reading(kafka_bootstrap, missing, tmp_path / "c.db") as (queries, _, _):
        create_topic(kafka_bootstrap, missing["alerts"])
        firing = alert("a2", AlertState.FIRING, stream_id="cam-2", started_ns=T0, text="Siren.",
                       matched=("siren",))  # fmt: skip
        produce(kafka_bootstrap, missing["alerts"], [alert_record(firing)])
        wait_for(lambda: queries.incident("a2"), 30, "the alert on the new topic")
