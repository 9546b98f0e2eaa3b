"""The queries of docs/analytics.md, run by DuckDB over a real export, checked against the
topics they were exported from (the same over S3: ``test_s3_readers.py``)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.fs as pafs
import pytest

from tests.export.analytics import check_queries, produce_samples, read_topics
from tests.export.support import ExporterProcess, read_table, wait_until, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_the_documented_queries_count_what_the_topics_hold(
    kafka_bootstrap: str, new_topic, tmp_path: Path
) -> None:
    captions_topic, alerts_topic = new_topic(partitions=2), new_topic(partitions=1)
    events, alerts = produce_samples(kafka_bootstrap, captions_topic, alerts_topic)
    lake = tmp_path / "lake"
    config = write_config(
        tmp_path, kafka_bootstrap, captions_topic, str(lake), kafka={"alerts_topic": alerts_topic}
    )
    exporter = ExporterProcess(config, tmp_path / "export.log")
    fs = pafs.LocalFileSystem()

    def rows(table: str) -> int:
        return read_table(fs, str(lake), table).num_rows if (lake / table).exists() else 0

    wait_until(
        lambda: rows("captions") == len(events) and rows("alerts") == len(alerts), 180, "export"
    )
    assert exporter.terminate() == 0, exporter.text()[-3000:]
    topic_events, topic_alerts = read_topics(
        kafka_bootstrap, captions_topic, alerts_topic, len(events), len(alerts)
    )
    check_queries(duckdb.connect(), str(lake), topic_events, topic_alerts)
