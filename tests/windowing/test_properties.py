"""Property tests (hypothesis): the grid, reordering invariance, and bounds on every window."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.windowing.support import T0_NS
from windowing import Frame, Window, Windower, WindowSettings, decode_frame, encode_frame

FAST = settings(max_examples=100, deadline=None)


@st.composite
def window_settings(draw: st.DrawFn, jitter: int = 4) -> WindowSettings:
    window = draw(st.integers(64, 1200))
    hop = draw(st.integers(max(1, window // 4), window))
    minimum = draw(st.integers(0, window))
    return WindowSettings(
        window_s=window / 16_000,
        hop_s=hop / 16_000,
        min_window_s=minimum / 16_000,
        jitter_frames=jitter,
        max_gap_s=0.5,
        max_ts_drift_ms=1.0,
    )


@st.composite
def gapless(draw: st.DrawFn) -> tuple[list[int], np.ndarray]:
    """Frame sizes (samples) and the int16 audio they cut."""
    sizes = draw(st.lists(st.integers(1, 400), min_size=1, max_size=30))
    seed = draw(st.integers(0, 2**32 - 1))
    audio = np.random.default_rng(seed).integers(-32768, 32768, sum(sizes)).astype("<i2")
    return sizes, audio


def _frames(sizes: list[int], audio: np.ndarray, stream: str = "s") -> list[Frame]:
    frames, at = [], 0
    for seq, size in enumerate(sizes):
        pcm = audio[at : at + size].tobytes()
        key, value, headers = encode_frame(
            stream, seq, T0_NS + at * 62_500, 16_000, 1, "s16le", pcm
        )
        frames.append(decode_frame(key, value, headers, (0, seq)))
        at += size
    return frames


def _run(frames: list[Frame], windower: Windower) -> list[Window]:
    out = [w for f in frames for w in windower.push(f, 0.0)]
    return out + windower.flush_all()


def _key(window: Window) -> tuple[object, ...]:
    return (
        window.stream_id,
        window.segment_id,
        window.index,
        window.start_ns,
        window.end_ns,
        window.samples.tobytes(),
        window.gap_fraction,
        window.final,
        window.positions,
    )


@FAST
@given(window_settings(), gapless())
def test_in_order_gapless_stream_yields_exactly_the_grid(
    config: WindowSettings, stream: tuple[list[int], np.ndarray]
) -> None:
    sizes, audio = stream
    total, w, h = len(audio), config.window_samples, config.hop_samples
    expected = audio.astype(np.float32) / 32768
    full = [(k, k * h, k * h + w) for k in range((total - w) // h + 1)] if total >= w else []
    k = len(full)
    emitted_end = k * h if k == 0 else (k - 1) * h + w
    tail = (
        [(k, k * h, total)]
        if total > emitted_end and total - k * h >= config.min_window_samples
        else []
    )

    everything = _run(_frames(sizes, audio), Windower(config))
    out = [w for w in everything if not w.marker]

    assert [(x.index, x.final) for x in out] == [(i, False) for i, _, _ in full] + [
        (i, True) for i, _, _ in tail
    ]
    finals = [w for w in everything if w.final]
    assert len(finals) == 1 and finals[0] is everything[-1], "every segment closes exactly once"
    assert finals[0].cursor.final and finals[0].marker == (not tail)
    for window, (_, lo, hi) in zip(out, full + tail, strict=True):
        np.testing.assert_array_equal(window.samples, expected[lo:hi])
        assert (window.start_ns, window.end_ns) == (T0_NS + lo * 62_500, T0_NS + hi * 62_500)


@st.composite
def jittered(draw: st.DrawFn, jitter: int) -> tuple[list[int], list[int]]:
    """Which seqs exist (some dropped), their arrival order within ``jitter``, duplicates added."""
    n = draw(st.integers(1, 30))
    present = [s for s in range(n) if draw(st.integers(0, 9)) > 0 or s == 0]
    delays = {s: draw(st.integers(0, jitter - 1)) for s in present}
    order = sorted(present, key=lambda s: (s + delays[s], draw(st.integers(0, 3))))
    for seq in draw(st.lists(st.sampled_from(present), max_size=8)):
        order.insert(draw(st.integers(order.index(seq) + 1, len(order))), seq)
    return present, order


@FAST
@given(st.integers(1, 6).flatmap(lambda j: st.tuples(st.just(j), jittered(j))), st.data())
def test_shuffles_within_jitter_and_duplicates_change_nothing(
    case: tuple[int, tuple[list[int], list[int]]], data: st.DataObject
) -> None:
    jitter, (present, order) = case
    config = data.draw(window_settings(jitter=jitter))
    sizes = [160] * (max(present) + 1)
    audio = np.arange(sum(sizes), dtype="<i2") % 3000
    frames = _frames(sizes, audio)

    in_order = Windower(config)
    reference = _run([frames[s] for s in present], in_order)
    shuffled = Windower(config)
    got = _run([frames[s] for s in order], shuffled)

    assert [_key(w) for w in got] == [_key(w) for w in reference]
    assert shuffled.stats.duplicates == len(order) - len(present)
    assert shuffled.stats.late == 0


@st.composite
def chaos(draw: st.DrawFn) -> list[tuple[str, Frame]]:
    """Two streams: jumps, resets, holes, format changes, duplicates, eos; random frame sizes."""
    events: list[tuple[str, Frame]] = []
    for stream in ("a", "b"):
        seq, ts, rate = 0, T0_NS, 16_000
        for _ in range(draw(st.integers(1, 40))):
            move = draw(st.sampled_from(["next"] * 6 + ["skip", "reset", "jump", "back", "rate"]))
            seq = {"skip": seq + 2, "reset": 0}.get(move, seq + 1)
            ts += {"jump": 10**9, "back": -(10**8)}.get(move, 0)
            rate = draw(st.sampled_from([8_000, 16_000, 44_100])) if move == "rate" else rate
            n = draw(st.integers(1, 300))
            pcm = np.full(n, 1000, dtype="<i2").tobytes()
            eos = draw(st.integers(0, 30)) == 0
            key, value, headers = encode_frame(stream, seq, ts, rate, 1, "s16le", pcm, eos)
            events.append((stream, decode_frame(key, value, headers, (0, len(events)))))
            ts += n * 1_000_000_000 // rate
    order = draw(st.permutations(range(len(events))))
    return [events[i] for i in order] if draw(st.booleans()) else events


@FAST
@given(window_settings(), chaos())
def test_windows_never_exceed_window_s(
    config: WindowSettings, events: list[tuple[str, Frame]]
) -> None:
    windower = Windower(config)
    out: list[Window] = []
    for i, (_, frame) in enumerate(events):
        out += windower.push(frame, float(i))
        out += windower.tick(float(i))
    out += windower.flush_all()
    for window in out:
        if window.marker:
            assert window.final and window.cursor.final and len(window.samples) == 0
            assert window.start_ns == window.end_ns and window.positions == ()
            continue
        assert 0 < len(window.samples) <= config.window_samples
        assert window.duration_s <= config.window_s
        assert window.end_ns - window.start_ns == len(window.samples) * 62_500
        assert 0.0 <= window.gap_fraction <= 1.0
        assert window.final or len(window.samples) == config.window_samples
        assert window.samples.dtype == np.float32 and np.all(np.isfinite(window.samples))
