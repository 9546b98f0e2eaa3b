"""FROZEN BASELINE: matcher 1 (``sinks/text.py`` and ``sinks.rules.Matcher`` as of c1a3cfd).

Kept only so ``bench/rules.py`` can compare the prose matcher with it in the same run, on the
same corpus: one regex search per phrase, a NegEx-style negation heuristic, exclusions that
veto the whole caption. Do not use it anywhere else; do not "fix" it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

_SENTENCE_END = r"[.!?;:]+(?=\s|$)|\n+"
_CONTRAST = (
    r"but|however|although|though|yet|while|whereas|except|then|until|afterwards?"
    r"|followed\s+by|after\s+which|before|later|suddenly"
)
_NEW_PHRASE = r"(?:,\s*|\s+and\s+|,\s*and\s+)(?:a|an|the|someone|somebody|it|he|she|they)\b"
_TERMINATOR = re.compile(rf"{_SENTENCE_END}|,?\s+(?:{_CONTRAST})\b|{_NEW_PHRASE}")

_PRE_CUE = re.compile(
    r"\b(?:no|not|never|none|nothing|nobody|neither|nor|without|cannot"
    r"|lack(?:s|ing)?|absence|absent|free\s+of|devoid\s+of|rather\s+than|instead\s+of)\b"
    r"|n't\b"
)
_POST_CUE = re.compile(
    r"^(?:\s+\w+){0,2}?\s+(?:"
    r"(?:is|are|was|were|seems?|appears?|can|could|does|do|did|has|have)"
    r"(?:n't|\s+not|\s+no\s+longer|\s+never|\s+absent|\s+missing)"
    r"|cannot|is\s+absent|are\s+absent)\b"
)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


@dataclass(frozen=True, slots=True)
class Hit:
    """One occurrence of a pattern in the normalised text."""

    start: int
    end: int
    text: str
    negated: bool


def normalise(text: str) -> str:
    """Lower-case, straight apostrophes: the form every pattern runs on."""
    return text.translate(_APOSTROPHES).lower()


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A phrase as whole words, any whitespace between them, a plural/verb ending on the last.

    ``"glass shatter"`` finds "Glass  shatters" and "glass shattering", not "glasses hatter".
    """
    words = [re.escape(word) for word in normalise(phrase).split()]
    body = r"\s+".join(words)
    return re.compile(rf"(?<!\w){body}(?:s|es|ed|d|ing)?(?!\w)")


def find(pattern: re.Pattern[str], text: str) -> Iterator[Hit]:
    """Every hit of ``pattern`` in ``text`` (already normalised), each marked negated or not."""
    bounds = _clause_bounds(text)
    for match in pattern.finditer(text):
        if match.end() == match.start():
            continue
        clause_start, clause_end = _clause_of(bounds, match.start(), match.end(), len(text))
        before = text[clause_start : match.start()]
        after = text[match.end() : clause_end]
        negated = _PRE_CUE.search(before) is not None or _POST_CUE.match(after) is not None
        yield Hit(match.start(), match.end(), match.group(0), negated)


def affirmed(pattern: re.Pattern[str], text: str) -> str | None:
    """The first affirmed hit's text, or None when every hit is negated (or there is none)."""
    return next((hit.text for hit in find(pattern, text) if not hit.negated), None)


def _clause_bounds(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _TERMINATOR.finditer(text)]


def _clause_of(bounds: list[tuple[int, int]], start: int, end: int, length: int) -> tuple[int, int]:
    """The clause around [start, end): after the last terminator before it, to the next one."""
    clause_start, clause_end = 0, length
    for bound_start, bound_end in bounds:
        if bound_end <= start:
            clause_start = bound_end
        elif bound_start >= end:
            clause_end = bound_start
            break
    return clause_start, clause_end


class Matcher:
    """One rule of a matcher-1 rules file: ``evaluate`` gives the affirmed hits, or None."""

    def __init__(self, rule: dict[str, object]) -> None:
        match = rule["match"]
        assert isinstance(match, dict)
        self.id = str(rule["id"])
        self.streams = tuple(str(g) for g in rule.get("streams", ["*"]))  # type: ignore[attr-defined]
        regexes = tuple(re.compile(p, re.IGNORECASE) for p in match.get("regex", ()))
        self.any = tuple(phrase_pattern(p) for p in match.get("any", ())) + regexes
        self.all = tuple(phrase_pattern(p) for p in match.get("all", ()))
        self.none = tuple(phrase_pattern(p) for p in match.get("none", ()))
        self.negation = bool(match.get("negation", True))

    def applies_to(self, stream_id: str) -> bool:
        return any(fnmatch.fnmatchcase(stream_id, glob) for glob in self.streams)

    def evaluate(self, caption: str) -> tuple[str, ...] | None:
        normalised = normalise(caption)
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
        return affirmed(pattern, normalised)


def load(path: Path) -> list[Matcher]:
    return [Matcher(rule) for rule in yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]]


def fired(matchers: list[Matcher], caption: str, stream_id: str) -> list[str]:
    return [m.id for m in matchers if m.applies_to(stream_id) and m.evaluate(caption) is not None]
