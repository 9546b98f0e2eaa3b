"""A ring of 16 kHz samples addressed by absolute sample index.

::

    absolute index ──►   start                 end
    ─────────────────────┼─────── held ────────┼──── free ───►
    physical slot = index % len(buffer); the buffer grows by doubling up to ``capacity``

Memory is allocated as the stream needs it, never beyond ``capacity`` samples. The ring keeps
the samples in the dtype they arrive in (int16 for 16 kHz mono s16, else float32): a 16 kHz
mono frame is one ``memcpy`` of its bytes; :meth:`copy` scales to float32 once, per window.
"""

from __future__ import annotations

import numpy as np

INITIAL_SAMPLES = 32_768  # ~2 s at 16 kHz


class SampleRing:
    """Samples ``[start, end)`` of one segment; the owner trims from the left as windows pass."""

    __slots__ = ("_buf", "_bytes", "_item", "capacity", "end", "start")

    def __init__(self, capacity: int, start: int = 0, dtype: str = "<f4") -> None:
        self.capacity = capacity
        self.start = start
        self.end = start
        self._set_buffer(np.empty(min(capacity, INITIAL_SAMPLES), dtype=dtype))

    @property
    def free(self) -> int:
        """Samples that can be appended before the owner must trim."""
        return self.capacity - self.end + self.start

    @property
    def nbytes(self) -> int:
        return self._buf.nbytes

    def append_bytes(self, raw: bytes) -> None:
        """Append little-endian samples of the ring's dtype; ``len(raw) // item <= free``."""
        n = len(raw) // self._item
        size = len(self._buf)
        if self.end - self.start + n > size:
            self.append(np.frombuffer(raw, dtype=self._buf.dtype))
            return
        at = self.end % size
        if at + n <= size:
            self._bytes[at * self._item : (at + n) * self._item] = raw
            self.end += n
        else:
            self.append(np.frombuffer(raw, dtype=self._buf.dtype))

    def append(self, samples: np.ndarray) -> None:
        """Write ``samples`` at ``end``; the caller keeps ``len(samples) <= free``."""
        n = len(samples)
        held = self.end - self.start + n
        if held > len(self._buf):
            self._grow(held)
        size = len(self._buf)
        at = self.end % size
        first = min(n, size - at)
        self._buf[at : at + first] = samples[:first]
        if first < n:
            self._buf[: n - first] = samples[first:]
        self.end += n

    def copy(self, lo: int, hi: int, scale: float = 1.0) -> np.ndarray:
        """Samples ``[lo, hi)`` times ``scale``, as new float32; ``start <= lo <= hi <= end``."""
        out = np.empty(hi - lo, dtype=np.float32)
        factor = np.float32(scale)
        size = len(self._buf)
        at = lo % size
        first = min(hi - lo, size - at)
        np.multiply(self._buf[at : at + first], factor, out=out[:first], casting="unsafe")
        np.multiply(self._buf[: hi - lo - first], factor, out=out[first:], casting="unsafe")
        return out

    def trim(self, lo: int) -> None:
        """Forget samples before ``lo`` (clamped to what is held)."""
        self.start = max(self.start, min(lo, self.end))

    def _grow(self, needed: int) -> None:
        size = len(self._buf)
        while size < needed:
            size *= 2
        kept = self._held()
        self._set_buffer(np.empty(min(size, self.capacity), dtype=self._buf.dtype))
        self.end = self.start
        self.append(kept)

    def _held(self) -> np.ndarray:
        """Samples ``[start, end)`` in the ring's own dtype, as a new array."""
        size = len(self._buf)
        at = self.start % size
        n = self.end - self.start
        if at + n <= size:
            return self._buf[at : at + n].copy()
        return np.concatenate((self._buf[at:], self._buf[: n - (size - at)]))

    def _set_buffer(self, buf: np.ndarray) -> None:
        self._buf = buf
        self._item = buf.itemsize
        self._bytes = memoryview(buf).cast("B")  # type: ignore[arg-type]
