"""A caption as sentences and quotations: the units every other decision is scoped to.

::

    He shouts, "Get down! Get down!" and runs. A gunshot rings out.
               ^^^^^^^^^^^^^^^^^^^^^ quote: speech, one unit; its "!" ends no sentence
    ^──────────── sentence 1 ──────────────────^ ^── sentence 2 ────^

* **Quotes**: ``"…"``, ``“…”``, ``«…»``, ``„…“``, ``「…」``, ``『…』``. A quote left open ends at
  its paragraph's end. Single quotes are left alone: the same character is an apostrophe.
* **Sentences** end at ``. ! ? …`` (and their CJK forms) outside quotes when whitespace and a
  capital letter, digit or quote follow (or the text ends), and at every line break. A quote
  whose last character is such a mark ends its sentence on the same terms. ``Mr.``, ``Dr.``,
  ``approx.``, ``e.g.`` and other abbreviations end none.

Everything here works on the normalised text (:func:`normalise`: lower case, straight
apostrophes), which keeps the original's offsets, so evidence can quote the original caption.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_QUOTE_CHAR = re.compile(r"[\"“”«»„「」『』]|\n\s*\n")
_CLOSERS = {'"': '"', "“": "”", "«": "»", "„": "“”", "「": "」", "『": "』"}
_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]+")
_LINE_BREAK = re.compile(r"\s*\n\s*")
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "mt", "vs", "etc", "e.g", "i.e", "approx", "ca", "jr", "sr"}
    | {"prof", "no", "nos", "fig", "cf", "est", "dept"}
)
_NEXT_STARTS = re.compile(r"\s+[\"“«„「『(\[]?[A-Z0-9\u00c0-\u024f\u3000-\u9fff]")


def normalise(text: str) -> str:
    """Lower case with straight apostrophes; always the same length as ``text``."""
    lowered = text.translate(_APOSTROPHES).lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text.translate(_APOSTROPHES))


@dataclass(frozen=True, slots=True)
class Sentences:
    """Sentence and quote spans of one text, both as sorted ``(start, end)`` offsets."""

    spans: tuple[tuple[int, int], ...]
    quotes: tuple[tuple[int, int], ...]
    starts: tuple[int, ...]
    quote_starts: tuple[int, ...]

    def index_of(self, position: int) -> int:
        """The sentence holding ``position``."""
        return max(0, bisect.bisect_right(self.starts, position) - 1)

    def quote_of(self, start: int, end: int) -> int:
        """Index of the quote that holds ``[start, end)`` (its marks excluded), else -1."""
        i = bisect.bisect_right(self.quote_starts, start) - 1
        if i >= 0 and self.quotes[i][0] <= start and end <= self.quotes[i][1]:
            return i
        return -1


def split(text: str) -> Sentences:
    """Sentences and quotes of ``text``: the original, not the normalised, text (capitals
    mark where sentences start; the offsets are the same)."""
    quotes = find_quotes(text)
    spans = _sentences(text, quotes)
    return Sentences(spans, tuple(quotes), tuple(s for s, _ in spans), tuple(s for s, _ in quotes))


def find_quotes(text: str) -> list[tuple[int, int]]:
    """Quoted spans, the quote marks excluded."""
    quotes: list[tuple[int, int]] = []
    open_at, closers = -1, ""
    for mark in _QUOTE_CHAR.finditer(text):
        char = mark.group()
        if open_at >= 0 and (char in closers or char[0] == "\n"):
            quotes.append((open_at, mark.start()))
            open_at = -1
        elif open_at < 0 and char in _CLOSERS:
            open_at, closers = mark.end(), _CLOSERS[char]
    if open_at >= 0:
        quotes.append((open_at, len(text)))
    return quotes


def _sentences(text: str, quotes: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    ends = sorted(_ends(text, quotes) | {m.start() for m in _LINE_BREAK.finditer(text)})
    spans: list[tuple[int, int]] = []
    start = 0
    for end in [*ends, len(text)]:
        start = _skip_space(text, start)
        if end > start:
            spans.append((start, end))
        start = max(start, end)
    return tuple(spans) or ((0, len(text)),)


def _ends(text: str, quotes: list[tuple[int, int]]) -> set[int]:
    """Offsets just past each sentence-ending mark (and its closing quote)."""
    ends: set[int] = set()
    quote_ends = {end: end + 1 for _, end in quotes if end < len(text)}
    starts = [start for start, _ in quotes]
    for mark in _END.finditer(text):
        at = mark.end()
        inside = _inside(quotes, starts, mark.start())
        if inside and at in quote_ends:
            at = quote_ends[at]
        elif inside:
            continue
        if at < len(text) and not _NEXT_STARTS.match(text, at):
            continue
        if mark.group() == "." and _abbreviation(text, mark.start()):
            continue
        ends.add(at)
    return ends


def _inside(quotes: list[tuple[int, int]], starts: list[int], position: int) -> bool:
    i = bisect.bisect_right(starts, position) - 1
    return i >= 0 and position < quotes[i][1]


def _abbreviation(text: str, dot: int) -> bool:
    word = re.search(r"[\w.]+$", text[max(0, dot - 8) : dot])
    return word is not None and word.group().lower() in _ABBREVIATIONS


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position
