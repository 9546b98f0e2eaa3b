"""Where the exporter puts things under its destination root (pure names, no I/O).

::

    <root>/
      captions/date=2026-12-02/hour=13/captions-p00003-00000000000000001000-00000000000000002000.parquet
      alerts/date=.../hour=.../alerts-p00000-<first>-<end>.parquet
      _rejects/captions/captions-p00003-<first>-<end>.parquet     records that are not events
      _manifests/captions/p00003/<first>-<end>.json                one per flush: the commit point
      _staging/captions/p00003/<first>-<end>/<n>.parquet           written here, then moved

A flush covers one Kafka partition's offsets ``first`` to ``end`` (exclusive: ``end`` is the
offset after the last, where the next flush starts) and writes one data file per date/hour
present, all named by that range. Names start with ``_`` where readers must
not look: Hive-style readers (Spark, pyarrow datasets, DuckDB ``hive_partitioning``) skip
them, and a glob of ``captions/**/*.parquet`` never reaches them. Offsets are zero-padded to
20 digits so that names sort by offset.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime

HOUR_NS = 3_600_000_000_000
MANIFESTS = "_manifests"
STAGING = "_staging"
REJECTS = "_rejects"
_RANGE = re.compile(r"^(\d{20})-(\d{20})\.json$")


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """Offsets ``first..last`` of one partition (inclusive); empty when ``last < first``."""

    first: int
    last: int

    @property
    def next_offset(self) -> int:
        return self.last + 1

    def tag(self) -> str:
        """``<first>-<end>``: the first offset and the one after the last (where to resume)."""
        return f"{self.first:020d}-{self.next_offset:020d}"


def hour_of(time_ns: int) -> tuple[str, str]:
    """``("2026-12-02", "13")``: the date and hour partition of a Unix ns time (UTC)."""
    return _hour(time_ns // HOUR_NS)


@functools.lru_cache(maxsize=4096)
def _hour(hours: int) -> tuple[str, str]:
    moment = datetime.fromtimestamp(hours * 3600, tz=UTC)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%H")


def data_path(table: str, partition: int, span: Span, hour: tuple[str, str]) -> str:
    date, hh = hour
    return f"{table}/date={date}/hour={hh}/{table}-p{partition:05d}-{span.tag()}.parquet"


def rejects_path(table: str, partition: int, span: Span) -> str:
    return f"{REJECTS}/{table}/{table}-p{partition:05d}-{span.tag()}.parquet"


def staging_dir(table: str, partition: int) -> str:
    return f"{STAGING}/{table}/p{partition:05d}"


def staged_path(table: str, partition: int, span: Span, n: int) -> str:
    return f"{staging_dir(table, partition)}/{span.tag()}/{n}.parquet"


def manifests_dir(table: str, partition: int) -> str:
    return f"{MANIFESTS}/{table}/p{partition:05d}"


def manifest_path(table: str, partition: int, span: Span) -> str:
    return f"{manifests_dir(table, partition)}/{span.tag()}.json"


def span_of_manifest(name: str) -> Span | None:
    """The span a manifest's file name (its last path part) covers; None if not a manifest."""
    match = _RANGE.match(name.rsplit("/", 1)[-1])
    return Span(int(match[1]), int(match[2]) - 1) if match else None
