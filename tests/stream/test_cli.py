"""``earwitness analyze``'s start-up checks: no silent hub download, ``--check`` says what
the analyzer would start with."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from earwitness.audit import AuditSettings
from earwitness.errors import ConfigError
from stream.config import AnalyzerSettings, HttpSettings, KafkaSettings
from stream.engine.settings import EngineSettings, check_model
from stream.topics import ensure_topics
from tests.support.analyzer import engine_settings
from tests.support.kafka import REPO, create_topic, unique_name


def analyze(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EARWITNESS_")}
    return subprocess.run(
        [sys.executable, "-m", "earwitness.cli", "analyze", *args],
        cwd=REPO,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_a_local_model_the_analyzer_refuses_to_start() -> None:
    """The defaults name the 30B captioner on the hub: no config must not mean a download."""
    done = analyze()
    assert done.returncode == 2
    assert "is not a local directory" in done.stderr
    assert "huggingface-cli download Qwen/Qwen3-Omni-30B-A3B-Captioner" in done.stderr


def test_a_model_comes_from_a_directory_or_an_explicit_download(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"architectures": ["Qwen2_5OmniModel"]}')
    where = check_model(EngineSettings(model=str(tmp_path)))
    assert where.startswith("local directory") and where.endswith("(qwen2.5-omni)")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"set engine\.family"):
        check_model(EngineSettings(model=str(tmp_path)))
    with pytest.raises(ConfigError, match=r"without a config\.json"):
        check_model(EngineSettings(model=str(tmp_path.parent)))
    hub = EngineSettings(model="Qwen/Qwen3-Omni-30B-A3B-Captioner", allow_download=True)
    assert "from the hub" in check_model(hub)


def test_check_validates_model_and_topics_then_exits(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    frames = new_topic(partitions=2)
    settings = AnalyzerSettings(
        kafka=KafkaSettings(
            bootstrap_servers=kafka_bootstrap,
            frames_topic=frames,
            captions_topic=f"{frames}.captions",
            group_id=unique_name("check"),
        ),
        engine=engine_settings(tiny_model_dir),
        http=HttpSettings(host="127.0.0.1", port=0),
    )
    config = tmp_path / "analyzer.json"
    config.write_text(settings.model_dump_json())
    done = analyze("--config", str(config), "--check")
    assert done.returncode == 0, done.stderr
    assert f"model: local directory {tiny_model_dir} (qwen3-omni-captioner)" in done.stdout
    assert f"topic frames {frames}: 2 partitions" in done.stdout
    assert f"topic captions {frames}.captions: would be created" in done.stdout
    assert "caption engine" not in done.stderr, "--check must not start the engine"


def _check_config(tmp_path: Path, kafka: KafkaSettings, audit: AuditSettings | None = None) -> Path:
    """A settings file for ``--check``: ``kafka`` and a directory that passes for a model."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        '{"architectures": ["Qwen3OmniMoeForConditionalGeneration"]}'
    )
    engine = EngineSettings(model=str(model), family="qwen3-omni-captioner")
    settings = AnalyzerSettings(
        kafka=kafka, engine=engine, http=HttpSettings(port=0), audit=audit or AuditSettings()
    )
    config = tmp_path / "analyzer.json"
    config.write_text(settings.model_dump_json())
    return config


def test_check_fails_like_a_start_would_when_topics_are_missing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """create_topics off and no topics: the analyzer would exit 2 at start, so --check does."""
    frames = unique_name("absent")
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        frames_topic=frames,
        captions_topic=f"{frames}.captions",
        group_id=frames,
        create_topics=False,
    )
    audit = AuditSettings(log_topic=f"{frames}.audit", state_topic=f"{frames}.audit-state")
    done = analyze("--config", str(_check_config(tmp_path, kafka, audit)), "--check")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"topic frames {frames}: MISSING (create_topics is off)" in done.stdout
    every = f"{frames}, {frames}.captions, {frames}.dlq, {frames}-cursors-changelog"
    assert f"missing topics: {every}" in done.stderr
    assert f"topic audit log {frames}.audit: MISSING (create_topics is off)" in done.stdout
    assert f"missing topics: {frames}.audit, {frames}.audit-state" in done.stderr


def test_a_changelog_that_is_not_compacted_is_refused(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """A changelog with cleanup.policy=delete would lose quiet streams' cursors: --check says
    so and exits 2, and the start refuses it the same way."""
    frames = new_topic(partitions=2)
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        frames_topic=frames,
        captions_topic=f"{frames}.captions",
        group_id=frames,
    )
    create_topic(kafka_bootstrap, kafka.changelog, 2, {"cleanup.policy": "delete"})
    done = analyze("--config", str(_check_config(tmp_path, kafka)), "--check")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"topic {kafka.changelog} has cleanup.policy=delete" in done.stderr
    with pytest.raises(ConfigError, match="must be compact"):
        ensure_topics(kafka)
