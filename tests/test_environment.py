"""Settings from the environment (``earwitness/environment.py``): one prefix per service,
nothing silently ignored, maps, dotted keys and null settable from a shell."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from earwitness.config import load_settings
from earwitness.errors import ConfigError
from sinks.config import AlertsSettings
from stream.config import AnalyzerSettings

RULES = Path(__file__).resolve().parents[1] / "examples" / "rules.yaml"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("EARWITNESS_") and not name.startswith("EARWITNESS_TEST_"):
            monkeypatch.delenv(name)


def test_each_service_reads_its_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARWITNESS_ANALYZER_ENGINE__MAX_NUM_SEQS", "64")
    monkeypatch.setenv("EARWITNESS_ALERTS_KAFKA__GROUP_ID", "runner-b")
    analyzer = load_settings(AnalyzerSettings)
    assert analyzer.engine.max_num_seqs == 64
    assert analyzer.kafka.group_id == "earwitness-analyzer", "the alert runner's is not ours"


def test_a_misspelt_section_or_field_is_an_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EARWITNESS_ANALYZER_KAFAK__GROUP_ID", "x")
    with pytest.raises(ConfigError, match="EARWITNESS_ANALYZER_KAFAK__GROUP_ID"):
        load_settings(AnalyzerSettings)
    monkeypatch.delenv("EARWITNESS_ANALYZER_KAFAK__GROUP_ID")
    monkeypatch.setenv("EARWITNESS_ANALYZER_ENGINE__MAX_NUM_SEQ", "8")
    with pytest.raises(ConfigError, match="EARWITNESS_ANALYZER_ENGINE__MAX_NUM_SEQ names no"):
        load_settings(AnalyzerSettings)


def test_a_bad_value_names_its_variable_not_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "analyzer.yaml"
    config.write_text("engine: {max_num_seqs: 8}\n")
    monkeypatch.setenv("EARWITNESS_ANALYZER_BATCH__MAX_BATCH", "lots")
    with pytest.raises(ConfigError) as raised:
        load_settings(AnalyzerSettings, config)
    assert "batch.max_batch" in str(raised.value)
    assert "environment variable EARWITNESS_ANALYZER_BATCH__MAX_BATCH" in str(raised.value)


def test_the_old_shared_prefix_still_works_with_a_warning_and_ignores_other_services(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("EARWITNESS_ENGINE__MAX_NUM_SEQS", "32")
    monkeypatch.setenv("EARWITNESS_KAFKA__STATE_TOPIC", "alerts-state")  # the alert runner's
    monkeypatch.setenv("EARWITNESS_RECEIVERS__OPS__SECRET", "whsec_x")  # the alert runner's
    with caplog.at_level(logging.WARNING):
        settings = load_settings(AnalyzerSettings)
    assert settings.engine.max_num_seqs == 32
    text = caplog.text
    assert "EARWITNESS_ENGINE__MAX_NUM_SEQS: the shared EARWITNESS_ prefix is deprecated" in text
    assert "EARWITNESS_KAFKA__STATE_TOPIC is not a setting of this service; ignored" in text
    assert "whsec_x" not in text


def test_the_service_prefix_wins_over_the_old_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARWITNESS_ENGINE__MAX_NUM_SEQS", "32")
    monkeypatch.setenv("EARWITNESS_ANALYZER_ENGINE__MAX_NUM_SEQS", "96")
    assert load_settings(AnalyzerSettings).engine.max_num_seqs == 96


def test_maps_dotted_keys_vllm_names_and_null(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "EARWITNESS_ANALYZER_KAFKA__CLIENT",
        '{"sasl.username": "svc", "security.protocol": "SASL_SSL"}',
    )
    monkeypatch.setenv("EARWITNESS_ANALYZER_ENGINE__VLLM_ENV__VLLM_USE_FLASHINFER_SAMPLER", "0")
    monkeypatch.setenv("EARWITNESS_ANALYZER_ENGINE__QUANTIZATION", "null")
    monkeypatch.setenv("EARWITNESS_ANALYZER_ENGINE__REVISION", "v2")
    settings = load_settings(AnalyzerSettings)
    assert settings.kafka.client == {"sasl.username": "svc", "security.protocol": "SASL_SSL"}
    assert settings.engine.vllm_env == {"VLLM_USE_FLASHINFER_SAMPLER": "0"}
    assert settings.engine.quantization is None and settings.engine.revision == "v2"


def test_the_environment_merges_into_the_file_key_by_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "analyzer.yaml"
    config.write_text("kafka: {group_id: from-file, frames_topic: f}\n")
    monkeypatch.setenv("EARWITNESS_ANALYZER_KAFKA__GROUP_ID", "from-env")
    kafka = load_settings(AnalyzerSettings, config).kafka
    assert (kafka.group_id, kafka.frames_topic) == ("from-env", "f")


def test_the_alert_runner_reads_its_receivers_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "alerts.yaml"
    config.write_text(
        f"rules_path: {RULES}\n"
        "receivers:\n  ops: {type: webhook, url: 'https://example.com/h', secret: placeholder}\n"
    )
    secret = "whsec_" + "QUJD" * 8
    monkeypatch.setenv("EARWITNESS_ALERTS_RECEIVERS__OPS__SECRET", secret)
    settings = load_settings(AlertsSettings, config)
    assert settings.receivers["ops"].secret.get_secret_value() == secret  # type: ignore[union-attr]
