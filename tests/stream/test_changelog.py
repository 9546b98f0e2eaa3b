"""Changelog cursors (``stream/changelog.py``, ``stream/cursors.py``): no broker, no engine."""

from __future__ import annotations

import pytest

from earwitness.errors import BadInputError
from stream.changelog import (
    DEAD_LETTER_MARK_KEY,
    Restored,
    _apply,
    decode_cursor,
    encode_cursor,
    encode_mark,
)
from stream.cursors import StreamCursors
from windowing.window import Cursor


def cursor(stream: str = "cam-1", index: int = 4, position: object = (1, 1234)) -> Cursor:
    return Cursor(
        stream_id=stream,
        segment_id=1_800_000_000_000_000_000,
        window_index=index,
        final=False,
        seq=300,
        ts_ns=1_800_000_006_000_000_000,
        in_sample=96_000,
        rate_hz=48_000,
        channels=2,
        fmt="s16le",
        position=position,
    )


@pytest.mark.parametrize(
    "original",
    [
        cursor(),
        cursor(position=None),
        cursor(stream="überwachung/kamera 7", index=0),
        Cursor("s", 5, 9, True, 10, 20, 0, 16_000, 1, "f32le", (0, 0)),
    ],
)
def test_encode_decode_round_trip(original: Cursor) -> None:
    value = encode_cursor(original)
    assert isinstance(value, bytes)
    decoded = decode_cursor(value)
    assert decoded == original
    assert isinstance(decoded.position, tuple | type(None)), "positions must compare as tuples"


@pytest.mark.parametrize(
    "value",
    [b"", b"not json", b"[1, 2]", b'{"stream_id": "x"}', b'{"stream_id": "x", "bogus": 1}'],
)
def test_unreadable_records_raise_bad_input(value: bytes) -> None:
    with pytest.raises(BadInputError) as caught:
        decode_cursor(value)
    assert caught.value.reason == "bad_cursor"


def test_replaying_the_changelog_keeps_the_latest_cursor_and_honours_tombstones() -> None:
    restored = Restored()
    _apply(restored, 0, b"a", encode_cursor(cursor("a", 1)))
    _apply(restored, 0, b"b", encode_cursor(cursor("b", 1)))
    _apply(restored, 0, b"a", encode_cursor(cursor("a", 2)))
    _apply(restored, 0, b"b", None)  # tombstone
    _apply(restored, 0, None, encode_cursor(cursor("c", 1)))  # no key: ignored
    _apply(restored, 0, b"a", b"garbage")  # unreadable: skipped, the last good one stays
    assert restored.cursors == {"a": cursor("a", 2)}
    assert restored.dead_lettered_below == {}


def test_dead_letter_marks_are_per_partition_and_never_a_stream() -> None:
    restored = Restored()
    _apply(restored, 1, DEAD_LETTER_MARK_KEY, encode_mark(17))
    _apply(restored, 1, DEAD_LETTER_MARK_KEY, encode_mark(42))
    _apply(restored, 0, DEAD_LETTER_MARK_KEY, encode_mark(5))
    _apply(restored, 0, DEAD_LETTER_MARK_KEY, b"garbage")  # skipped, 5 stays
    _apply(restored, 0, "\ufffddead-letters".encode(), encode_cursor(cursor("x", 1)))
    assert restored.dead_lettered_below == {0: 5, 1: 42}
    assert list(restored.cursors) == ["\ufffddead-letters"], "a UTF-8 lookalike is a stream"
    with pytest.raises(UnicodeDecodeError):
        DEAD_LETTER_MARK_KEY.decode("utf-8")


def test_stream_cursors_mark_published_streams_dirty_until_checkpointed() -> None:
    cursors = StreamCursors()
    cursors.restored({"a": cursor("a", 3)}, {"a": 1})
    assert cursors.partition_of == {"a": 1} and cursors.changed() == []
    cursors.seen("b", 0, 0, 0.0)
    assert cursors.changed() == [], "seen is not published"
    cursors.on_published(cursor("b", 0))
    cursors.on_published(cursor("a", 4))
    assert cursors.changed() == [(cursor("a", 4), 1), (cursor("b", 0), 0)]
    cursors.checkpointed()
    assert cursors.changed() == []
    assert cursors.streams_in([1]) == ["a"]
    cursors.on_published(cursor("a", 5))
    cursors.forget(["a"])
    assert cursors.changed() == [] and cursors.streams_in([1]) == []
