"""The ConText engine over one sentence: which cues govern a hit, and what the hit becomes.

A cue governs a hit when, inside the sentence and on the same side of any quotation mark
(``performed``, ``media`` and ``live`` cues reach into quotes: they say how it was said),

* it lies in its direction (``forward``: the hit follows it; ``backward``: precedes it),
* no terminator of its category stands between them, and
* at most ``max_words`` words stand between them (when the cue sets a cap),

and it is not cancelled by a ``pseudo`` cue overlapping it, nor part of the hit itself ("no
audible content" is a target; its "no" negates nothing) — except a negation between the hit's
words, which a ``*`` gap let in ("the alarm fails to sound")::

    There is no speech, only the crack of a gunshot.
             ^^ negated ──▶ ^^^^ terminator: scope ends   ^^^^^^^ affirmed
    It could be a gunshot or a car backfiring.
       ^^^^^ hedged (0.4) ──────▶ ^^^^^^^ confidence 0.4
    There is no mistaking the sound of breaking glass.
             ^^^^^^^^^^^^ pseudo: "no" is no cue here       ^^^^^^^^^^^^^^ affirmed

The cues live in :mod:`sinks.prose.cues`; nothing here knows a word of English.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sinks.prose import cues as table
from sinks.prose.cues import Category, Cue, Direction
from sinks.prose.phrases import PhraseIndex
from sinks.prose.sentences import Sentences

_WORD = re.compile(r"\w+")
_ACROSS_QUOTES = frozenset({Category.PERFORMED, Category.MEDIA, Category.LIVE})
"""Cues about how something is said reach into the quote ("she jokes, 'I'm in tears'")."""


def _build_index() -> PhraseIndex:
    index = PhraseIndex()
    for key, cue in enumerate(table.CUES):
        if cue.regex:
            index.add_regex(re.compile(cue.phrase), key)
        else:
            index.add(cue.phrase, key)
    return index


_INDEX = _build_index()


@dataclass(frozen=True, slots=True)
class CueHit:
    cue: Cue
    start: int
    end: int
    quote: int
    text: str


@dataclass(frozen=True, slots=True)
class Assessment:
    """What the cues make of one hit. Strings are the cue words that decided."""

    negated: str | None = None
    confidence: float = 1.0
    hedge: str | None = None
    performed: str | None = None
    reported: str | None = None
    media: str | None = None
    """Set only when no ``live`` cue governs the hit too."""
    live: str | None = None
    quoted: bool = False

    def cues(self) -> tuple[str, ...]:
        """``category: 'cue'`` for every cue that applied (for evidence and ``explain``)."""
        named = [
            ("negated", self.negated),
            (
                "performed" if self.performed and self.hedge == self.performed else "hedged",
                self.hedge,
            ),
            ("reported", self.reported),
            ("media", self.media),
            ("live", self.live),
        ]
        out = [f"{name}: {cue!r}" for name, cue in named if cue is not None]
        if self.performed and self.hedge != self.performed:
            out.append(f"performed: {self.performed!r}")
        return (*out, *(("speech: quoted",) if self.quoted else ()))


class Scope:
    """The cues and terminators of one sentence, found once, asked about each hit in it."""

    def __init__(self, text: str, start: int, end: int, sentences: Sentences) -> None:
        self._sentences = sentences
        found = [
            CueHit(
                table.CUES[s.key],
                s.start,
                s.end,
                sentences.quote_of(s.start, s.end),
                text[s.start : s.end],
            )
            for s in _INDEX.scan(text, start, end)
        ]
        pseudo = [hit for hit in found if hit.cue.category is Category.PSEUDO]
        self._terminators = [
            hit
            for hit in found
            if hit.cue.category is Category.TERMINATE
            and not any(_overlap(hit, p) and Category.TERMINATE in p.cue.targets for p in pseudo)
        ]
        self._cues = [
            hit
            for hit in found
            if hit.cue.category not in (Category.PSEUDO, Category.TERMINATE)
            and not any(_overlap(hit, p) and hit.cue.category in p.cue.targets for p in pseudo)
        ]
        self._text = text

    def assess(self, start: int, end: int) -> Assessment:
        quote = self._sentences.quote_of(start, end)
        fields: dict[str, object] = {"quoted": quote >= 0}
        confidence = 1.0
        for hit in self._cues:
            if hit.quote != quote and hit.cue.category not in _ACROSS_QUOTES:
                continue
            if not self._governs(hit, start, end):
                continue
            category = hit.cue.category
            if category is Category.NEGATED:
                fields.setdefault("negated", hit.text)
            elif category in (Category.HEDGED, Category.PERFORMED):
                if category is Category.PERFORMED:
                    fields.setdefault("performed", hit.text)
                if hit.cue.weight < confidence:
                    confidence, fields["hedge"] = hit.cue.weight, hit.text
            elif category is Category.REPORTED:
                fields.setdefault("reported", hit.text)
            elif category is Category.LIVE:
                fields.setdefault("live", hit.text)
            else:
                fields.setdefault("media", hit.text)
        if "live" in fields:
            fields.pop("media", None)
        return Assessment(confidence=confidence, **fields)  # type: ignore[arg-type]

    def same_clause(self, a: tuple[int, int], b: tuple[int, int]) -> bool:
        """True when no terminator of exclusions stands between spans ``a`` and ``b``."""
        if self._sentences.quote_of(*a) != self._sentences.quote_of(*b):
            return False
        low, high = (a[1], b[0]) if a[1] <= b[0] else (b[1], a[0])
        return not self._terminated(Category.EXCLUDED, low, high)

    def _governs(self, hit: CueHit, start: int, end: int) -> bool:
        if hit.start < end and start < hit.end:
            # inside the hit: only a negation between its words counts ("alarm fails to sound")
            inside = start < hit.start and hit.end < end
            return inside and hit.cue.category is Category.NEGATED
        direction = hit.cue.direction
        if direction is not Direction.BACKWARD and hit.end <= start:
            low, high = hit.end, start
        elif direction is not Direction.FORWARD and end <= hit.start:
            low, high = end, hit.start
        else:
            return False
        limit = hit.cue.max_words
        if limit is not None and len(_WORD.findall(self._text, low, high)) > limit:
            return False
        return not self._terminated(hit.cue.category, low, high)

    def _terminated(self, category: Category, low: int, high: int) -> bool:
        return any(
            low <= t.start and t.end <= high and category in t.cue.targets
            for t in self._terminators
        )


def _overlap(a: CueHit, b: CueHit) -> bool:
    return a.start < b.end and b.start < a.end
