"""``earwitness alerts --check``: settings and rules validated, exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sinks import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(config: Path) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(["--config", str(config), "--check"]))


def test_example_config_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    # the example reads secrets from /run/secrets; the environment wins over those files
    monkeypatch.setenv("EARWITNESS_ALERTS_RECEIVERS__OPS__SECRET", "whsec_" + "QUJD" * 8)
    monkeypatch.setenv(
        "EARWITNESS_ALERTS_RECEIVERS__SLACK__URL", "https://hooks.slack.com/services/T/B/X"
    )
    assert _run(EXAMPLES / "alerts.yaml") == 0


def test_bad_rule_exits_2_naming_rule_and_field(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "rules.yaml").write_text("rules:\n  - id: gun\n    match: {any: []}\n")
    (tmp_path / "alerts.yaml").write_text("rules_path: rules.yaml\n")
    assert _run(tmp_path / "alerts.yaml") == 2
    assert "rule 'gun': field 'match'" in caplog.text


def test_unknown_receiver_in_rule_exits_2(tmp_path: Path) -> None:
    rule = "rules:\n  - {id: gun, match: {any: [gunshot]}, receivers: [pager]}\n"
    (tmp_path / "rules.yaml").write_text(rule)
    (tmp_path / "alerts.yaml").write_text("rules_path: rules.yaml\n")
    assert _run(tmp_path / "alerts.yaml") == 2
