"""One Kafka record for every reason the wire decoder rejects a frame (``windowing/wire.py``).

Only records a producer can actually send: a 4 MiB value would exceed the broker's message size,
so ``oversize`` comes from ``max_frame_ms`` (a 3 s frame) instead.
"""

from __future__ import annotations

import numpy as np

Headers = list[tuple[str, bytes | None]]

PCM = bytes(640)  # 20 ms of 16 kHz mono s16le


def good_headers(seq: int = 7) -> Headers:
    return [
        ("ew-seq", str(seq).encode()),
        ("ew-ts", b"1700000000000000000"),
        ("ew-rate", b"16000"),
        ("ew-ch", b"1"),
        ("ew-fmt", b"s16le"),
    ]


def _with(name: str, value: bytes | None) -> Headers:
    return [*(h for h in good_headers() if h[0] != name), (name, value)]


def _without(name: str) -> Headers:
    return [h for h in good_headers() if h[0] != name]


NAN_F32 = np.array([0.0, np.nan], dtype="<f4").tobytes()


def bad_frames(key: bytes) -> list[tuple[str, bytes | None, bytes | None, Headers]]:
    """``(reason, key, value, headers)``; records with a usable key use ``key``."""
    return [
        ("bad_key", None, PCM, good_headers()),
        ("bad_key", b"\xff\xfe", PCM, good_headers()),
        ("missing_header", key, PCM, []),
        ("missing_header", key, PCM, _without("ew-ts")),
        ("bad_header", key, PCM, _with("ew-seq", b"-1")),
        ("bad_header", key, PCM, [*good_headers(), ("ew-seq", b"8")]),
        ("bad_header", key, PCM, [*good_headers(), ("ew-eos", b"yes")]),
        ("bad_version", key, PCM, [*good_headers(), ("ew-v", b"2")]),
        ("bad_rate", key, PCM, _with("ew-rate", b"7999")),
        ("bad_channels", key, PCM, _with("ew-ch", b"9")),
        ("bad_format", key, PCM, _with("ew-fmt", b"s24le")),
        ("bad_length", key, PCM[:-1], good_headers()),
        ("bad_length", key, b"", good_headers()),
        ("oversize", key, bytes(2 * 16_000 * 3), good_headers()),  # 3 s > max_frame_ms
        ("non_finite", key, NAN_F32, _with("ew-fmt", b"f32le")),
    ]


REASONS = frozenset(
    {
        "bad_key",
        "missing_header",
        "bad_header",
        "bad_version",
        "bad_rate",
        "bad_channels",
        "bad_format",
        "bad_length",
        "non_finite",
        "oversize",
    }
)
"""Every reason ``FrameError`` documents; ``bad_frames`` must cover them all."""
