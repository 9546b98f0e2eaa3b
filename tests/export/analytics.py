"""The queries of docs/analytics.md and what they must count, for the local and the S3 tests
(``test_analytics.py``, ``test_s3_readers.py``)."""

from __future__ import annotations

import re
from collections import Counter

import duckdb
import orjson

from earwitness.events import CaptionEvent, EventKind
from export.layout import hour_of
from sinks.alerts import Alert, AlertState
from tests.export.support import REPO
from tests.sinks.sinkutil import caption_event, sample_alert
from tests.support.kafka import consume, produce

DOC = REPO / "docs" / "analytics.md"
TEXTS = ["A dog barks.", "a dog barks ", "Glass breaks.", "Music plays softly.", "Rain."]


def queries(lake: str) -> dict[str, str]:
    """``-- query: NAME`` blocks of the doc's ```sql fences, ``{lake}`` replaced."""
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    named = {}
    for block in blocks:
        match = re.match(r"-- query: (\w+)\n", block)
        assert match, f"an SQL block of {DOC.name} without a '-- query: name' line"
        named[match[1]] = block.replace("{lake}", lake)
    return named


def produce_samples(
    bootstrap: str, captions_topic: str, alerts_topic: str
) -> tuple[list[CaptionEvent], list[Alert]]:
    """The sample events and their alerts, produced onto the two topics; returned."""
    events = sample_events()
    alerts = sample_alerts(events)
    produce(bootstrap, captions_topic, [(e.stream_id.encode(), e.to_json()) for e in events])
    produce(bootstrap, alerts_topic, [(a.alert_id.encode(), a.to_json()) for a in alerts])
    return events, alerts


def sample_events() -> list[CaptionEvent]:
    out = []
    for i in range(240):
        kind = EventKind.SILENCE if i % 11 == 0 else EventKind.CAPTION
        text = TEXTS[(i * i + i // 7) % len(TEXTS)]
        out.append(caption_event(i // 6, text, stream_id=f"cam-{i % 6}", kind=kind))
    return out


def sample_alerts(events: list[CaptionEvent]) -> list[Alert]:
    alerts = []
    for n, (stream, first, last) in enumerate(
        [("cam-1", 3, 9), ("cam-2", 10, 12), ("cam-1", 30, 38)]
    ):
        mine = [e for e in events if e.stream_id == stream]
        start, end = mine[first].window_start_ns, mine[last].window_end_ns
        for state in (AlertState.FIRING, AlertState.RESOLVED):
            alerts.append(
                sample_alert(state, n, stream_id=stream, started_ns=start, last_match_ns=end)
            )
    return alerts


def read_topics(
    bootstrap: str, captions_topic: str, alerts_topic: str, events: int, alerts: int
) -> tuple[list[CaptionEvent], list[Alert]]:
    """What the topics hold, read back from Kafka."""
    topic_events = [
        CaptionEvent.from_json(m.value()) for m in consume(bootstrap, captions_topic, count=events)
    ]
    topic_alerts = [
        Alert.model_validate(_without(orjson.loads(m.value()), "idempotency_key"))
        for m in consume(bootstrap, alerts_topic, count=alerts)
    ]
    return topic_events, topic_alerts


def check_queries(
    con: duckdb.DuckDBPyConnection,
    lake: str,
    topic_events: list[CaptionEvent],
    topic_alerts: list[Alert],
) -> None:
    """Every documented query over ``lake``, through ``con``, against the topics' contents."""
    sql = queries(lake)
    assert set(sql) >= {"top_events", "incidents_with_captions", "windows_per_day"}

    per_day = Counter(
        (e.stream_id, hour_of(e.window_start_ns)[0], str(e.kind)) for e in topic_events
    )
    got = con.sql(sql["windows_per_day"]).fetchall()
    assert {(s, str(d), k): n for s, d, k, n in got} == per_day

    top = [(s, str(d), text, n) for s, d, text, n in con.sql(sql["top_events"]).fetchall()]
    assert top == _top_events(topic_events)

    joined = con.sql(sql["incidents_with_captions"]).arrow().read_all()  # no pytz here
    expected: Counter[str] = Counter()
    for alert in (a for a in topic_alerts if a.state is AlertState.FIRING):
        expected[alert.alert_id] = sum(
            1
            for e in topic_events
            if e.stream_id == alert.stream_id
            and e.window_start_ns >= alert.started_ns
            and e.window_end_ns <= alert.last_match_ns
        )
    assert Counter(joined.column("alert_id").to_pylist()) == expected
    assert all(n > 0 for n in expected.values())

    by_config = con.sql(sql["captions_by_config"]).fetchall()
    assert sum(row[-1] for row in by_config) == len(topic_events)
    listed = con.sql(sql["committed_files"]).fetchall()
    assert sum(n for _, n in listed) == len(topic_events)


def _top_events(events: list[CaptionEvent]) -> list[tuple[object, ...]]:
    counts = Counter(
        (e.stream_id, hour_of(e.window_start_ns)[0], (e.caption or "").strip().lower())
        for e in events
        if e.kind is EventKind.CAPTION
    )
    groups: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for (stream, day, text), n in counts.items():
        groups.setdefault((stream, day), []).append((text, n))
    out = []
    for (stream, day), items in sorted(groups.items()):
        top = sorted(items, key=lambda item: (-item[1], item[0]))[:3]
        out.extend((stream, day, text, n) for text, n in top)
    return out


def _without(data: dict[str, object], key: str) -> dict[str, object]:
    return {k: v for k, v in data.items() if k != key}
