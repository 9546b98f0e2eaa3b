"""Negation-aware search in caption prose.

Captions are long prose and name what is *absent* as often as what is present ("no gunshots
are heard", "there is no music", "without any alarm"). A hit counts only when it is
**affirmed**: no negation cue governs it inside its clause.

Scope, NegEx-style::

    "A gunshot rings out, then no further sound is heard."
       ^^^^^^^ hit        ^^^^ terminator: a new clause starts; the cue "no" comes after
                               the hit, so it governs "further sound", not "gunshot"

    "There is no speech, music or alarm; a dog barks."
              ^^ cue ──────────────────▶ ^ sentence ends: scope stops here
                                ^^^^^ hit inside the cue's scope → negated

* A **pre-cue** (``no``, ``not``, ``without``, ``no sign of``, ``absence of``, ``n't``…)
  negates every hit after it up to the end of its clause.
* A **post-cue** right after the hit (``… is absent``, ``… is not heard``, ``… cannot be
  heard``) negates it too.
* A clause ends at ``. ! ? ; :``, a newline, a contrastive or sequencing word (``but``,
  ``however``, ``then``, ``followed by``, ``while``…), or a comma/``and`` followed by an
  article (", a loud bang" starts a new noun phrase; "no speech, music or alarms" is a list).

It is a heuristic, tuned for captioner prose; ``tests/sinks/test_rules.py`` holds the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

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
