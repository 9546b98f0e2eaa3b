"""Every shipped example config is valid for the settings class of its service."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from earwitness.config import load_settings
from export.config import ExportSettings
from sinks.config import AlertsSettings
from stream.config import AnalyzerSettings
from stream.engine.families import ModelFamily
from stream.engine.prompts import plan_prompt

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SERVICES = {"analyzer": AnalyzerSettings, "alerts": AlertsSettings, "export": ExportSettings}


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


@pytest.mark.slow
def test_gpu_example_keeps_the_engine_fed(tiny_model_dir: Path) -> None:
    """The measured GPU batching: batches prefill within one engine step, and neither the
    in-flight bound nor backpressure caps the engine below max_num_seqs. The prompt is counted
    by the captioner's processor: the tiny model's has the real one's template and encoder
    arithmetic (its weights are not needed to count)."""
    settings = load_settings(AnalyzerSettings, EXAMPLES / "analyzer-gpu.yaml")
    engine, batch = settings.engine, settings.batch
    counted = engine.model_copy(update={"model": str(tiny_model_dir)})
    plan = plan_prompt(counted, ModelFamily.QWEN3_OMNI_CAPTIONER)  # also: max_model_len fits

    assert batch.max_inflight >= engine.max_num_seqs
    assert batch.pause_queued_windows > batch.max_inflight
    assert engine.max_num_batched_tokens is not None
    prompt_tokens = plan.prompt_tokens(engine.max_audio_s)
    assert batch.max_batch * prompt_tokens <= engine.max_num_batched_tokens


def _cli(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("EARWITNESS_")}
    return subprocess.run(
        [sys.executable, "-m", "earwitness.cli", *args],
        cwd=EXAMPLES.parent,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("alerts*.yaml")), ids=lambda p: p.name)
def test_alert_runner_examples_pass_check_as_written(path: Path) -> None:
    """docs/alerts.md: `earwitness alerts --config examples/alerts.yaml --check`."""
    done = _cli("alerts", "--config", str(path.relative_to(EXAMPLES.parent)), "--check")
    assert done.returncode == 0, done.stderr


@pytest.mark.kafka
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("analyzer*.yaml")), ids=lambda p: p.name)
def test_analyzer_examples_pass_check(
    path: Path, kafka_bootstrap: str, family_model_dir: Callable[[str], Path]
) -> None:
    """`earwitness analyze --config <example> --check`, with the broker and a model this
    machine has (the examples name 127.0.0.1:9092 and the real weights' directory): the tiny
    model of the family the example names (the captioner's when it names none)."""
    family = (yaml.safe_load(path.read_text()).get("engine") or {}).get("family")
    env = {
        "EARWITNESS_ANALYZER_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "EARWITNESS_ANALYZER_ENGINE__MODEL": str(
            family_model_dir(family or "qwen3-omni-captioner")
        ),
    }
    done = _cli("analyze", "--config", str(path), "--check", env=env)
    assert done.returncode == 0, done.stderr
    assert "settings: valid" in done.stdout and "topic frames" in done.stdout


@pytest.mark.parametrize(
    "path",
    sorted([*EXAMPLES.glob("ingest*.yaml"), *EXAMPLES.glob("console*.yaml")]),
    ids=lambda p: p.name,
)
def test_ingest_and_console_examples_pass_check_as_written(path: Path) -> None:
    service = path.name.split(".")[0].split("-")[0]
    done = _cli(service, "--config", str(path.relative_to(EXAMPLES.parent)), "--check")
    assert done.returncode == 0, done.stderr


CHECKED_BY = {
    "alerts*.yaml": "test_alert_runner_examples_pass_check_as_written",
    "analyzer*.yaml": "test_analyzer_examples_pass_check",
    "ingest*.yaml": "test_ingest_and_console_examples_pass_check_as_written",
    "console*.yaml": "test_ingest_and_console_examples_pass_check_as_written",
    "export*.yaml": "test_export_examples_pass_check_as_written",
    "rules.yaml": "the alerts examples' rules_path: alerts --check loads it",
    "audio/*": "the demo's sample, published by scripts/demo",
    "secrets/*": "placeholder secret files of examples/alerts.yaml",
}


def test_every_example_file_is_checked() -> None:
    """A new example must pass --check too: each file of examples/ is one a test checks."""
    files = {p.relative_to(EXAMPLES) for p in EXAMPLES.rglob("*") if p.is_file()}
    unchecked = [str(f) for f in files if not any(f.match(pattern) for pattern in CHECKED_BY)]
    assert not unchecked, f"examples no test checks: {unchecked}"
    rules_paths = {
        (EXAMPLES.parent / load_settings(AlertsSettings, p).rules_path).resolve()
        for p in EXAMPLES.glob("alerts*.yaml")
    }
    assert (EXAMPLES / "rules.yaml").resolve() in rules_paths


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("export*.yaml")), ids=lambda p: p.name)
def test_export_examples_pass_check_as_written(path: Path) -> None:
    """docs/export.md: `earwitness export --config examples/export.yaml --check`."""
    env = {"EARWITNESS_EXPORT_DESTINATION__SECRET_KEY": "not-a-real-secret"}  # s3: from a secret
    done = _cli("export", "--config", str(path.relative_to(EXAMPLES.parent)), "--check", env=env)
    assert done.returncode == 0, done.stderr
    assert "export settings are valid" in done.stderr
