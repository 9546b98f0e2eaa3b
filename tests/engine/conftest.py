"""Fixtures of the engine tests: the tiny test model, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.engine.testmodel import write_test_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen3-Omni thinker directory (``earwitness make-test-model``)."""
    return write_test_model(tmp_path_factory.mktemp("tiny-qwen3-omni"))
