"""``earwitness alerts explain --caption TEXT``: which rules match a caption, and why.

For every caption rule (those applying to ``--stream`` when it is given): whether it fires,
and each phrase it found with its sentence, its confidence, and what decided — the negation,
hedge, quoted or reported speech, media attribution, exclusion or other sense that ruled it
out, or the cues that applied when it counts. ``--json`` prints one object per rule instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TextIO

import orjson

from earwitness.errors import ConfigError
from sinks.prose.matcher import Decision, Finding
from sinks.rules import RuleSet, load_rules

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        rules = _rules(args.rules, args.config)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    caption = sys.stdin.read() if args.caption == "-" else args.caption
    decisions = explain(rules, caption, args.stream)
    if args.json:
        out.writelines(orjson.dumps(_record(d)).decode() + "\n" for d in decisions)
    else:
        out.write(report(decisions, args.stream))
    return 0


def explain(rules: RuleSet, caption: str, stream_id: str | None) -> list[Decision]:
    """Decisions of the rules for ``stream_id`` (every caption rule when None), fired first."""
    if stream_id is None:
        decisions = list(rules.compiled.decide(caption))
    else:
        decisions = list(rules.decide(caption, stream_id).values())
    return sorted(decisions, key=lambda d: (not d.fired, not d.findings))


def report(decisions: list[Decision], stream_id: str | None) -> str:
    scope = f"rules for stream {stream_id!r}" if stream_id else "every caption rule (no --stream)"
    lines = [f"{scope}: {sum(d.fired for d in decisions)} of {len(decisions)} fire"]
    silent = [d.rule_id for d in decisions if not d.findings]
    for decision in decisions:
        if decision.findings:
            lines.append("")
            lines.append(f"{decision.rule_id}: {'FIRES' if decision.fired else 'does not fire'}")
            lines.extend(_finding(f) for f in decision.findings)
    if silent:
        lines.append("")
        lines.append("no phrase found: " + ", ".join(silent))
    return "\n".join(lines) + "\n"


def _finding(finding: Finding) -> str:
    a = finding.assessment
    if finding.rejected is None:
        verdict = f"counts: {finding.why}, confidence {a.confidence:.1f}"
    else:
        verdict = f"ruled out: {finding.rejected}"
    cues = f" [{'; '.join(a.cues())}]" if a.cues() else ""
    role = finding.role.name.lower()
    return f"  {finding.phrase!r} ({role}) {verdict}{cues}\n    in: {finding.sentence}"


def _record(decision: Decision) -> dict[str, object]:
    return {
        "rule": decision.rule_id,
        "fired": decision.fired,
        "findings": [
            {
                "phrase": f.phrase,
                "role": f.role.name.lower(),
                "sentence": f.sentence,
                "confidence": f.assessment.confidence,
                "why": str(f.why),
                "counts": f.rejected is None,
                "ruled_out": f.rejected,
                "cues": list(f.assessment.cues()),
            }
            for f in decision.findings
        ],
    }


def _rules(rules_path: Path | None, config: Path | None) -> RuleSet:
    if rules_path is not None:
        return load_rules(rules_path)
    if config is None:
        raise ConfigError("give --rules FILE or --config FILE")
    from earwitness.config import load_settings
    from sinks.config import AlertsSettings

    return load_rules(load_settings(AlertsSettings, config).rules_path)
