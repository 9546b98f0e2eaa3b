"""The destination: a local directory or a URL, through pyarrow's filesystems.

``/data/lake`` or ``file:///data/lake`` → pyarrow's local filesystem; ``s3://bucket/prefix`` →
pyarrow's own S3 filesystem (options: ``endpoint_override``, ``region``, ``scheme``,
``access_key``, ``secret_key`` ...; without keys, the AWS default chain); any other URL, or any
URL with ``fsspec: true``, → the fsspec filesystem of its scheme (s3fs, gcsfs, adlfs ... when
installed), wrapped by pyarrow. Paths given to :class:`Store` are relative to the root (see
:mod:`export.layout`).

Atomicity, the one property the commit order needs: a file appears under its final name
complete or not at all. Object stores give it per PUT; on a local disk a file is written to a
hidden ``.tmp-`` name, fsynced and renamed.
"""

from __future__ import annotations

import io
import logging
import os
import uuid
from collections.abc import Mapping
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from earwitness.errors import ConfigError, TransientError

logger = logging.getLogger(__name__)


def open_filesystem(
    url: str, options: Mapping[str, object], *, use_fsspec: bool = False
) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, root path)`` of a destination URL (module docstring)."""
    scheme = urlparse(url).scheme
    try:
        if scheme in ("", "file") and not use_fsspec:
            root = url[len("file://") :] if scheme == "file" else url
            return pafs.LocalFileSystem(), os.path.abspath(root)
        if scheme == "s3" and not use_fsspec:
            parsed = urlparse(url)
            return pafs.S3FileSystem(**dict(options)), f"{parsed.netloc}{parsed.path}".rstrip("/")
        return _fsspec(url, options)
    except (TypeError, ValueError, ImportError) as exc:
        raise ConfigError(f"destination {url}: {exc}") from exc


def _fsspec(url: str, options: Mapping[str, object]) -> tuple[pafs.FileSystem, str]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, **dict(options))
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), root.rstrip("/")


class Store:
    """Files under one root. Every error of the filesystem is a :class:`TransientError`."""

    def __init__(self, filesystem: pafs.FileSystem, root: str, compression: str = "zstd") -> None:
        self.fs = filesystem
        self.root = root
        self.compression = compression
        self._local = isinstance(filesystem, pafs.LocalFileSystem)

    def full(self, path: str) -> str:
        return f"{self.root}/{path}"

    def write_parquet(self, path: str, table: pa.Table) -> int:
        """Write ``table`` to ``path`` (atomic, see the module docstring); its size in bytes."""
        sink = io.BytesIO()
        pq.write_table(table, sink, compression=self.compression)
        data = sink.getvalue()
        self.put(path, data)
        return len(data)

    def put(self, path: str, data: bytes) -> None:
        """``data`` under ``path``, complete or not at all."""
        target = self.full(path)
        try:
            if self._local:
                self._put_local(target, data)
            else:
                with self.fs.open_output_stream(target) as out:
                    out.write(data)
        except OSError as exc:
            raise TransientError(f"cannot write {target}: {exc}") from exc

    def _put_local(self, target: str, data: bytes) -> None:
        folder, name = os.path.split(target)
        os.makedirs(folder, exist_ok=True)
        temp = os.path.join(folder, f".tmp-{uuid.uuid4().hex[:12]}-{name}")
        with open(temp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
        _fsync_dir(folder)

    def get(self, path: str) -> bytes:
        try:
            with self.fs.open_input_stream(self.full(path)) as stream:
                return bytes(stream.read())
        except OSError as exc:
            raise TransientError(f"cannot read {self.full(path)}: {exc}") from exc

    def move(self, src: str, dst: str) -> None:
        """Rename (local: atomic) or copy then delete (object stores)."""
        source, target = self.full(src), self.full(dst)
        try:
            if self._local:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(source, target)
                _fsync_dir(os.path.dirname(target))
            else:
                self.fs.move(source, target)
        except OSError as exc:
            raise TransientError(f"cannot move {source} to {target}: {exc}") from exc

    def exists(self, path: str) -> bool:
        try:
            return self.fs.get_file_info(self.full(path)).type == pafs.FileType.File
        except OSError as exc:
            raise TransientError(f"cannot stat {self.full(path)}: {exc}") from exc

    def files(self, folder: str) -> list[str]:
        """Paths (relative to the root) of every file below ``folder``, sorted; [] if none."""
        selector = pafs.FileSelector(self.full(folder), recursive=True, allow_not_found=True)
        try:
            infos = self.fs.get_file_info(selector)
        except OSError as exc:
            raise TransientError(f"cannot list {self.full(folder)}: {exc}") from exc
        prefix = len(self.root) + 1
        return sorted(i.path[prefix:] for i in infos if i.type == pafs.FileType.File)

    def delete(self, path: str) -> None:
        try:
            self.fs.delete_file(self.full(path))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise TransientError(f"cannot delete {self.full(path)}: {exc}") from exc


def _fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` survive a power cut (a crash of the process needs nothing)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
