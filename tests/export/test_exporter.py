"""``earwitness export`` against the real broker: SIGKILLed at every step of the commit order,
restarted, and every committed record of the topic is in the files exactly once."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from export.layout import hour_of
from tests.export.support import (
    BAD_RECORDS,
    ExporterProcess,
    captions,
    manifests,
    read_rejects,
    read_table,
    records,
    wait_until,
    write_config,
)
from tests.support.kafka import consume, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FAILPOINTS = [
    "export.staged",
    "export.manifest_written",
    "export.published",
    "export.offsets_committed",
]


def _aborted(bootstrap: str, topic: str) -> None:
    """Records of an aborted transaction: a read_committed exporter must never export them."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{topic}-aborted"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for key, value in records(captions(10, start=10_000)):
        producer.produce(topic, key=key, value=value)
    producer.abort_transaction(30)


def test_sigkill_at_each_step_then_restart_exports_every_record_once(
    kafka_bootstrap: str, new_topic, tmp_path: Path
) -> None:
    topic = new_topic(partitions=2)
    lake = tmp_path / "lake"
    config = write_config(
        tmp_path, kafka_bootstrap, topic, str(lake), kafka={"group_instance_id": "export-0"}
    )
    fs, root = pafs.LocalFileSystem(), str(lake)
    produce(kafka_bootstrap, topic, records(captions(100)))
    _aborted(kafka_bootstrap, topic)
    produce(kafka_bootstrap, topic, [(b"cam-0", bad) for bad in BAD_RECORDS])
    for n, failpoint in enumerate(FAILPOINTS, start=1):
        killed = ExporterProcess(
            write_config(
                tmp_path,
                kafka_bootstrap,
                topic,
                str(lake),
                kafka={"group_instance_id": "export-0"},
                failpoints={failpoint: 1},
            ),
            tmp_path / f"export-{n}.log",
        )
        assert killed.wait(180) == -9, killed.text()[-3000:]
        produce(kafka_bootstrap, topic, records(captions(50, start=100 * n)))
    expected = consume(kafka_bootstrap, topic, count=100 + 50 * len(FAILPOINTS) + 3)
    positions = sorted((m.partition(), m.offset()) for m in expected)
    final = ExporterProcess(config, tmp_path / "export-final.log")

    def exported() -> int:
        rows = read_table(fs, root, "captions").num_rows if (lake / "captions").exists() else 0
        return rows + read_rejects(fs, root, "captions").num_rows

    wait_until(lambda: exported() >= len(positions), 180, "every record in the files")
    assert final.terminate() == 0, final.text()[-3000:]

    table = read_table(fs, root, "captions")
    rejects = read_rejects(fs, root, "captions")
    got = sorted(
        zip(
            table["kafka_partition"].to_pylist() + rejects["kafka_partition"].to_pylist(),
            table["kafka_offset"].to_pylist() + rejects["kafka_offset"].to_pylist(),
            strict=True,
        )
    )
    assert got == positions  # no duplicate, nothing missing, nothing of the aborted transaction
    produced = [e for i in range(5) for e in captions(100 if i == 0 else 50, start=100 * i)]
    assert set(table["event_id"].to_pylist()) == {e.event_id for e in produced}
    assert sorted(rejects["value"].to_pylist()) == sorted(BAD_RECORDS)
    assert not list((lake / "_staging").rglob("*.parquet"))
    hours = {hour_of(e.window_start_ns) for e in produced}
    _check_hive_layout(lake, {f"date={date}/hour={hh}" for date, hh in hours})
    _check_group_offsets(kafka_bootstrap, topic, fs, root)


def _check_hive_layout(lake: Path, expected: set[str]) -> None:
    hours = {
        p.relative_to(lake / "captions").parent.as_posix()
        for p in (lake / "captions").rglob("*.parquet")
    }
    assert hours == expected
    assert len(expected) > 1


def _check_group_offsets(bootstrap: str, topic: str, fs: pafs.FileSystem, root: str) -> None:
    """The group's offsets (lag monitoring) end where the newest manifests end."""
    ends: dict[int, int] = {}
    for manifest in manifests(fs, root, "captions"):
        partition = manifest["partition"]
        ends[partition] = max(ends.get(partition, 0), manifest["last_offset"] + 1)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"export-{topic}"})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=30)
    finally:
        consumer.close()
    assert {tp.partition: tp.offset for tp in committed} == ends
    assert all(end > 0 for end in ends.values())  # both partitions had records


def test_a_member_joins_then_leaves_and_every_record_is_exported_once(
    kafka_bootstrap: str, new_topic, tmp_path: Path
) -> None:
    """Cooperative rebalances: the revoked partitions' buffers are flushed before the new
    owner recovers them, so nothing is doubled or lost across the hand-overs. (Dynamic
    members: a static one's partitions would wait out its session timeout after it stops.)"""
    topic = new_topic(partitions=2)
    lake = tmp_path / "lake"
    fs, root = pafs.LocalFileSystem(), str(lake)

    def member(n: int) -> ExporterProcess:
        config = write_config(
            tmp_path,
            kafka_bootstrap,
            topic,
            str(lake),
            roll={"max_rows": 10_000, "max_age_s": 5.0},
            instance=f"export-{n}",
        )
        return ExporterProcess(config, tmp_path / f"member-{n}.log")

    def exported() -> int:
        return read_table(fs, root, "captions").num_rows if (lake / "captions").exists() else 0

    produce(kafka_bootstrap, topic, records(captions(100)))
    first = member(0)
    wait_until(
        lambda: "resuming at offset" in first.text() or "first export" in first.text(),
        120,
        "member 0 assigned",
    )
    second = member(1)
    wait_until(lambda: exported() > 0, 120, "a flush forced by the rebalance")
    produce(kafka_bootstrap, topic, records(captions(100, start=100)))
    assert first.terminate() == 0, first.text()[-3000:]  # its partitions go to member 1
    produce(kafka_bootstrap, topic, records(captions(100, start=200)))
    wait_until(lambda: exported() >= 300, 240, "every record")
    assert second.terminate() == 0, second.text()[-3000:]
    table = read_table(fs, root, "captions")
    assert sorted(table["window_index"].to_pylist()) == sorted(
        e.window_index for e in captions(300)
    )
    instances = {m["exporter"]["instance"] for m in manifests(fs, root, "captions") if m["files"]}
    assert instances == {"export-0", "export-1"}


def test_records_the_retention_deleted_before_their_export_are_reported(
    kafka_bootstrap: str, new_topic, tmp_path: Path
) -> None:
    """An exporter down longer than the topic's retention cannot export what expired: it says
    so (the range, in an error) instead of skipping it silently."""
    topic = new_topic(partitions=1)
    lake = tmp_path / "lake"
    fs, root = pafs.LocalFileSystem(), str(lake)
    config = write_config(tmp_path, kafka_bootstrap, topic, str(lake))

    def exported() -> int:
        return read_table(fs, root, "captions").num_rows if (lake / "captions").exists() else 0

    produce(kafka_bootstrap, topic, records(captions(20)))
    first = ExporterProcess(config, tmp_path / "first.log")
    wait_until(lambda: exported() == 20, 120, "the first 20 rows")
    assert first.terminate() == 0
    produce(kafka_bootstrap, topic, records(captions(30, start=20)))  # offsets 20..49
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.delete_records([TopicPartition(topic, 0, 40)])[TopicPartition(topic, 0, 40)].result(30)
    second = ExporterProcess(config, tmp_path / "second.log")
    wait_until(lambda: exported() == 30, 120, "the 10 rows left")
    assert second.terminate() == 0
    assert "offsets 20..39 expired from the topic" in second.text()
    offsets = sorted(read_table(fs, root, "captions")["kafka_offset"].to_pylist())
    assert offsets == [*range(20), *range(40, 50)]
