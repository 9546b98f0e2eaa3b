"""Phrases: the syntax rules and cue tables are written in, and the one-pass index that finds them.

Syntax (case-insensitive; whitespace or hyphens separate words in the text)::

    glass shatter           words in this order
    glass|window shatter    ``|``: alternatives for one word
    glass * shatter         ``*``: up to three other words between (no punctuation, no negation)
    kick~ * door            ``~``: this word takes endings too; the last word always does
    slur=                   ``=``: this word exactly, no endings ("slurred" is not a slur)

Endings: ``s``, ``es``, ``ed``, ``d``, ``ing``, a final ``e`` dropped (fire → firing), ``y`` →
``ies``/``ied`` (cry → cries), a doubled consonant (sob → sobbing). Irregular forms are
written as alternatives (``shot|shoot``). A word in a script written without spaces (Chinese,
Japanese, Thai) matches anywhere, without word boundaries.

:class:`PhraseIndex` compiles any number of phrases into one dictionary keyed by every form of
every phrase's first word. :meth:`PhraseIndex.scan` walks the text's words once and tries only
the phrases whose first word is the word at hand, so its cost grows with the caption's length,
not with the number of phrases (the matcher before it ran one regex search per phrase).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

GAP_MAX_WORDS = 3
_WORD = re.compile(r"\w+")
_SLOT_WORD = re.compile(r"^[\w']+[~=]?$")
_SEPARATOR = r"[\s-]+"
_NEGATION_WORDS = r"(?:no|not|never|nothing|without|neither|nor|none)\b"
_GAP = rf"(?:{_SEPARATOR}(?!{_NEGATION_WORDS})[\w'\u2019]+){{0,{GAP_MAX_WORDS}}}?"
_UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_CONSONANT_VOWEL_CONSONANT = re.compile(r"(?:^|[^aeiou])[aeiou][bdgklmnprt]$")


class PhraseError(ValueError):
    """A phrase does not follow the syntax; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Span:
    """One phrase found in the text: ``text[start:end]``; ``key`` is what it was added as."""

    start: int
    end: int
    key: int


def inflections(word: str) -> tuple[str, ...]:
    """``word`` and its plural and verb forms, longest first."""
    forms = {word, word + "s", word + "es", word + "ed", word + "d", word + "ing"}
    if word.endswith("e"):
        forms |= {word[:-1] + "ing", word[:-1] + "ed"}
    if len(word) > 2 and word.endswith("y") and word[-2] not in "aeiou":
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    if len(word) <= 5 and _CONSONANT_VOWEL_CONSONANT.search(word):
        forms |= {word + word[-1] + "ing", word + word[-1] + "ed"}
    return tuple(sorted(forms, key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class _Slot:
    forms: tuple[str, ...]
    gap_before: bool


def parse(phrase: str) -> list[_Slot]:
    """The phrase's word slots; :class:`PhraseError` when it breaks the syntax."""
    if any("|" in token and "-" in token for token in phrase.split()):
        raise PhraseError(f"{phrase!r}: a hyphenated word cannot be an alternative")
    tokens = phrase.lower().replace("\u2019", "'").replace("-", " ").split()
    if not tokens:
        raise PhraseError("empty phrase")
    if tokens[0] == "*" or tokens[-1] == "*":
        raise PhraseError(f"{phrase!r}: '*' must stand between two words")
    slots: list[_Slot] = []
    gap = False
    for index, token in enumerate(tokens):
        if token == "*":
            if gap:
                raise PhraseError(f"{phrase!r}: '* *' (use one '*')")
            gap = True
            continue
        last = index == len(tokens) - 1
        slots.append(_Slot(_forms(phrase, token, inflect=last), gap))
        gap = False
    return slots


def _forms(phrase: str, token: str, *, inflect: bool) -> tuple[str, ...]:
    forms: list[str] = []
    for written in token.split("|"):
        if not written or not _SLOT_WORD.match(written):
            raise PhraseError(f"{phrase!r}: {written!r} is not a word")
        word, mark = (written[:-1], written[-1]) if written[-1] in "~=" else (written, "")
        inflect_this = mark == "~" or (inflect and mark != "=")
        inflectable = word[-1].isalpha() and not _UNSPACED.search(word)
        forms.extend(inflections(word) if inflect_this and inflectable else (word,))
    return tuple(sorted(set(forms), key=len, reverse=True))


def compile_phrase(phrase: str) -> tuple[re.Pattern[str], tuple[str, ...] | None]:
    """The phrase as a regex anchored where it starts, and its first word's forms.

    The forms are None when the phrase cannot be indexed by its first word (it starts in a
    script without spaces, or with a word that is not all letters and digits): such a
    pattern searches the whole text and carries its own left boundary.
    """
    slots = parse(phrase)
    body = ""
    for index, slot in enumerate(slots):
        if index:
            body += (_GAP if slot.gap_before else "") + _SEPARATOR
        body += "(?:" + "|".join(re.escape(form) for form in slot.forms) + ")"
    last_form = slots[-1].forms[0]
    if last_form[-1].isalnum() and not _UNSPACED.search(last_form[-1]):
        body += r"(?!\w)"
    first = slots[0].forms
    if any(_UNSPACED.search(form) or not _WORD.fullmatch(form) for form in first):
        left = "" if _UNSPACED.search(first[0][0]) or not first[0][0].isalnum() else r"(?<!\w)"
        return re.compile(left + body), None
    return re.compile(body), first


class PhraseIndex:
    """Phrases under integer keys, found in one pass over a text (already lower-cased)."""

    def __init__(self) -> None:
        self._by_word: dict[str, list[tuple[int, re.Pattern[str]]]] = {}
        self._unindexed: list[tuple[int, re.Pattern[str]]] = []

    def add(self, phrase: str, key: int) -> None:
        pattern, first_words = compile_phrase(phrase)
        if first_words is None:
            self._unindexed.append((key, pattern))
            return
        for word in first_words:
            self._by_word.setdefault(word, []).append((key, pattern))

    def add_regex(self, pattern: re.Pattern[str], key: int) -> None:
        """A raw regex (a rule's ``regex``): searched on its own, once per scan."""
        self._unindexed.append((key, pattern))

    def scan(self, text: str, start: int = 0, end: int | None = None) -> list[Span]:
        """Every phrase found in ``text[start:end]``, in text order, the longest first where
        several start at one place (phrases may overlap)."""
        stop = len(text) if end is None else end
        found: list[Span] = []
        by_word = self._by_word
        for word in _WORD.finditer(text, start, stop):
            candidates = by_word.get(word.group())
            if candidates is None:
                continue
            at = word.start()
            for key, pattern in candidates:
                hit = pattern.match(text, at, stop)
                if hit is not None:
                    found.append(Span(at, hit.end(), key))
        for key, pattern in self._unindexed:
            found.extend(
                Span(m.start(), m.end(), key) for m in _finditer(pattern, text, start, stop)
            )
        found.sort(key=lambda span: (span.start, -span.end))
        return found


def _finditer(
    pattern: re.Pattern[str], text: str, start: int, stop: int
) -> Iterable[re.Match[str]]:
    return (m for m in pattern.finditer(text, start, stop) if m.end() > m.start())
