"""``earwitness alerts eval``: score a rules file on a labelled corpus of captions.

The corpus is JSON Lines, one caption a line (``--corpus`` names a file, or a folder whose
``*.jsonl`` files are read in name order)::

    {"text": "The audio clip ...", "stream": "cam-1", "expect": ["gunshot"], "kind": "hedge"}

``stream`` selects the rules that apply (their ``streams`` globs); ``expect`` lists the rule
ids that should fire; other keys are ignored. Each caption is one decision per rule that
applies: fired and expected is a true positive, fired and not expected a false positive,
expected and not fired a false negative. Labels naming rules the file does not have are
left out of the scores (and counted in the output), so an older rules file can be scored on
a newer corpus.

Output: per-rule precision, recall and F1, the micro-averaged total, and the confusion list
(each wrong decision with the sentence or reason that made it). ``--json``: one object a line
per caption, in corpus order (``{"file", "line", "stream", "expect", "fired", "evidence"}``),
then one
``{"summary": …}`` line. Exit status 0 whatever the scores, unless ``--min-precision`` or
``--min-recall`` is given and the total falls below it (1); 2 for a bad rules file or corpus.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import orjson

from earwitness.errors import ConfigError
from sinks.prose.matcher import Decision
from sinks.rules import RuleSet, load_rules

logger = logging.getLogger(__name__)


class CorpusError(ConfigError):
    """The corpus file cannot be read or a line is not a labelled caption."""


@dataclass(frozen=True, slots=True)
class Example:
    file: str
    line: int
    text: str
    stream: str
    expect: frozenset[str]
    kind: str


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p is not None and r is not None and p + r else None

    def add(self, other: Counts) -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn


@dataclass(frozen=True, slots=True)
class Scored:
    example: Example
    decisions: dict[str, Decision]

    @property
    def fired(self) -> list[str]:
        return [rule_id for rule_id, d in self.decisions.items() if d.fired]


@dataclass
class Report:
    rules: list[str]
    scored: list[Scored] = field(default_factory=list)
    per_rule: dict[str, Counts] = field(default_factory=dict)
    unknown_labels: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> Counts:
        total = Counts()
        for counts in self.per_rule.values():
            total.add(counts)
        return total


def load_corpus(path: Path) -> list[Example]:
    """The corpus's captions; :class:`CorpusError` naming the line when one is malformed."""
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise CorpusError(f"no *.jsonl file in {path}")
        return [example for file in files for example in _load_file(file)]
    return _load_file(path)


def _load_file(path: Path) -> list[Example]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CorpusError(f"cannot read corpus {path}: {exc.strerror}") from exc
    return [_example(path, n, line) for n, line in enumerate(lines, 1) if line.strip()]


def _example(path: Path, number: int, line: str) -> Example:
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise CorpusError(f"{path}:{number}: not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise CorpusError(f"{path}:{number}: expected an object")
    text, stream, expect = raw.get("text"), raw.get("stream"), raw.get("expect")
    if not isinstance(text, str) or not isinstance(stream, str) or not stream:
        raise CorpusError(f"{path}:{number}: needs 'text' and 'stream' strings")
    if not isinstance(expect, list) or not all(isinstance(e, str) for e in expect):
        raise CorpusError(f"{path}:{number}: 'expect' must be a list of rule ids")
    return Example(path.name, number, text, stream, frozenset(expect), str(raw.get("kind", "")))


def score(rules: RuleSet, corpus: list[Example]) -> Report:
    """Every caption through the rules; counts per rule over the rules applying to its stream."""
    report = Report([rule.id for rule in rules.rules if rule.on_captions])
    report.per_rule = {rule_id: Counts() for rule_id in report.rules}
    for example in corpus:
        decisions = rules.decide(example.text, example.stream)
        report.scored.append(Scored(example, decisions))
        report.unknown_labels.update(e for e in example.expect if e not in report.per_rule)
        for rule_id in report.rules:
            _count(report.per_rule[rule_id], rule_id in example.expect, decisions.get(rule_id))
    return report


def _count(counts: Counts, expected: bool, decision: Decision | None) -> None:
    fired = decision is not None and decision.fired
    counts.tp += fired and expected
    counts.fp += fired and not expected
    counts.fn += expected and not fired


# --- output ----------------------------------------------------------------------------------


def _figure(value: float | None) -> str:
    return "    -" if value is None else f"{value:.3f}"


def table(report: Report) -> str:
    """Per-rule and total scores as a text table."""
    width = max(len(rule_id) for rule_id in [*report.rules, "total (micro)"])
    lines = [f"{'rule':<{width}}  {'tp':>4} {'fp':>4} {'fn':>4}  precision  recall     f1"]
    rows = [*report.per_rule.items(), ("total (micro)", report.total)]
    for rule_id, c in rows:
        lines.append(
            f"{rule_id:<{width}}  {c.tp:>4} {c.fp:>4} {c.fn:>4}  {_figure(c.precision):>9}"
            f"  {_figure(c.recall):>6}  {_figure(c.f1):>5}"
        )
    return "\n".join(lines)


def confusions(report: Report) -> list[str]:
    """One line per wrong decision: what was missed or extra, and the deciding sentence."""
    out = []
    for scored in report.scored:
        example = scored.example
        for rule_id in report.rules:
            decision = scored.decisions.get(rule_id)
            fired = decision is not None and decision.fired
            expected = rule_id in example.expect
            if fired != expected:
                out.append(_confusion(example, rule_id, decision, fired))
    return out


def _confusion(example: Example, rule_id: str, decision: Decision | None, fired: bool) -> str:
    head = f"{example.file}:{example.line} {example.stream} [{example.kind}]: "
    if fired and decision is not None:
        evidence = decision.evidence[0]
        return (
            f"{head}extra {rule_id}: {evidence.phrase!r} ({evidence.why}) in {evidence.sentence!r}"
        )
    if decision is None:
        return f"{head}missed {rule_id}: the rule does not apply to stream {example.stream!r}"
    if not decision.findings:
        return f"{head}missed {rule_id}: no phrase of the rule in the caption"
    reasons = "; ".join(f"{f.phrase!r} {f.rejected}" for f in decision.findings[:3])
    return f"{head}missed {rule_id}: {reasons}"


def summary(report: Report, rules_path: Path, corpus_path: Path) -> dict[str, object]:
    def figures(c: Counts) -> dict[str, object]:
        return {"tp": c.tp, "fp": c.fp, "fn": c.fn, "precision": c.precision,
                "recall": c.recall, "f1": c.f1}  # fmt: skip

    return {
        "rules": str(rules_path),
        "corpus": str(corpus_path),
        "captions": len(report.scored),
        "per_rule": {rule_id: figures(c) for rule_id, c in report.per_rule.items()},
        "total": figures(report.total),
        "unknown_labels": dict(report.unknown_labels),
    }


def caption_line(scored: Scored) -> bytes:
    evidence = [
        {"rule": rule_id, **e.model_dump(mode="json")}
        for rule_id, d in scored.decisions.items()
        for e in d.evidence
    ]
    record = {
        "file": scored.example.file,
        "line": scored.example.line,
        "stream": scored.example.stream,
        "expect": sorted(scored.example.expect),
        "fired": scored.fired,
        "evidence": evidence,
    }
    return orjson.dumps(record)


# --- the command -----------------------------------------------------------------------------


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        rules = load_rules(args.rules)
        corpus = load_corpus(args.corpus)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    report = score(rules, corpus)
    if args.json:
        for scored in report.scored:
            out.write(caption_line(scored).decode() + "\n")
        out.write(orjson.dumps({"summary": summary(report, args.rules, args.corpus)}).decode())
        out.write("\n")
    else:
        _print(report, args, out)
    return _verdict(report.total, args.min_precision, args.min_recall)


def _print(report: Report, args: argparse.Namespace, out: TextIO) -> None:
    out.write(f"rules {args.rules} · corpus {args.corpus} · {len(report.scored)} captions\n\n")
    out.write(table(report) + "\n")
    if report.unknown_labels:
        left_out = ", ".join(f"{k} ({v})" for k, v in sorted(report.unknown_labels.items()))
        out.write(f"\nlabels of rules not in the file, left out: {left_out}\n")
    wrong = confusions(report)
    out.write(f"\nconfusions ({len(wrong)}):\n")
    out.writelines(f"  {line}\n" for line in wrong)


def _verdict(total: Counts, min_precision: float | None, min_recall: float | None) -> int:
    failed = False
    for name, value, floor in (
        ("precision", total.precision, min_precision),
        ("recall", total.recall, min_recall),
    ):
        if floor is not None and (value or 0.0) < floor:
            logger.error("%s %.3f is below %.3f", name, value or 0.0, floor)
            failed = True
    return 1 if failed else 0
