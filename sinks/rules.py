"""Alert rules: a YAML file of rules, validated at start-up, matched against caption prose.

A rule fires on a caption when (see :mod:`sinks.prose` for how prose is read):

* at least one ``any`` phrase or ``regex`` pattern counts (when either list is given),
* every ``all`` phrase counts, where

a hit *counts* unless it is negated ("no gunshots are heard"), used in another sense
("alarming"), excluded by a ``none`` phrase in its clause, or ruled out by the rule's
``speech``, ``reported``, ``source`` and ``min_confidence`` choices. Phrases use the syntax of
:mod:`sinks.prose.phrases`. The rule applies only to streams whose id matches one of its
``streams`` globs, and to the event kinds in ``events`` (``silence`` windows match a rule
that lists them without any text). An invalid rule raises :class:`~sinks.errors.RulesError`
naming the rule id and the field.
"""

from __future__ import annotations

import fnmatch
import re
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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

if TYPE_CHECKING:
    from sinks.prose.matcher import CompiledRules, Decision

_STREAM_CACHE_MAX = 10_000


class Speech(StrEnum):
    """Hits inside quoted speech ("she screams, 'Help me!'")."""

    INCLUDE = "include"
    EXCLUDE = "exclude"
    ONLY = "only"


class Reported(StrEnum):
    """Hits in someone's account of something ("he says he heard a gunshot last night")."""

    INCLUDE = "include"
    EXCLUDE = "exclude"


class Source(StrEnum):
    """Hits attributed to media playing in the scene ("gunfire from the television")."""

    LIVE = "live"
    MEDIA = "media"
    ANY = "any"


class Trigger(StrEnum):
    """Caption event kinds a rule looks at."""

    CAPTION = "caption"
    SILENCE = "silence"


class Match(BaseModel):
    """What a caption must (and must not) say for the rule to match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    any: tuple[Phrase, ...] = Field(default=(), description="At least one of these phrases.")
    all: tuple[Phrase, ...] = Field(default=(), description="Every one of these phrases.")
    regex: tuple[str, ...] = Field(
        default=(), description="Python regexes (case-insensitive); count like `any` phrases."
    )
    none: tuple[Phrase, ...] = Field(
        default=(), description="Exclusions: a hit in the same clause as one does not count."
    )
    negation: bool = Field(
        default=True, description="Ignore negated mentions ('no gunshots are heard')."
    )
    speech: Speech = Field(
        default=Speech.EXCLUDE, description="Hits in quoted speech: include, exclude, only."
    )
    reported: Reported = Field(
        default=Reported.EXCLUDE, description="Hits in reported speech: include or exclude."
    )
    source: Source = Field(
        default=Source.ANY, description="Hits from media playing in the scene: live, media, any."
    )
    min_confidence: float = Field(
        default=0.6, ge=0.0, le=1.0, description="Hedged hits below this do not count."
    )

    @field_validator("any", "all", "none")
    @classmethod
    def _parses(cls, phrases: tuple[str, ...]) -> tuple[str, ...]:
        from sinks.prose.phrases import PhraseError, parse

        for index, phrase in enumerate(phrases):
            try:
                parse(phrase)
            except PhraseError as exc:
                raise ValueError(f"[{index}] {exc}") from exc
        return phrases

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
    severity: Severity = Field(
        default=Severity.WARNING, description="info, warning or critical; receivers filter on it."
    )
    streams: tuple[str, ...] = Field(
        default=("*",), min_length=1, description="Globs on stream id (fnmatch, case-sensitive)."
    )
    events: tuple[Trigger, ...] = Field(
        default=(Trigger.CAPTION,),
        min_length=1,
        description="Event kinds the rule looks at: caption text, silence windows, or both.",
    )
    match: Match | None = Field(
        default=None, description="What the caption must say; required with `caption` events."
    )
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

    @property
    def on_captions(self) -> bool:
        return Trigger.CAPTION in self.events

    @property
    def on_silence(self) -> bool:
        return Trigger.SILENCE in self.events

    @model_validator(mode="after")
    def _match_for_captions(self) -> Rule:
        if self.on_captions and self.match is None:
            raise ValueError("`match` is required unless `events` is [silence]")
        return self


class RuleSet:
    """The rules of one rules file, in file order, with unique ids."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = tuple(rules)
        self.by_id = {rule.id: rule for rule in rules}
        self._text_rules = [rule for rule in self.rules if rule.on_captions]
        self._streams: dict[str, tuple[list[Rule], list[int]]] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def for_stream(self, stream_id: str) -> list[Rule]:
        return self._applying(stream_id)[0]

    def decide(self, caption: str, stream_id: str) -> dict[str, Decision]:
        """Every caption rule of ``stream_id`` against ``caption``, in one pass, by rule id."""
        decisions = self.compiled.decide(caption, self._applying(stream_id)[1])
        return {decision.rule_id: decision for decision in decisions}

    @cached_property
    def compiled(self) -> CompiledRules:
        """All phrases of the caption rules, compiled once (on first use)."""
        from sinks.prose.matcher import CompiledRules

        return CompiledRules(self._text_rules)

    def _applying(self, stream_id: str) -> tuple[list[Rule], list[int]]:
        """(rules for the stream, numbers of its caption rules in :attr:`compiled`)."""
        cached = self._streams.get(stream_id)
        if cached is None:
            rules = [rule for rule in self.rules if rule.applies_to(stream_id)]
            numbers = [n for n, rule in enumerate(self._text_rules) if rule.applies_to(stream_id)]
            if len(self._streams) >= _STREAM_CACHE_MAX:
                self._streams.clear()
            cached = self._streams[stream_id] = (rules, numbers)
        return cached

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
