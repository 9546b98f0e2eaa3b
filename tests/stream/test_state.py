"""The analyzer's bookkeeping (``stream/state.py``): bounded state for streams that come and
go, the behind-real-time signal, forgetting a partition. No broker, no engine."""

from __future__ import annotations

import gc
import sys

import psutil
import pytest

from stream.changelog import Restored
from stream.config import AnalyzerSettings, KafkaSettings
from stream.state import AnalyzerState
from tests.support.lag import keeping_up
from windowing import WindowSettings, decode_frame, encode_frame
from windowing.window import Window

T0_NS = 1_700_000_000_000_000_000
PCM = bytes(320)  # 10 ms of s16le silence at 16 kHz
SETTINGS = AnalyzerSettings(
    kafka=KafkaSettings(cursor_retention_s=60.0),
    windowing=WindowSettings(window_s=0.04, hop_s=0.02, min_window_s=0.01),
)


def frame(stream_id: str, seq: int, offset: int, eos: bool = False):
    key, value, headers = encode_frame(
        stream_id, seq, T0_NS + seq * 10_000_000, 16_000, 1, "s16le", PCM, eos
    )
    return decode_frame(key, value, headers, (0, offset))


def feed(state: AnalyzerState, stream_id: str, offset: int, now_s: float) -> None:
    """One stream's whole life: one 10 ms frame with eos; its windows published at once."""
    f = frame(stream_id, 0, offset, eos=True)
    state.offsets.consumed(0, offset)
    state.seen(stream_id, 0, offset, f.ts_ns, now_s)
    publish(state, state.windower.push(f, now_s))


def publish(state: AnalyzerState, windows: list[Window]) -> None:
    for window in windows:
        entry = state.pending.add(window, 0)
        for ready in state.pending.finish(entry.key):
            state.cursors.on_published(ready.window.cursor)


def idle(state: AnalyzerState, now_s: float) -> int:
    """What the analyzer does on its ticks and after a checkpoint: idle close, then retire."""
    publish(state, state.windower.tick(now_s))
    checkpoint(state)
    return state.retire_idle(now_s)


def checkpoint(state: AnalyzerState) -> list[tuple[str, int]]:
    offsets = state.committable()
    tombstones = state.cursors.tombstones()
    state.checkpointed(offsets)
    return tombstones


def wave(state: AnalyzerState, first: int, count: int, start_s: float) -> None:
    """``count`` new streams come, go idle, are retired and tombstoned (each once)."""
    for i in range(first, first + count):
        feed(state, f"s{i}", i, now_s=start_s)
    checkpoint(state)
    assert idle(state, start_s + 30.0) == 0, "not idle long enough yet"
    assert idle(state, start_s + 61.0) == count
    tombstones = checkpoint(state)
    assert sorted(tombstones) == sorted((f"s{i}", 0) for i in range(first, first + count))


WAVE = 10_000
WAVES = 10


def held() -> tuple[int, int]:
    """(memory blocks the interpreter holds, resident bytes), after a full collection."""
    gc.collect()
    return sys.getallocatedblocks(), psutil.Process().memory_info().rss


@pytest.mark.slow
def test_streams_that_come_and_go_leave_no_state_behind() -> None:
    """10 waves of 10,000 distinct streams each (100,000 stream ids): once idle for
    cursor_retention_s with their frames committed, each is tombstoned once, and what the
    process holds after the tenth wave is what it held after the second (tables sized for one
    wave; the first also warms the allocator's arenas), not ten times it: fewer than one
    memory block more per 100 streams (a stream's state is dozens of objects), under 1 MiB
    more resident (under 14 bytes a stream). Untraced: ~5-15 s."""
    state = AnalyzerState(SETTINGS)
    wave(state, 0, WAVE, 0.0)
    wave(state, WAVE, WAVE, 100.0)
    blocks, rss = held()
    for k in range(2, WAVES):
        wave(state, k * WAVE, WAVE, k * 100.0)
    blocks_after, rss_after = held()

    assert checkpoint(state) == [], "tombstoned once"
    assert state.cursors.published == {} and state.cursors.last_offset == {}
    assert state.windower.cursor("s7") is None and len(state.pending) == 0
    streams = (WAVES - 2) * WAVE
    assert blocks_after - blocks < streams // 100, f"{blocks_after - blocks} more blocks"
    assert rss_after - rss < 2**20, f"{rss_after - rss} more resident bytes"


def test_a_stream_is_not_retired_while_its_frames_are_uncommitted_or_it_is_held() -> None:
    state = AnalyzerState(SETTINGS)
    feed(state, "done", 0, now_s=0.0)
    f = frame("open", 0, 1)  # no eos: the windower still holds its segment
    state.offsets.consumed(0, 1)
    state.seen("open", 0, 1, f.ts_ns, 0.0)
    publish(state, state.windower.push(f, 0.0))
    assert state.retire_idle(now_s=100.0) == 0, "nothing committed yet"
    state.windower.tick(5.0)  # (idle_timeout_s 10 s: both still held)
    checkpoint(state)
    assert state.retire_idle(now_s=100.0) == 0, "both held by the windower"
    f2 = frame("open", 1, 2)
    state.offsets.consumed(0, 2)
    state.seen("open", 0, 2, f2.ts_ns, 95.0)
    publish(state, state.windower.push(f2, 95.0))  # "open" keeps sending
    assert idle(state, now_s=100.0) == 1  # "done" went idle at 10 s; "open" is alive
    assert "open" in state.cursors.partition_of and "done" not in state.cursors.partition_of


def test_behind_real_time_is_the_oldest_unpublished_window_or_an_unread_backlog() -> None:
    state = AnalyzerState(SETTINGS)
    assert state.behind_s(T0_NS) == 0.0
    f = frame("cam", 0, 0)
    state.offsets.consumed(0, 0)
    state.seen("cam", 0, 0, f.ts_ns, 0.0)
    window = next(iter(state.windower.push(frame("cam", 1, 1), 0.0) or [None]), None)
    assert window is None
    state.log_end[0] = 1  # one record after our position (1) is unread? position is 1: none
    assert state.behind_s(T0_NS + 5 * 10**9) == 0.0
    state.log_end[0] = 50  # a backlog: the newest frame read is 5 s old
    assert state.behind_s(T0_NS + 5 * 10**9) == 5.0


def test_restoring_parks_cursors_and_forgetting_drops_everything_of_the_partition() -> None:
    state = AnalyzerState(SETTINGS)
    feed(state, "a", 0, now_s=0.0)
    cursor = state.cursors.published["a"]
    other = AnalyzerState(SETTINGS)
    assert other.restored(Restored({"a": cursor}, {"a": 0}, {0: 7}), [0], 0.0) == []
    assert other.windower.cursor("a") == cursor
    assert other.dead_letters.first_time is not None
    other.forget([0])
    assert other.windower.cursor("a") is None and other.cursors.published == {}


@pytest.mark.parametrize(("streams", "latency_s"), [(1, 0.0), (12, 0.0), (12, 5.0)])
def test_a_keeping_up_group_lags_by_a_window_per_stream_but_is_not_behind(
    streams: int, latency_s: float
) -> None:
    """docs/deploy.md, Autoscaling: the committed offset of a keeping-up analyzer trails the
    partition's newest frame by (window_s - hop_s) to window_s + one commit interval (+ the
    engine's latency) of audio for every stream on it (the stream furthest from its next window
    holds the partition), so Kafka lag grows with the streams, not with falling behind; the
    behind-real-time gauge is the engine's latency, whatever the number of streams."""
    settings = AnalyzerSettings()  # the defaults: 30 s windows, 10 s hop, 1 s commits
    frame_ms = 100
    window_s, hop_s = settings.windowing.window_s, settings.windowing.hop_s
    commit_s = settings.kafka.commit_interval_ms / 1000
    run = keeping_up(settings, streams, frame_ms, 75.0, latency_s)
    samples = [s for s in run if s.now_s >= 40.0]
    lags = [s.lag_frames for s in samples]
    frames_per_s = 1000 / frame_ms
    assert min(lags) >= streams * (window_s - hop_s + latency_s) * frames_per_s
    assert max(lags) <= streams * (window_s + commit_s + latency_s) * frames_per_s
    if streams > 1:
        assert sum(lags) / len(lags) >= 0.9 * streams * (window_s + latency_s) * frames_per_s
    behind = [s.behind_s for s in samples]
    assert max(behind) <= latency_s
    assert max(behind) >= latency_s - commit_s - 0.1
