"""The commit order of a flush and its recovery, SIGKILLed at every step (no broker needed).

Each flush of ``crash_flush`` holds COUNT caption rows plus one rejected record, so a flush
starting at offset ``f`` covers ``f .. f + COUNT`` (inclusive) and the next starts after it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fsspec
import pyarrow.fs as pafs
import pytest

from export import layout
from export.commit import Committer, FencedError
from export.store import Store, open_filesystem
from tests.export.crash_flush import flush_of
from tests.export.support import REPO, read_rejects, read_table

COUNT = 60
SPAN = COUNT + 1  # rows and the rejected record


def _crash_flush(root: Path, first: int, failpoint: str | None = None) -> int:
    cmd = [sys.executable, "-m", "tests.export.crash_flush", str(root), str(first), str(COUNT)]
    done = subprocess.run([*cmd, *([failpoint] if failpoint else [])], cwd=REPO, check=False)
    return done.returncode


def _store(root: Path) -> Store:
    fs, path = open_filesystem(str(root), {})
    return Store(fs, path)


def _offsets(root: Path) -> list[int]:
    return sorted(
        read_table(pafs.LocalFileSystem(), str(root), "captions")["kafka_offset"].to_pylist()
    )


def _expected(flushes: int) -> list[int]:
    return [f * SPAN + i for f in range(flushes) for i in range(COUNT)]


@pytest.mark.slow  # a Python process per crash (~2 s each)
@pytest.mark.parametrize(
    ("failpoint", "resume_at"),
    [
        ("export.staged", SPAN),  # not committed: rolled back, replayed from the same offset
        ("export.manifest_written", 2 * SPAN),  # committed: rolled forward
        ("export.published", 2 * SPAN),
    ],
)
def test_sigkill_at_each_step_then_recovery_leaves_every_row_once(
    tmp_path: Path, failpoint: str, resume_at: int
) -> None:
    committer = Committer(_store(tmp_path), "test")
    assert committer.recover("captions", "t", 0, start_offset=0) == 0
    assert _crash_flush(tmp_path, 0) == 0
    assert _crash_flush(tmp_path, SPAN, failpoint) == -9  # SIGKILL at the failpoint

    assert committer.recover("captions", "t", 0, start_offset=0) == resume_at
    assert _store(tmp_path).files(layout.staging_dir("captions", 0)) == []
    if resume_at == SPAN:  # redo the flush the crash lost, as the restarted exporter would
        assert _offsets(tmp_path) == _expected(1)
        committer.commit(flush_of(SPAN, COUNT))
    assert _offsets(tmp_path) == _expected(2)
    rejects = read_rejects(pafs.LocalFileSystem(), str(tmp_path), "captions")
    assert sorted(rejects["kafka_offset"].to_pylist()) == [COUNT, SPAN + COUNT]
    assert rejects["value"].to_pylist() == [b"not json"] * 2


def test_a_second_exporter_that_resumed_from_the_same_place_is_fenced(tmp_path: Path) -> None:
    first, second = Committer(_store(tmp_path), "a"), Committer(_store(tmp_path), "b")
    assert first.recover("captions", "t", 0, 0) == second.recover("captions", "t", 0, 0) == 0
    first.commit(flush_of(0, COUNT))
    with pytest.raises(FencedError, match="another exporter"):
        second.commit(flush_of(0, COUNT // 2))
    assert _offsets(tmp_path) == _expected(1)


def test_the_origin_manifest_pins_where_a_new_partition_started(tmp_path: Path) -> None:
    committer = Committer(_store(tmp_path), "test")
    assert committer.recover("captions", "t", 3, start_offset=500) == 500
    # the topic moved on meanwhile (start = latest): the partition still resumes at 500
    assert committer.recover("captions", "t", 3, start_offset=900) == 500


def test_old_manifests_are_pruned_to_keep_manifests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("export.commit.PRUNE_SLACK", 1)
    committer = Committer(_store(tmp_path), "test", keep_manifests=2)
    committer.recover("captions", "t", 0, 0)
    first = 0
    for count in (COUNT, 5, 5, 5):
        committer.commit(flush_of(first, count))
        first += count + 1
    names = _store(tmp_path).files(layout.manifests_dir("captions", 0))
    assert len(names) == 3  # 5 manifests written, the commits pruned down to keep + slack
    assert committer.recover("captions", "t", 0, 0) == first
    assert len(_store(tmp_path).files(layout.manifests_dir("captions", 0))) == 2


def test_an_fsspec_filesystem_takes_the_same_commit_order() -> None:
    """fsspec's in-memory filesystem: a real fsspec implementation, behind pyarrow's wrapper."""
    fsspec.filesystem("memory").rm("/lake", recursive=True) if fsspec.filesystem("memory").exists(
        "/lake"
    ) else None
    filesystem, root = open_filesystem("memory://lake", {})
    store = Store(filesystem, root)
    committer = Committer(store, "test")
    assert committer.recover("captions", "t", 0, 0) == 0
    committer.commit(flush_of(0, COUNT))
    assert committer.recover("captions", "t", 0, 0) == SPAN
    table = read_table(filesystem, root, "captions")
    assert sorted(table["kafka_offset"].to_pylist()) == _expected(1)
    assert store.files(layout.STAGING) == []
