"""Listen: a window's audio, read back from the frames topic on demand. Nothing is stored.

This is the privacy boundary (docs/console.md): the console keeps captions, never audio, so a
window can be heard exactly as long as the frames topic keeps its frames.

The caption event says where the window's frames are (``frames``: topic, partition, first and
last offset; other streams' frames lie between). The window is rebuilt with the analyzer's own
code, so it is the audio the model heard::

    partition p  ... [first_offset ····· frames of 50 streams ····· last_offset] ...
                      │ keep key == stream id, decode_frame (windowing.wire)
                      ▼
    Windower.restore(Cursor(segment, window_index - 1, anchor = first frame))  (as the analyzer
    does after a restart) ─► push the frames ─► flush ─► the window with the event's index

The anchor's sample position in the segment is taken from its ``ew-ts`` (publishers that stamp
frames by their sample count, as ``earwitness publish`` does, make it exact). A 16 kHz mono s16
stream comes back sample for sample; a resampled one through a resampler started at the
anchor, as after an analyzer restart. It is served as 16-bit PCM WAV.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import cast

import numpy as np
import soundfile
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from earwitness.errors import BadInputError, TransientError
from windowing import Cursor, Frame, FrameError, Windower, WindowSettings, decode_frame
from windowing.config import NS_PER_OUT_SAMPLE, OUT_RATE_HZ, FrameLimits
from windowing.wire import Headers

CONSUME_BATCH = 10_000


class AudioUnavailable(BadInputError):
    """The window's audio cannot be rebuilt (``reason``: expired, no_frames, too_long, mismatch)."""


@dataclass(frozen=True, slots=True)
class WindowRef:
    """Which window, and where its frames are (a ``windows`` row)."""

    stream_id: str
    segment_id: int
    window_index: int
    start_ns: int
    end_ns: int
    topic: str
    partition: int
    first_offset: int
    last_offset: int


def window_audio(
    client_config: Mapping[str, str | int | float | bool],
    ref: WindowRef,
    settings: WindowSettings,
    *,
    timeout_s: float,
    max_records: int,
) -> np.ndarray:
    """The window's 16 kHz mono float32 samples, rebuilt from the frames topic."""
    frames = list(
        read_frames(
            client_config, ref, settings.frame_limits, timeout_s=timeout_s, max_records=max_records
        )
    )
    if not frames:
        raise AudioUnavailable("no_frames", "none of the window's frames are on the topic")
    return rebuild(frames, ref, settings)


def read_frames(
    client_config: Mapping[str, str | int | float | bool],
    ref: WindowRef,
    limits: FrameLimits,
    *,
    timeout_s: float,
    max_records: int,
) -> Iterator[Frame]:
    """The stream's frames at offsets ``first_offset..last_offset`` of the partition."""
    if ref.last_offset - ref.first_offset + 1 > max_records:
        raise AudioUnavailable("too_long", "the window spans more records than max_records")
    consumer = Consumer(_reader_config(client_config))
    try:
        tp = TopicPartition(ref.topic, ref.partition, ref.first_offset)
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
        if ref.first_offset < low:
            raise AudioUnavailable("expired", "the frames topic no longer keeps these frames")
        if ref.last_offset >= high:
            raise AudioUnavailable("no_frames", "the frames are not on the topic (yet)")
        consumer.assign([tp])
        yield from _frames(consumer, ref, limits, time.monotonic() + timeout_s)
    except KafkaException as exc:
        raise TransientError(f"cannot read {ref.topic}[{ref.partition}]: {exc}") from exc
    finally:
        consumer.close()


def _reader_config(client_config: Mapping[str, str | int | float | bool]) -> dict[str, object]:
    return {
        **client_config,
        "group.id": f"earwitness-console-listen-{uuid.uuid4().hex[:12]}",  # never joined
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "error",
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        "queued.max.messages.kbytes": 256 * 1024,
    }


def _frames(
    consumer: Consumer, ref: WindowRef, limits: FrameLimits, deadline: float
) -> Iterator[Frame]:
    key, left = ref.stream_id.encode(), ref.last_offset - ref.first_offset + 1
    while True:
        if time.monotonic() > deadline:
            raise TransientError("the window's frames were not read in time")
        messages = consumer.consume(max(1, min(CONSUME_BATCH, left)), 0.5)  # none waited for
        left -= len(messages)  # past the range's end (transaction markers take offsets)
        for msg in messages:
            frame, done = _frame(msg, key, ref, limits)
            if frame is not None:
                yield frame
            if done:
                return


def _frame(
    msg: Message, key: bytes, ref: WindowRef, limits: FrameLimits
) -> tuple[Frame | None, bool]:
    """(the frame if it is the stream's, whether the last offset is reached)."""
    if msg.error() is not None:
        raise KafkaException(msg.error())
    offset = msg.offset()
    assert offset is not None  # a consumed record has one
    if offset > ref.last_offset:
        return None, True
    if msg.key() != key:
        return None, offset >= ref.last_offset
    try:
        headers = cast("Headers | None", msg.headers())  # consumed headers are (str, bytes)
        frame = decode_frame(msg.key(), msg.value(), headers, (ref.partition, offset), limits)
    except FrameError:
        return None, offset >= ref.last_offset  # the analyzer dead-lettered it too
    return frame, offset >= ref.last_offset


def rebuild(frames: list[Frame], ref: WindowRef, settings: WindowSettings) -> np.ndarray:
    """Window ``ref.window_index`` of ``frames`` (which start at the window's first frame)."""
    windower = Windower(_geometry(settings, ref))
    windower.restore(_anchor(frames[0], ref), 0.0)
    windows = [w for frame in frames for w in windower.push(frame, 0.0)]
    windows += windower.flush_all()
    for window in windows:
        if window.segment_id == ref.segment_id and window.index == ref.window_index:
            if (window.start_ns, window.end_ns) != (ref.start_ns, ref.end_ns):
                raise AudioUnavailable(
                    "mismatch", "the rebuilt window does not span the event's time "
                    "(are listen.windowing and the analyzer's windowing the same?)",
                )  # fmt: skip
            return window.samples
    raise AudioUnavailable("mismatch", "the frames do not make the event's window")


def _anchor(first: Frame, ref: WindowRef) -> Cursor:
    """Continue the segment at its first frame, so the next window is ``ref.window_index``."""
    in_sample = round((first.ts_ns - ref.segment_id) * first.rate_hz / 1_000_000_000)
    return Cursor(
        ref.stream_id, ref.segment_id, ref.window_index - 1, False, first.seq, first.ts_ns,
        max(0, in_sample), first.rate_hz, first.channels, first.fmt, None,
    )  # fmt: skip


def _geometry(settings: WindowSettings, ref: WindowRef) -> WindowSettings:
    """``settings`` with the hop the event's grid shows (window k starts k hops in)."""
    length_s = (ref.end_ns - ref.start_ns) / 1e9
    window_s = max(settings.window_s, length_s)
    hop_s = settings.hop_s
    if ref.window_index > 0:
        offset_samples = (ref.start_ns - ref.segment_id) // NS_PER_OUT_SAMPLE
        hop_s = offset_samples / ref.window_index / OUT_RATE_HZ
    try:
        return WindowSettings(
            **{**settings.model_dump(), "window_s": window_s, "hop_s": min(hop_s, window_s)}
        )
    except ValueError as exc:
        raise AudioUnavailable("mismatch", f"no window grid fits the event: {exc}") from exc


def wav(samples: np.ndarray) -> bytes:
    """16 kHz mono 16-bit PCM WAV; s16 input comes back bit for bit (``x · 32768``)."""
    pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2")
    out = io.BytesIO()
    soundfile.write(out, pcm, OUT_RATE_HZ, subtype="PCM_16", format="WAV")
    return out.getvalue()
