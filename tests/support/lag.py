"""What a keeping-up analyzer's consumer group looks like from outside: the lag KEDA's Kafka
scaler would read (log end minus committed offset) and the behind-real-time gauge.

The analyzer's own bookkeeping (``stream/state.py``: windower, pending windows, offsets) runs
over many streams on one partition, frames in real time, every window published at once (an
engine that takes ``latency_s`` for each) and a checkpoint after every second, as the poll loop
does::

    stream i   phase_i ▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮▮ now
                          ├───── window #k ─────┤
                                   ├──── next window (not complete) ───...
                                   ▲ commit holds here: (window_s - hop_s) to window_s behind

No broker, no engine: the lag a real group shows is this plus what is not read yet.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from stream.config import AnalyzerSettings
from stream.state import AnalyzerState
from windowing import decode_frame, encode_frame
from windowing.window import Window

T0_NS = 1_700_000_000_000_000_000


@dataclass(frozen=True)
class LagSample:
    """One checkpoint's view: committed lag in frames, behind real time in seconds."""

    now_s: float
    lag_frames: int
    behind_s: float


def keeping_up(  # noqa: PLR0917 - one scenario's knobs
    settings: AnalyzerSettings,
    streams: int,
    frame_ms: int,
    seconds: float,
    latency_s: float = 0.0,
    seed: int = 7,
) -> list[LagSample]:
    """Samples after every second of ``streams`` live streams (random phases) on partition 0,
    each window published ``latency_s`` after the windower emits it."""
    rng = random.Random(seed)
    hop_ms = round(settings.windowing.hop_s * 1000)
    phases_ms = [rng.randrange(0, hop_ms, frame_ms) for _ in range(streams)]
    pcm = bytes(16 * frame_ms * 2)  # frame_ms of s16le silence at 16 kHz
    state = AnalyzerState(settings)
    offset, samples = 0, []
    engine: deque[tuple[float, Window]] = deque()
    for tick_ms in range(0, round(seconds * 1000), frame_ms):
        now_s = tick_ms / 1000
        for i, phase_ms in enumerate(phases_ms):
            if tick_ms < phase_ms:
                continue
            seq = (tick_ms - phase_ms) // frame_ms
            ts_ns = T0_NS + tick_ms * 1_000_000
            key, value, headers = encode_frame(f"s{i}", seq, ts_ns, 16_000, 1, "s16le", pcm)
            frame = decode_frame(key, value, headers, (0, offset))
            state.offsets.consumed(0, offset)
            state.seen(frame.stream_id, 0, offset, frame.ts_ns, now_s)
            for window in state.windower.push(frame, now_s):
                state.pending.add(window, 0)
                engine.append((now_s + latency_s, window))
            offset += 1
        while engine and engine[0][0] <= now_s:
            _publish(state, engine.popleft()[1])
        state.log_end[0] = offset
        if (tick_ms + frame_ms) % 1000 == 0:
            state.checkpointed(state.committable())
            now_ns = T0_NS + (tick_ms + frame_ms) * 1_000_000
            committed = state.committed.get(0, 0)
            samples.append(LagSample(now_s, offset - committed, state.behind_s(now_ns)))
    return samples


def _publish(state: AnalyzerState, window: Window) -> None:
    for ready in state.pending.finish(window.key):
        state.cursors.on_published(ready.window.cursor)
