"""Readers of an export on S3 (versitygw): s3fs lists and reads the files, and DuckDB runs the
queries of docs/analytics.md straight from ``s3://`` and counts what the topics hold.

DuckDB reads S3 through s3fs here (``register_filesystem``): its own ``httpfs`` extension is not
on PyPI for DuckDB 2.0 and this machine reaches no other download site.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import s3fs

from export import layout
from tests.export.analytics import check_queries, produce_samples, read_topics
from tests.export.conftest import ACCESS_KEY, SECRET_KEY, S3Server
from tests.export.support import ExporterProcess, wait_until, write_config

pytestmark = [pytest.mark.s3, pytest.mark.kafka, pytest.mark.slow]


def _s3fs(server: S3Server) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(
        key=ACCESS_KEY,
        secret=SECRET_KEY,
        endpoint_url=f"http://{server.endpoint}",
        client_kwargs={"region_name": "us-east-1"},
        skip_instance_cache=True,
    )


def _rows(fs: s3fs.S3FileSystem, lake: str, table: str) -> int:
    fs.invalidate_cache()
    paths = fs.glob(f"{lake}/{table}/**/*.parquet")
    return sum(pq.ParquetFile(fs.open(path)).metadata.num_rows for path in paths)


def test_s3fs_and_duckdb_read_the_export_from_s3(
    s3_server: S3Server, kafka_bootstrap: str, new_topic, tmp_path: Path
) -> None:
    captions_topic, alerts_topic = new_topic(partitions=2), new_topic(partitions=1)
    events, alerts = produce_samples(kafka_bootstrap, captions_topic, alerts_topic)
    lake = f"{s3_server.new_bucket()}/lake"
    config = write_config(
        tmp_path,
        kafka_bootstrap,
        captions_topic,
        f"s3://{lake}",
        kafka={"alerts_topic": alerts_topic},
        destination={"url": f"s3://{lake}", "options": s3_server.options()},
    )
    exporter = ExporterProcess(config, tmp_path / "export.log")
    fs = _s3fs(s3_server)
    wait_until(
        lambda: (
            _rows(fs, lake, "captions") == len(events) and _rows(fs, lake, "alerts") == len(alerts)
        ),
        180,
        "the export on S3, read by s3fs",
    )
    assert exporter.terminate() == 0, exporter.text()[-3000:]

    # s3fs sees the Hive layout and no staged leftovers
    fs.invalidate_cache()
    dates = fs.ls(f"{lake}/captions")
    assert dates and all(Path(d).name.startswith("date=") for d in dates)
    assert fs.glob(f"{lake}/{layout.STAGING}/**/*.parquet") == []

    topic_events, topic_alerts = read_topics(
        kafka_bootstrap, captions_topic, alerts_topic, len(events), len(alerts)
    )
    con = duckdb.connect()
    con.register_filesystem(fs)
    check_queries(con, f"s3://{lake}", topic_events, topic_alerts)
