"""Wire format v1: round trips, one table of bad records, and arbitrary bytes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from earwitness.errors import BadInputError
from windowing import Frame, FrameError, FrameLimits, decode_frame, encode_frame, wire

GOOD = [
    ("ew-seq", b"7"),
    ("ew-ts", b"1700000000000000000"),
    ("ew-rate", b"16000"),
    ("ew-ch", b"1"),
    ("ew-fmt", b"s16le"),
]
PCM = bytes(640)  # 20 ms of 16 kHz mono s16


def _with(name: str, value: bytes | None) -> list[tuple[str, bytes | None]]:
    """GOOD with header ``name`` replaced (or added), or removed when ``value`` is ...None."""
    kept: list[tuple[str, bytes | None]] = [(k, v) for k, v in GOOD if k != name]
    return [*kept, (name, value)]


def _without(name: str) -> list[tuple[str, bytes | None]]:
    return [(k, v) for k, v in GOOD if k != name]


def test_round_trip_keeps_every_field() -> None:
    key, value, headers = encode_frame("cam-1", 3, 12345, 48_000, 2, "f32le", bytes(32), eos=True)
    frame = decode_frame(key, value, headers, position=(2, 99))
    assert frame == Frame("cam-1", 3, 12345, 48_000, 2, "f32le", bytes(32), True, (2, 99))
    assert (frame.n_samples, frame.duration_ns) == (4, 83_333)


def test_headers_are_ascii_decimal_for_kcat() -> None:
    _, _, headers = encode_frame("s", 12, 99, 16_000, 1, "s16le", PCM)
    assert dict(headers) == {
        "ew-seq": b"12",
        "ew-ts": b"99",
        "ew-rate": b"16000",
        "ew-ch": b"1",
        "ew-fmt": b"s16le",
    }


@pytest.mark.parametrize(
    ("headers", "extra_ok"),
    [
        (GOOD, "plain"),
        ([*GOOD, ("traceparent", b"00-abc")], "foreign headers are ignored"),
        ([*GOOD, ("ew-v", b"1")], "explicit version 1"),
        ([*GOOD, ("ew-eos", b"0")], "eos 0"),
        ([*GOOD, ("x", None), ("x", b"")], "foreign duplicates are fine"),
    ],
)
def test_accepts_valid_variants(headers: list[tuple[str, bytes | None]], extra_ok: str) -> None:
    frame = decode_frame(b"cam", PCM, headers)
    assert (frame.seq, frame.eos, frame.n_samples) == (7, False, 320), extra_ok


def test_eos_frame_may_be_empty() -> None:
    frame = decode_frame(b"cam", b"", [*GOOD, ("ew-eos", b"1")])
    assert frame.eos and frame.n_samples == 0
    assert decode_frame(b"cam", None, [*GOOD, ("ew-eos", b"1")]).pcm == b""


NAN_F32 = np.array([0.0, np.nan], dtype="<f4").tobytes()
INF_F32 = np.array([np.inf, 0.0], dtype="<f4").tobytes()
F32 = _with("ew-fmt", b"f32le")

BAD = [
    # (key,        value,        headers,                           reason)
    (None, PCM, GOOD, "bad_key"),
    (b"", PCM, GOOD, "bad_key"),
    (b"x" * 257, PCM, GOOD, "bad_key"),
    (b"\xff\xfe", PCM, GOOD, "bad_key"),
    (b"cam", PCM, None, "missing_header"),
    (b"cam", PCM, [], "missing_header"),
    (b"cam", PCM, _without("ew-seq"), "missing_header"),
    (b"cam", PCM, _without("ew-ts"), "missing_header"),
    (b"cam", PCM, _without("ew-rate"), "missing_header"),
    (b"cam", PCM, _without("ew-ch"), "missing_header"),
    (b"cam", PCM, _without("ew-fmt"), "missing_header"),
    (b"cam", PCM, _with("ew-seq", None), "missing_header"),
    (b"cam", PCM, _with("ew-seq", b"-1"), "bad_header"),
    (b"cam", PCM, _with("ew-seq", b" 7"), "bad_header"),
    (b"cam", PCM, _with("ew-seq", b"1_000"), "bad_header"),
    (b"cam", PCM, _with("ew-seq", "7"), "bad_header"),  # type: ignore[arg-type]
    (b"cam", PCM, _with("ew-ts", b"1.5e18"), "bad_header"),
    (b"cam", PCM, _with("ew-seq", b"9223372036854775808"), "bad_header"),  # 2^63: 19 digits
    (b"cam", PCM, _with("ew-ts", b"9999999999999999999"), "bad_header"),
    (b"cam", PCM, _with("ew-ts", b"9" * 20), "bad_header"),
    (b"cam", PCM, _with("ew-ts", "\u0661".encode()), "bad_header"),  # Arabic-Indic one
    (b"cam", PCM, [*GOOD, ("ew-seq", b"8")], "bad_header"),
    (b"cam", PCM, [*GOOD, ("ew-eos", b"yes")], "bad_header"),
    (b"cam", PCM, [("ew-seq",)], "bad_header"),
    (b"cam", PCM, [*GOOD, ("ew-v", b"2")], "bad_version"),
    (b"cam", PCM, _with("ew-rate", b"7999"), "bad_rate"),
    (b"cam", PCM, _with("ew-rate", b"192001"), "bad_rate"),
    (b"cam", PCM, _with("ew-ch", b"0"), "bad_channels"),
    (b"cam", PCM, _with("ew-ch", b"9"), "bad_channels"),
    (b"cam", PCM, _with("ew-fmt", b"s24le"), "bad_format"),
    (b"cam", PCM, _with("ew-fmt", b"S16LE"), "bad_format"),
    (b"cam", PCM[:-1], GOOD, "bad_length"),
    (b"cam", b"", GOOD, "bad_length"),
    (b"cam", None, GOOD, "bad_length"),
    (b"cam", "pcm", GOOD, "bad_length"),
    (b"cam", PCM[:6], _with("ew-ch", b"4"), "bad_length"),
    (b"cam", bytes(4 * 1024 * 1024), GOOD, "oversize"),
    (b"cam", bytes(2 * 16_000 * 3), GOOD, "oversize"),  # 3 s > max_frame_ms
    (b"cam", NAN_F32, F32, "non_finite"),
    (b"cam", INF_F32, F32, "non_finite"),
]


@pytest.mark.parametrize(("key", "value", "headers", "reason"), BAD)
def test_bad_record_raises_typed_error_with_the_record(
    key: object, value: object, headers: object, reason: str
) -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(key, value, headers, position=(1, 5))  # type: ignore[arg-type]
    error = caught.value
    assert isinstance(error, BadInputError)
    assert error.reason == reason
    assert error.detail and error.reason in str(error)
    assert error.record == (key, value, headers, (1, 5))


def test_limits_are_configurable() -> None:
    tight = FrameLimits(max_frame_bytes=100, max_frame_ms=1000)
    with pytest.raises(FrameError, match="oversize"):
        decode_frame(b"cam", PCM, GOOD, limits=tight)


# Header values hypothesis picks from: mostly valid, sometimes garbage.
_values = st.one_of(
    st.sampled_from([b"0", b"1", b"2", b"16000", b"48000", b"s16le", b"f32le", b"8", b""]),
    st.binary(max_size=24),
    st.none(),
)
_names = st.sampled_from(["ew-seq", "ew-ts", "ew-rate", "ew-ch", "ew-fmt", "ew-eos", "ew-v", "x"])
_headers = st.one_of(st.none(), st.lists(st.tuples(_names, _values), max_size=9))


@settings(max_examples=400, deadline=None)
@given(
    key=st.one_of(st.none(), st.binary(max_size=300)),
    value=st.one_of(st.none(), st.binary(max_size=64)),
    headers=_headers,
)
def test_any_bytes_give_a_frame_or_a_frame_error(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]] | None
) -> None:
    try:
        frame = decode_frame(key, value, headers)
    except FrameError as error:
        assert error.record == (key, value, headers, None)
        return
    assert 1 <= len(frame.stream_id.encode()) <= 256
    assert len(frame.pcm) % (frame.channels * wire.SAMPLE_WIDTH[frame.fmt]) == 0


@settings(max_examples=200, deadline=None)
@given(
    seq=st.binary(max_size=4) | st.integers(0, 10**6).map(lambda n: str(n).encode()),
    rate=st.sampled_from([b"16000", b"8000", b"7", b"abc"]),
    channels=st.sampled_from([b"1", b"2", b"0"]),
    fmt=st.sampled_from([b"s16le", b"f32le", b"x"]),
    value=st.binary(max_size=16),
    key=st.binary(min_size=1, max_size=4),
)
def test_fast_path_agrees_with_full_validation(  # noqa: PLR0917 - hypothesis keywords
    seq: bytes, rate: bytes, channels: bytes, fmt: bytes, value: bytes, key: bytes
) -> None:
    """The hot path caches layouts; it must accept exactly what the careful path accepts."""
    headers = [("ew-seq", seq), ("ew-ts", b"5"), ("ew-rate", rate), ("ew-ch", channels)]
    headers.append(("ew-fmt", fmt))
    limits = FrameLimits()
    fast = wire._decode_common(key, value, headers, None, limits)
    try:
        careful = wire._decode(key, value, headers, None, limits)
    except wire._Bad:
        assert fast is None
        return
    assert fast is None or fast == careful


def test_plain_frames_take_the_fast_path_once_their_layout_is_known() -> None:
    decode_frame(b"cam", PCM, GOOD)  # validates fully and remembers the layout
    assert wire._decode_common(b"cam", PCM, GOOD, None, FrameLimits()) == decode_frame(
        b"cam", PCM, GOOD
    )
