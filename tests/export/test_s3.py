"""The export against a real S3 server (versitygw, ``conftest.py``): the commit order with
SIGKILLs (an S3 move is a copy and a delete), and ``earwitness export`` end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
import yaml

from export import layout
from export.commit import Committer
from export.store import Store, open_filesystem
from tests.export.conftest import Gateway, S3Server
from tests.export.crash_flush import flush_of
from tests.export.support import (
    REPO,
    ExporterProcess,
    captions,
    read_table,
    records,
    wait_until,
    write_config,
)
from tests.support.kafka import produce

pytestmark = [pytest.mark.s3, pytest.mark.slow]
COUNT = 60


def _crash_flush(url: str, options: dict[str, object], first: int, failpoint: str) -> int:
    cmd = [sys.executable, "-m", "tests.export.crash_flush", url, str(first), str(COUNT), failpoint]
    env = {**os.environ, "CRASH_FLUSH_OPTIONS": orjson.dumps(options).decode()}
    return subprocess.run(cmd, cwd=REPO, env=env, check=False).returncode


@pytest.mark.parametrize(
    ("failpoint", "committed"), [("export.staged", False), ("export.manifest_written", True)]
)
def test_a_flush_killed_on_s3_is_undone_or_finished(
    s3_server: S3Server, failpoint: str, committed: bool
) -> None:
    url = f"s3://{s3_server.new_bucket()}/lake"
    filesystem, root = open_filesystem(url, s3_server.options())
    committer = Committer(Store(filesystem, root), "s3-test")
    assert committer.recover("captions", "t", 0, 0) == 0
    assert _crash_flush(url, s3_server.options(), 0, failpoint) == -9

    resume = committer.recover("captions", "t", 0, 0)
    assert resume == (COUNT + 1 if committed else 0)
    if not committed:
        committer.commit(flush_of(0, COUNT))
    offsets = sorted(read_table(filesystem, root, "captions")["kafka_offset"].to_pylist())
    assert offsets == list(range(COUNT))
    assert Store(filesystem, root).files(layout.STAGING) == []


@pytest.mark.kafka
def test_export_to_s3_end_to_end(
    s3_server: S3Server, kafka_bootstrap: str, new_topic, tmp_path: Path
) -> None:
    topic = new_topic(partitions=1)
    bucket = s3_server.new_bucket()
    options = {k: v for k, v in s3_server.options().items() if k != "secret_key"}
    config = write_config(
        tmp_path,
        kafka_bootstrap,
        topic,
        f"s3://{bucket}/lake",
        destination={"url": f"s3://{bucket}/lake", "options": options},
    )
    secret = str(s3_server.options()["secret_key"])
    produce(kafka_bootstrap, topic, records(captions(120)))
    exporter = ExporterProcess(
        config, tmp_path / "export.log", env={"EARWITNESS_EXPORT_DESTINATION__SECRET_KEY": secret}
    )
    filesystem = s3_server.filesystem()

    def rows() -> int:
        try:
            return read_table(filesystem, f"{bucket}/lake", "captions").num_rows
        except OSError:
            return 0

    wait_until(lambda: rows() >= 120, 180, "120 rows on S3")
    assert exporter.terminate() == 0, exporter.text()[-3000:]
    dataset = ds.dataset(f"{bucket}/lake/captions", filesystem=filesystem, partitioning="hive")
    table = dataset.to_table()
    assert sorted(table["window_index"].to_pylist()) == list(range(120))
    assert set(table.column_names) >= {"date", "hour", "audio", "kafka_offset"}
    assert secret not in exporter.text()


@pytest.mark.kafka
def test_the_store_going_away_pauses_the_export_and_it_catches_up(
    private_s3: Gateway, kafka_bootstrap: str, new_topic, tmp_path: Path
) -> None:
    """S3 down mid-run: flushes fail (counted, retried), nothing is lost or doubled, and the
    export catches up once the store is back."""
    server = S3Server(f"127.0.0.1:{private_s3.port}")
    bucket = server.new_bucket()
    options = {**server.options(), "connect_timeout": 2, "request_timeout": 5}
    url = f"s3://{bucket}/lake"
    config = write_config(
        tmp_path,
        kafka_bootstrap,
        new_topic(partitions=1),
        url,
        destination={"url": url, "options": options},
        retry_backoff_s=1.0,
    )
    topic = yaml.safe_load(config.read_text())["kafka"]["captions_topic"]
    produce(kafka_bootstrap, topic, records(captions(60)))
    exporter = ExporterProcess(config, tmp_path / "export.log")
    filesystem = server.filesystem()

    def rows() -> int:
        try:
            return read_table(filesystem, f"{bucket}/lake", "captions").num_rows
        except OSError:
            return 0

    wait_until(lambda: rows() >= 60, 180, "the first 60 rows")
    private_s3.stop()
    produce(kafka_bootstrap, topic, records(captions(60, start=60)))
    wait_until(lambda: "retrying later" in exporter.text(), 120, "a failed flush")
    private_s3.start()
    wait_until(lambda: rows() >= 120, 180, "every row once the store is back")
    assert exporter.terminate() == 0, exporter.text()[-3000:]
    offsets = read_table(filesystem, f"{bucket}/lake", "captions")["kafka_offset"].to_pylist()
    assert sorted(offsets) == list(range(120))
    staging = pafs.FileSelector(f"{bucket}/lake/_staging", recursive=True, allow_not_found=True)
    assert [i.path for i in filesystem.get_file_info(staging) if i.type == pafs.FileType.File] == []
