"""Windows built directly (no Kafka, no Windower), for tests that drive the batcher or worker."""

from __future__ import annotations

import numpy as np

from windowing.window import Cursor, Window


def make_window(
    stream: str, index: int, samples: np.ndarray | None = None, t0_ns: int = 0
) -> Window:
    """Window ``index`` of ``stream``: 1 s windows on a 1 s grid from ``t0_ns`` (the epoch:
    ancient, hence stale, to a real wall clock); silence unless ``samples``."""
    audio = np.zeros(16_000, np.float32) if samples is None else samples.astype(np.float32)
    cursor = Cursor(stream, 0, index, False, 0, 0, 0, 16_000, 1, "s16le", None)
    return Window(
        stream,
        0,
        index,
        t0_ns + index * 10**9,
        t0_ns + (index + 1) * 10**9,
        audio,
        0.0,
        -20.0,
        -10.0,
        False,
        False,
        (),
        cursor,
    )
