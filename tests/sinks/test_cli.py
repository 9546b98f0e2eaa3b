"""``earwitness alerts --check``: settings and rules validated, exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sinks import cli
from tests.sinks.sinkutil import Receiver

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


# --- the actions: explain, and the service without --config -------------------------------


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    code = cli.run(parser.parse_args(argv))
    return code, capsys.readouterr().out


def test_alerts_without_config_or_action_exits_2(caplog: pytest.LogCaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args([])) == 2
    assert "--config FILE is required" in caplog.text


def test_explain_names_the_phrase_sentence_and_what_decided(
    capsys: pytest.CaptureFixture[str],
) -> None:
    caption = (
        "The alarm clock beeps at six. Later, the building's fire alarm rings.\n\n"
        "It could be a gunshot or a car backfiring."
    )
    argv = ["explain", "--rules", str(EXAMPLES / "rules.yaml"), "--stream", "cam-1"]
    code, out = _main([*argv, "--caption", caption], capsys)
    assert code == 0
    assert "alarm: FIRES" in out
    assert "'fire alarm' (any) counts: affirmed, confidence 1.0" in out
    assert "in: Later, the building's fire alarm rings." in out
    assert "gunshot: does not fire" in out
    assert "'gunshot' (any) ruled out: excluded by 'backfiring' [hedged: 'could']" in out
    assert "no phrase found: " in out and "profanity" not in out  # channel rules do not apply


def test_explain_json_and_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("rules:\n  - {id: bang, match: {any: [bang]}}\n")
    (tmp_path / "alerts.yaml").write_text("rules_path: rules.yaml\n")
    argv = ["explain", "--config", str(tmp_path / "alerts.yaml"), "--json"]
    code, out = _main([*argv, "--caption", "No bang. Then a bang."], capsys)
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert record["rule"] == "bang" and record["fired"] is True
    assert [(f["phrase"], f["counts"], f["ruled_out"]) for f in record["findings"]] == [
        ("bang", False, "negated by 'no'"),
        ("bang", True, None),
    ]


# --- test-receiver --------------------------------------------------------------------------


def _hook_config(tmp_path: Path, url: str) -> Path:
    secret = "whsec_" + "QUJD" * 8
    (tmp_path / "rules.yaml").write_text("rules:\n  - {id: bang, match: {any: [bang]}}\n")
    config = tmp_path / "alerts.yaml"
    hook = {"type": "webhook", "url": url, "secret": secret, "retry": {"timeout_s": 5}}
    config.write_text(json.dumps({"rules_path": "rules.yaml", "receivers": {"ops": hook}}))
    return config


def test_test_receiver_sends_a_marked_firing_then_resolved(
    http_receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _hook_config(tmp_path, http_receiver.url)
    code, out = _main(["test-receiver", "ops", "--config", str(config)], capsys)
    assert code == 0
    bodies = [r.json()["data"] for r in http_receiver.accepted()]  # type: ignore[index]
    assert [(b["rule_id"], b["state"], b["labels"]) for b in bodies] == [
        ("earwitness-test", "firing", {"test": "true"}),
        ("earwitness-test", "resolved", {"test": "true"}),
    ]
    assert bodies[0]["alert_id"] == bodies[1]["alert_id"]
    assert "test alert" in bodies[0]["description"]
    assert out.count("test alert delivered") == 2
    # a second run is a new incident: receivers that dedupe still show it
    _main(["test-receiver", "ops", "--config", str(config)], capsys)
    assert len({r.json()["data"]["alert_id"] for r in http_receiver.accepted()}) == 2  # type: ignore[index]


def test_test_receiver_reports_a_failure_and_an_unknown_name(
    http_receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    http_receiver.status = 503
    config = _hook_config(tmp_path, http_receiver.url)
    code, out = _main(["test-receiver", "ops", "--config", str(config)], capsys)
    assert (code, out) == (1, "ops: firing test alert failed: http_503 (Service Unavailable)\n")
    code, _ = _main(["test-receiver", "pager", "--config", str(config)], capsys)
    assert code == 2
