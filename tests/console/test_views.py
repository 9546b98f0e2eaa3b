"""What reaches HTML as markup: escaped first, then only <mark> added."""

from __future__ import annotations

import pytest

from console.queries import SNIPPET_CLOSE, SNIPPET_OPEN
from console.views import NS, highlight, marks, parse_utc, tile_state


def test_highlight_marks_phrases_case_insensitively() -> None:
    out = highlight("Glass breaking; more GLASS.", ["glass"])
    assert str(out) == "<mark>Glass</mark> breaking; more <mark>GLASS</mark>."


def test_highlight_escapes_the_caption_and_merges_overlaps() -> None:
    out = highlight('<script>x</script> glass breaking "now"', ["glass", "glass breaking"])
    assert str(out) == ("&lt;script&gt;x&lt;/script&gt; <mark>glass breaking</mark> &#34;now&#34;")


def test_highlight_reads_stored_json_and_ignores_blank_phrases() -> None:
    assert str(highlight("a b", '["b", " "]')) == "a <mark>b</mark>"


def test_marks_turn_snippet_markers_into_mark_only() -> None:
    snippet = f"a <b> {SNIPPET_OPEN}dog{SNIPPET_CLOSE} barks"
    assert str(marks(snippet)) == "a &lt;b&gt; <mark>dog</mark> barks"


@pytest.mark.parametrize(
    ("kind", "age_s", "state"),
    [("caption", 1, "captioning"), ("silence", 1, "silence"), ("shed", 1, "shed"),
     ("error", 1, "error"), ("caption", 61, "stale"), ("", 1, "stale")],
)  # fmt: skip
def test_tile_state(kind: str, age_s: float, state: str) -> None:
    now = 1_800_000_000 * NS
    assert tile_state(kind, now - int(age_s * NS), now, stale_after_s=60) == state


def test_parse_utc() -> None:
    assert parse_utc("2027-01-15T08:00") == 1_800_000_000 * NS
    assert parse_utc("2027-01-15T07:52Z") == 1_800_000_000 * NS - 480 * NS
    assert parse_utc("1800000000000000000") == 1_800_000_000 * NS
    assert parse_utc("yesterday") is None
    assert parse_utc("") is None
