"""The labelled corpus and ``earwitness alerts eval``: the shipped rules must stay accurate.

CI gates on the whole corpus (every ``*.jsonl`` under tests/sinks/corpus). The thresholds were
set just under what the shipped rules measured there (precision 0.984, recall 0.995, see
docs/alerts.md); a change that costs more than that fails here.
"""

from __future__ import annotations

import argparse
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from sinks import cli, evaluate
from sinks.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "sinks" / "corpus"
RULES = ROOT / "examples" / "rules.yaml"
MIN_PRECISION = 0.97
MIN_RECALL = 0.98


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def _eval(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = evaluate.run(_parse(["eval", *argv]), out)
    return code, out.getvalue()


def test_the_corpus_has_the_promised_size_and_labels_only_shipped_rules() -> None:
    examples = evaluate.load_corpus(CORPUS)
    rules = load_rules(RULES)
    assert len(examples) >= 150
    for name in ("heldout.jsonl", "heldout-2.jsonl"):
        assert len(evaluate.load_corpus(CORPUS / name)) >= 50
    labels = Counter(label for ex in examples for label in ex.expect)
    assert set(labels) <= set(rules.by_id)
    assert min(labels[rule_id] for rule_id in rules.by_id) >= 8, labels
    for ex in examples:
        applying = {rule.id for rule in rules.for_stream(ex.stream)}
        assert ex.expect <= applying, f"{ex.file}:{ex.line} expects a rule its stream lacks"


def test_the_shipped_rules_meet_the_thresholds_on_the_whole_corpus() -> None:
    code, output = _eval(
        [
            "--rules",
            str(RULES),
            "--corpus",
            str(CORPUS),
            "--min-precision",
            str(MIN_PRECISION),
            "--min-recall",
            str(MIN_RECALL),
        ]
    )
    assert code == 0, output
    assert "total (micro)" in output


def test_json_output_is_one_line_per_caption_in_order_then_the_summary() -> None:
    code, output = _eval(["--rules", str(RULES), "--corpus", str(CORPUS / "dev.jsonl"), "--json"])
    records = [json.loads(line) for line in output.splitlines()]
    *captions, last = records
    assert code == 0
    assert [r["line"] for r in captions] == list(range(1, len(captions) + 1))
    assert {r["file"] for r in captions} == {"dev.jsonl"}
    first = captions[0]
    assert first["fired"] == sorted(first["fired"], key=list(load_rules(RULES).by_id).index)
    assert set(first["evidence"][0]) == {"rule", "phrase", "sentence", "confidence", "why", "cues"}
    assert last["summary"]["captions"] == len(captions)
    assert set(last["summary"]["per_rule"]) == set(load_rules(RULES).by_id)


def _tiny(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {id: bang, match: {any: [bang]}}\n", encoding="utf-8")
    corpus = tmp_path / "corpus.jsonl"
    lines = [
        {"text": "A bang.", "stream": "s", "expect": ["bang"]},
        {"text": "A bang, but a harmless one.", "stream": "s", "expect": []},
        {"text": "A loud pop.", "stream": "s", "expect": ["bang"], "kind": "vocabulary"},
        {"text": "Silence.", "stream": "s", "expect": ["siren"]},
    ]
    corpus.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return rules, corpus


def test_scores_confusions_and_thresholds_on_a_known_corpus(tmp_path: Path) -> None:
    rules, corpus = _tiny(tmp_path)
    code, output = _eval(["--rules", str(rules), "--corpus", str(corpus)])
    assert code == 0  # whatever the scores, without thresholds
    bang_row = next(line for line in output.splitlines() if line.startswith("bang "))
    assert bang_row.split() == ["bang", "1", "1", "1", "0.500", "0.500", "0.500"]
    assert "labels of rules not in the file, left out: siren (1)" in output
    assert "corpus.jsonl:2 s []: extra bang: 'bang' (affirmed)" in output
    assert "corpus.jsonl:3 s [vocabulary]: missed bang: no phrase of the rule" in output
    assert _eval(["--rules", str(rules), "--corpus", str(corpus), "--min-precision", "0.5"])[0] == 0
    assert _eval(["--rules", str(rules), "--corpus", str(corpus), "--min-recall", "0.6"])[0] == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "corpus.jsonl:1: not JSON"),
        ('{"text": "x", "stream": "s"}', "corpus.jsonl:1: 'expect' must be a list"),
        ('{"text": 3, "stream": "s", "expect": []}', "needs 'text' and 'stream' strings"),
    ],
)
def test_a_bad_corpus_line_exits_2_naming_the_line(
    tmp_path: Path, line: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    rules, corpus = _tiny(tmp_path)
    corpus.write_text(line + "\n", encoding="utf-8")
    assert _eval(["--rules", str(rules), "--corpus", str(corpus)])[0] == 2
    assert message in caplog.text
