"""A stream's adaptive noise floor: how quiet the stream usually is, so a window's *activity*
(its level above the floor) means the same on a noisy street camera and a quiet office.

Minimum tracking with a slow rise, one step per window (``rise`` = ``noise_floor_rise_db``)::

    rms (dBFS)     -62 -60 -61 -30 -28 -31 -60 ...
    floor before   -62 -62 -61 -61 -60 -59 -58 ...   down at once, up by `rise` per window
    activity (dB)    0   2   0  31  32  28   0 ...   rms - floor before, at least 0

The floor is part of the stream's cursor, so a replay after a crash cuts windows with the same
floor as the first run did.
"""

from __future__ import annotations

from windowing.window import FLOOR_DBFS


class NoiseFloor:
    """One stream's floor; shared by the stream and its segments (one owner: the windower)."""

    __slots__ = ("_known", "_rise", "value")

    def __init__(self, rise_db: float, value: float = FLOOR_DBFS) -> None:
        """``value``: a floor carried over (a cursor's); FLOOR_DBFS means none yet."""
        self._rise = rise_db
        self._known = value > FLOOR_DBFS
        self.value = value

    def update(self, rms_dbfs: float) -> float:
        """Take one window's level; returns the floor it is measured against (the floor
        before it, or its own level for a stream's first window)."""
        if not self._known:
            self._known, self.value = True, rms_dbfs
            return rms_dbfs
        before = self.value
        self.value = rms_dbfs if rms_dbfs < before else min(rms_dbfs, before + self._rise)
        return before
