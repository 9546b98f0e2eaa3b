"""Alert rules: a YAML file of rules, validated at start-up, matched against caption text.

A rule fires on a caption when, ignoring negated mentions (see :mod:`sinks.text`):

* at least one ``any`` phrase or ``regex`` pattern is affirmed (when either list is given),
* every ``all`` phrase is affirmed, and
* no ``none`` phrase (exclusion) is affirmed.

Matching is case-insensitive; phrases match whole words with a plural/verb ending allowed on
the last word. The rule applies only to streams whose id matches one of its ``streams`` globs.
An invalid rule raises :class:`~sinks.errors.RulesError` naming the rule id and the field.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sinks import text
from sinks.errors import RulesError

RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class Severity(StrEnum):
    """How urgent a rule's alerts are; receivers map it to their own scale."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


Phrase = Annotated[str, Field(min_length=1, max_length=200)]


class Match(BaseModel):
    """What a caption must (and must not) say for the rule to match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    any: tuple[Phrase, ...] = Field(default=(), description="At least one of these phrases.")
    all: tuple[Phrase, ...] = Field(default=(), description="Every one of these phrases.")
    regex: tuple[str, ...] = Field(
        default=(), description="Python regexes (case-insensitive); count like `any` phrases."
    )
    none: tuple[Phrase, ...] = Field(default=(), description="Exclusions: no match if affirmed.")
    negation: bool = Field(
        default=True, description="Ignore negated mentions ('no gunshots are heard')."
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"regex[{index}] {pattern!r} does not compile: {exc}") from exc
        return patterns

    @model_validator(mode="after")
    def _has_positive_term(self) -> Match:
        if not (self.any or self.all or self.regex):
            raise ValueError("needs at least one of `any`, `all` or `regex`")
        return self


class Rule(BaseModel):
    """One alert rule, as written in the rules file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=RULE_ID_PATTERN, description="Stable id; part of incident ids.")
    description: str = Field(default="", max_length=1000, description="Shown in alerts.")
    severity: Severity = Severity.WARNING
    streams: tuple[str, ...] = Field(
        default=("*",), min_length=1, description="Globs on stream id (fnmatch, case-sensitive)."
    )
    match: Match
    min_windows: int = Field(
        default=1, ge=1, le=100, description="Matching windows needed before the incident fires."
    )
    resolve_after_s: float = Field(
        default=30.0,
        ge=0.0,
        le=86_400.0,
        description="Seconds of non-matching audio (stream time) after which it resolves.",
    )
    receivers: tuple[str, ...] | None = Field(
        default=None, description="Receiver names to notify; null means every receiver."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on alerts.")

    def applies_to(self, stream_id: str) -> bool:
        return any(fnmatch.fnmatchcase(stream_id, glob) for glob in self.streams)

    @cached_property
    def matcher(self) -> Matcher:
        return Matcher.build(self.match)


@dataclass(frozen=True, slots=True)
class Matcher:
    """Compiled patterns of one rule's ``match``."""

    any: tuple[re.Pattern[str], ...]
    all: tuple[re.Pattern[str], ...]
    none: tuple[re.Pattern[str], ...]
    negation: bool

    @classmethod
    def build(cls, match: Match) -> Matcher:
        regexes = tuple(re.compile(p, re.IGNORECASE) for p in match.regex)
        return cls(
            any=tuple(text.phrase_pattern(p) for p in match.any) + regexes,
            all=tuple(text.phrase_pattern(p) for p in match.all),
            none=tuple(text.phrase_pattern(p) for p in match.none),
            negation=match.negation,
        )

    def evaluate(self, caption: str) -> tuple[str, ...] | None:
        """The affirmed hits when the caption matches, else None."""
        normalised = text.normalise(caption)
        hits = [h for p in self.any if (h := self._hit(p, normalised)) is not None]
        if self.any and not hits:
            return None
        for pattern in self.all:
            hit = self._hit(pattern, normalised)
            if hit is None:
                return None
            hits.append(hit)
        if any(self._hit(p, normalised) is not None for p in self.none):
            return None
        return tuple(dict.fromkeys(hits))

    def _hit(self, pattern: re.Pattern[str], normalised: str) -> str | None:
        if not self.negation:
            found = pattern.search(normalised)
            return found.group(0) if found else None
        return text.affirmed(pattern, normalised)


class RuleSet:
    """The rules of one rules file, in file order, with unique ids."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = tuple(rules)
        self.by_id = {rule.id: rule for rule in rules}

    def __len__(self) -> int:
        return len(self.rules)

    def for_stream(self, stream_id: str) -> list[Rule]:
        return [rule for rule in self.rules if rule.applies_to(stream_id)]

    def check_receivers(self, names: set[str]) -> None:
        """Fail when a rule routes to a receiver that is not configured."""
        for rule in self.rules:
            unknown = sorted(set(rule.receivers or ()) - names)
            if unknown:
                raise RulesError(f"rule {rule.id!r}: field 'receivers': unknown {unknown}")


def load_rules(path: Path) -> RuleSet:
    """Read and validate a rules file (``rules: [...]`` at the top level)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise RulesError(f"cannot parse rules file {path}: {exc}") from exc
    return parse_rules(data, source=str(path))


def parse_rules(data: Any, source: str = "<rules>") -> RuleSet:
    """Validate the parsed YAML document of a rules file."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RulesError(f"{source}: expected a mapping with a list under 'rules'")
    rules = [_parse_rule(raw, index, source) for index, raw in enumerate(data["rules"])]
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise RulesError(f"{source}: rule {rule.id!r}: field 'id': duplicate rule id")
        seen.add(rule.id)
    return RuleSet(rules)


def _parse_rule(raw: Any, index: int, source: str) -> Rule:
    rule_id = raw.get("id") if isinstance(raw, dict) else None
    name = f"rule {rule_id!r}" if isinstance(rule_id, str) else f"rule #{index + 1} (no id)"
    try:
        return Rule.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise RulesError(f"{source}: {name}: {problems}") from exc


def _describe(error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "(rule)"
    return f"field {field!r}: {error['msg']}"
