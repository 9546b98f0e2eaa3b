"""The audit trail of ``earwitness alerts`` (earwitness/audit.py) on the real broker: a start
and a stop per run, a config_changed when the settings or the rules file differ from the
instance's last run, the latest record per instance on the compacted topic, and no secret in
any record."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import AdminClient

from earwitness import __version__
from earwitness.audit import AuditAction, AuditRecord
from earwitness.compacted import read_to_end
from earwitness.config import load_settings, settings_hash
from earwitness.topics import cleanup_policy
from sinks.config import AlertsSettings
from tests.sinks.runnerutil import REPO, RULES, SECRET, settings
from tests.support.kafka import consume, unique_name


def _write(tmp_path: Path, raw: dict[str, object], rules: dict[str, object]) -> Path:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    config = tmp_path / "alerts.yaml"
    config.write_text(yaml.safe_dump(raw))
    return config


def _run_once(config: Path, bootstrap: str, log_topic: str, started_at: int) -> None:
    """Start the runner, wait for its start record (the ``started_at``-th of the log), SIGTERM
    it: exit 0."""
    cmd = [sys.executable, "-m", "earwitness.cli", "alerts", "--config", str(config)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ))  # the secret: the test sets it
    try:
        _wait_for_topic(bootstrap, log_topic, proc)
        started = consume(bootstrap, log_topic, count=started_at, timeout_s=120)
        assert AuditRecord.from_json(started[-1].value()).action is AuditAction.START
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def _wait_for_topic(bootstrap: str, topic: str, proc: subprocess.Popen[bytes]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 120
    while topic not in admin.list_topics(timeout=30).topics:
        assert proc.poll() is None, f"the runner exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{topic} not created in 120 s"
        time.sleep(0.3)


def _log(bootstrap: str, topic: str, count: int) -> list[AuditRecord]:
    messages = consume(bootstrap, topic, count=count, timeout_s=60)
    assert all(m.key() == messages[0].key() for m in messages)
    return [AuditRecord.from_json(m.value()) for m in messages]


def test_starts_stops_and_config_changes_are_audited(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARWITNESS_ALERTS_RECEIVERS__OPS__SECRET", SECRET)
    audit = {"log_topic": unique_name("audit"), "state_topic": unique_name("audit-state")}
    hook = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}  # secret from the environment
    raw = settings(kafka_bootstrap, topics, {"ops": hook}, audit=audit)
    config = _write(tmp_path, raw, RULES)
    first_hash = settings_hash(load_settings(AlertsSettings, config))
    first_rules = hashlib.sha256((tmp_path / "rules.yaml").read_bytes()).hexdigest()
    _run_once(config, kafka_bootstrap, audit["log_topic"], 1)

    start, stop = _log(kafka_bootstrap, audit["log_topic"], 2)
    assert (start.action, stop.action, stop.exit_code) == ("start", "stop", 0)
    assert (start.service, start.instance) == ("alerts", raw["kafka"]["transactional_id"])
    assert (start.config_hash, start.rules_hash) == (first_hash, first_rules)
    assert (start.version, start.pid, start.model) == (__version__, stop.pid, None)
    assert start.time_ns < stop.time_ns

    # same settings, same rules: no config_changed
    _run_once(config, kafka_bootstrap, audit["log_topic"], 3)
    assert [r.action for r in _log(kafka_bootstrap, audit["log_topic"], 4)] == [
        "start", "stop", "start", "stop",
    ]  # fmt: skip

    # a new rule and another setting: config_changed names what it ran with before
    rules = {"rules": [*RULES["rules"], {**RULES["rules"][0], "id": "door"}]}
    config = _write(tmp_path, {**raw, "tick_interval_s": 2.0}, rules)
    _run_once(config, kafka_bootstrap, audit["log_topic"], 6)
    records = _log(kafka_bootstrap, audit["log_topic"], 7)
    changed = records[4]
    assert [r.action for r in records[4:]] == ["config_changed", "start", "stop"]
    assert (changed.previous_config_hash, changed.previous_rules_hash) == (first_hash, first_rules)
    assert changed.config_hash == settings_hash(load_settings(AlertsSettings, config))
    assert changed.config_hash != first_hash and changed.rules_hash != first_rules

    # the compacted topic: the instance's latest record; no record holds the secret
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert cleanup_policy(admin, audit["state_topic"]) == "compact"
    state = list(read_to_end({"bootstrap.servers": kafka_bootstrap}, audit["state_topic"]))
    assert {key for _, key, _ in state} == {f"alerts/{raw['kafka']['transactional_id']}".encode()}
    assert AuditRecord.from_json(state[-1][2] or b"") == records[-1]
    assert not any(SECRET.encode() in (value or b"") for _, _, value in state)
