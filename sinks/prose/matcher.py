"""The prose matcher: every rule of a rule set against one caption, in one pass.

::

    caption ─▶ normalise ─▶ PhraseIndex.scan (every phrase of every rule, and the senses)
                                │ no target found: done (most captions)
                                ▼
               sentences + quotes ─▶ Scope per sentence with a hit (cues, terminators)
                                ▼
               per hit: sense? negated? excluded in its clause? speech? media? confident?
                                ▼
               per rule: fired = an ``any`` hit counts (if it has any) and every ``all`` does

Each hit becomes a :class:`Finding` with the reason it was rejected, or none when it counts;
the counted ones become the rule's :class:`~sinks.prose.evidence.Evidence`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from sinks.prose import cues as table
from sinks.prose.context import Assessment, Scope
from sinks.prose.evidence import EVIDENCE_MAX_ITEMS, Evidence, Why, clip
from sinks.prose.phrases import PhraseIndex, Span
from sinks.prose.sentences import Sentences, normalise, split
from sinks.rules import Match, Reported, Rule, Source, Speech


class Role(IntEnum):
    ANY = 0
    ALL = 1
    NONE = 2
    SENSE = 3


@dataclass(frozen=True, slots=True)
class _Entry:
    rule: int
    role: Role
    phrase: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One hit of one rule's phrase, and what was decided about it."""

    entry: int
    role: Role
    phrase: str
    sentence: str
    assessment: Assessment
    rejected: str | None
    """Why it does not count ("negated by 'no'"), or None when it does."""

    @property
    def why(self) -> Why:
        a = self.assessment
        if a.media:
            return Why.MEDIA
        if a.quoted or a.reported:
            return Why.SPEECH
        if a.performed and a.hedge == a.performed:
            return Why.PERFORMED
        return Why.HEDGED if a.confidence < 1.0 else Why.AFFIRMED

    def evidence(self) -> Evidence:
        a = self.assessment
        return Evidence(
            phrase=self.phrase,
            sentence=self.sentence,
            confidence=a.confidence,
            why=self.why,
            cues=a.cues(),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """One rule's verdict on one caption."""

    rule_id: str
    fired: bool
    findings: tuple[Finding, ...] = ()

    @property
    def counted(self) -> list[Finding]:
        return [f for f in self.findings if f.rejected is None]

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        """The counted hits, most confident first (at most three)."""
        ranked = sorted(self.counted, key=lambda f: -f.assessment.confidence)
        return tuple(f.evidence() for f in ranked[:EVIDENCE_MAX_ITEMS]) if self.fired else ()

    @property
    def matched(self) -> tuple[str, ...]:
        """The counted phrases, lower-cased, each once."""
        return tuple(dict.fromkeys(f.phrase.lower() for f in self.counted)) if self.fired else ()


@dataclass
class _Caption:
    """One caption while it is judged: its text and what was worked out about it so far."""

    original: str
    text: str
    spans: list[Span]
    sentences: Sentences
    scopes: dict[int, Scope] = field(default_factory=dict)
    assessed: dict[tuple[int, int], Assessment] = field(default_factory=dict)

    def scope(self, position: int) -> tuple[int, Scope]:
        index = self.sentences.index_of(position)
        if index not in self.scopes:
            self.scopes[index] = Scope(self.text, *self.sentences.spans[index], self.sentences)
        return index, self.scopes[index]

    def assess(self, span: Span) -> Assessment:
        key = (span.start, span.end)
        if key not in self.assessed:
            self.assessed[key] = self.scope(span.start)[1].assess(span.start, span.end)
        return self.assessed[key]

    def sentence(self, index: int) -> str:
        start, end = self.sentences.spans[index]
        return clip(self.original[start:end])


class CompiledRules:
    """The phrases of every rule (and the sense table) in one :class:`PhraseIndex`."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._matches = [_match_of(rule) for rule in self.rules]
        self._entries: list[_Entry] = []
        self._index = PhraseIndex()
        for number, match in enumerate(self._matches):
            for role, phrases in (
                (Role.ANY, match.any),
                (Role.ALL, match.all),
                (Role.NONE, match.none),
            ):
                for phrase in phrases:
                    self._add(phrase, number, role)
            for pattern in match.regex:
                self._index.add_regex(re.compile(pattern, re.IGNORECASE), len(self._entries))
                self._entries.append(_Entry(number, Role.ANY, pattern))
        for sense in table.SENSES.split(";"):
            self._add(sense.strip(), -1, Role.SENSE)
        self._all_keys = [
            [k for k, e in enumerate(self._entries) if e.rule == n and e.role is Role.ALL]
            for n in range(len(self.rules))
        ]

    def _add(self, phrase: str, rule: int, role: Role) -> None:
        self._index.add(phrase, len(self._entries))
        self._entries.append(_Entry(rule, role, phrase))

    def decide(self, caption: str, rules: Collection[int] | None = None) -> list[Decision]:
        """Decisions of the rules numbered ``rules`` (all when None), in rule order."""
        wanted = range(len(self.rules)) if rules is None else sorted(rules)
        text = normalise(caption)
        spans = self._index.scan(text)
        targets = [s for s in spans if self._is_target(s, wanted)]
        if not targets:
            return [Decision(self.rules[n].id, False) for n in wanted]
        doc = _Caption(caption, text, spans, split(caption))
        findings: dict[int, list[Finding]] = {n: [] for n in wanted}
        for span in targets:
            entry = self._entries[span.key]
            findings[entry.rule].append(self._judge(doc, span, entry))
        return [self._verdict(n, findings[n]) for n in wanted]

    def _is_target(self, span: Span, wanted: Collection[int]) -> bool:
        entry = self._entries[span.key]
        return entry.role in (Role.ANY, Role.ALL) and entry.rule in wanted

    def _judge(self, doc: _Caption, span: Span, entry: _Entry) -> Finding:
        match = self._matches[entry.rule]
        assessment = doc.assess(span)
        index, scope = doc.scope(span.start)
        rejected = (
            self._sense(doc, span)
            or (
                f"negated by {assessment.negated!r}"
                if assessment.negated and match.negation
                else None
            )
            or self._excluded(doc, span, entry.rule, scope)
            or _policy(match, assessment)
        )
        return Finding(
            span.key,
            entry.role,
            doc.original[span.start : span.end],
            doc.sentence(index),
            assessment,
            rejected,
        )

    def _sense(self, doc: _Caption, span: Span) -> str | None:
        for other in doc.spans:
            if self._entries[other.key].role is not Role.SENSE:
                continue
            inside = span.start <= other.start and other.end <= span.end
            inside = inside and (other.start, other.end) != (span.start, span.end)
            if other.start < span.end and span.start < other.end and not inside:
                return f"another sense: {doc.original[other.start : other.end]!r}"
        return None

    def _excluded(self, doc: _Caption, span: Span, rule: int, scope: Scope) -> str | None:
        for other in doc.spans:
            entry = self._entries[other.key]
            if entry.role is not Role.NONE or entry.rule != rule:
                continue
            if doc.sentences.index_of(other.start) != doc.sentences.index_of(span.start):
                continue
            if doc.assess(other).negated is None and scope.same_clause(
                (span.start, span.end), (other.start, other.end)
            ):
                return f"excluded by {doc.original[other.start : other.end]!r}"
        return None

    def _verdict(self, number: int, findings: list[Finding]) -> Decision:
        match = self._matches[number]
        counted = {f.entry for f in findings if f.rejected is None}
        roles = {self._entries[key].role for key in counted}
        fired = (not (match.any or match.regex) or Role.ANY in roles) and all(
            key in counted for key in self._all_keys[number]
        )
        return Decision(self.rules[number].id, fired, tuple(findings))


def _match_of(rule: Rule) -> Match:
    if rule.match is None:
        raise ValueError(f"rule {rule.id!r} has no `match`: it cannot be matched to captions")
    return rule.match


def _policy(match: Match, a: Assessment) -> str | None:
    """The rule's own choices: speech, reported speech, source, confidence."""
    speech = a.quoted or (a.reported is not None and match.reported is Reported.INCLUDE)
    checks = (
        (
            a.reported is not None and match.reported is Reported.EXCLUDE,
            f"reported speech ({a.reported!r})",
        ),
        (a.quoted and match.speech is Speech.EXCLUDE, "quoted speech"),
        (not speech and match.speech is Speech.ONLY, "not speech"),
        (a.media is not None and match.source is Source.LIVE, f"media ({a.media!r})"),
        (a.media is None and match.source is Source.MEDIA, "not media"),
        (
            a.confidence < match.min_confidence,
            f"confidence {a.confidence:.1f} < {match.min_confidence:.1f} ({a.hedge!r})",
        ),
    )
    return next((reason for failed, reason in checks if failed), None)
