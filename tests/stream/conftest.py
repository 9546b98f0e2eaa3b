"""The engine every in-process analyzer of a test module shares (one engine start a module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.engine.worker import EngineWorker
from tests.support.analyzer import BATCH, engine_settings


@pytest.fixture(scope="module")
def worker(tiny_model_dir: Path) -> Iterator[EngineWorker]:
    worker = EngineWorker(
        engine_settings(tiny_model_dir), BATCH, lambda w: f"{w.stream_id}/{w.index}"
    )
    worker.start(timeout_s=600)
    yield worker
    worker.stop(finish=False)
