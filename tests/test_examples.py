"""Every shipped example config is valid for the settings class of its service."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from earwitness.config import load_settings
from sinks.config import AlertsSettings
from stream.config import AnalyzerSettings
from stream.engine.settings import prompt_tokens

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SERVICES = {"analyzer": AnalyzerSettings, "alerts": AlertsSettings}


@pytest.fixture(autouse=True)
def _no_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EARWITNESS_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*-*.yaml")), ids=lambda p: p.name)
def test_example_config_loads(path: Path) -> None:
    service = path.name.split("-")[0]
    assert service in SERVICES, f"{path.name}: no settings class for service {service!r}"

    settings = load_settings(SERVICES[service], path)

    assert settings.kafka.bootstrap_servers


def test_gpu_example_keeps_the_engine_fed() -> None:
    """The measured GPU batching: batches prefill within one engine step, and neither the
    in-flight bound nor backpressure caps the engine below max_num_seqs."""
    settings = load_settings(AnalyzerSettings, EXAMPLES / "analyzer-gpu.yaml")
    engine, batch = settings.engine, settings.batch

    assert batch.max_inflight >= engine.max_num_seqs
    assert batch.pause_queued_windows > batch.max_inflight
    assert engine.max_num_batched_tokens is not None
    assert batch.max_batch * prompt_tokens(engine.max_audio_s) <= engine.max_num_batched_tokens
