"""Synthetic live streams in the wire format, for analyzer tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from confluent_kafka import Producer

from windowing.wire import encode_frame

FRAME_MS = 20


@dataclass(frozen=True)
class Tone:
    """``seconds`` of a sine at ``amplitude`` (0 → digital silence), as 20 ms s16le frames."""

    stream_id: str
    seconds: float
    rate_hz: int = 16_000
    channels: int = 1
    amplitude: float = 0.3
    first_seq: int = 0
    ts0_ns: int = 1_800_000_000_000_000_000
    missing: frozenset[int] = frozenset()
    eos: bool = False

    @property
    def frame_len(self) -> int:
        return self.rate_hz * FRAME_MS // 1000

    @property
    def n_frames(self) -> int:
        return round(self.seconds * 1000 / FRAME_MS)

    def records(self) -> Iterator[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
        t = np.arange(self.frame_len) / self.rate_hz
        for i in range(self.n_frames):
            seq = self.first_seq + i
            if seq in self.missing:
                continue
            wave = self.amplitude * np.sin(2 * np.pi * 440 * (t + i * FRAME_MS / 1000))
            pcm = np.repeat((wave * 32767).astype("<i2")[:, None], self.channels, axis=1)
            ts_ns = self.ts0_ns + seq * FRAME_MS * 1_000_000
            last = self.eos and i == self.n_frames - 1
            yield encode_frame(
                self.stream_id,
                seq,
                ts_ns,
                self.rate_hz,
                self.channels,
                "s16le",
                pcm.tobytes(),
                eos=last,
            )


def interleaved(tones: Iterable[Tone]) -> Iterator[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """The tones' records round-robin, one frame of each in turn (as live streams arrive)."""
    streams = [tone.records() for tone in tones]
    while streams:
        for records in list(streams):
            record = next(records, None)
            if record is None:
                streams.remove(records)
            else:
                yield record


def produce(producer: Producer, topic: str, record: tuple) -> None:
    """Produce one ``(key, value, headers)`` record, waiting while the local queue is full."""
    key, value, headers = record
    while True:
        try:
            producer.produce(topic, key=key, value=value, headers=headers)
            break
        except BufferError:
            producer.poll(0.05)  # local queue full: let deliveries drain
    producer.poll(0)


def publish_interleaved(bootstrap: str, topic: str, tones: Iterable[Tone]) -> int:
    """Produce the tones' frames round-robin; returns the count."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    sent = 0
    for record in interleaved(tones):
        produce(producer, topic, record)
        sent += 1
    assert producer.flush(30) == 0
    return sent
