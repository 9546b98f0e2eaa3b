"""Frames → windows. Pure: no Kafka, no vLLM; decoded PCM frames in, 16 kHz mono windows out.

::

    decode_frame ─► Windower.push ─► Stream: Reorder ─► continuity ─► Segment ─► Window
    (wire.py)       (windower.py)    (stream.py, reorder.py)          (segment.py, convert.py)
"""

from windowing.config import FrameLimits, WindowSettings
from windowing.window import Cursor, Window, WindowStats
from windowing.windower import Windower
from windowing.wire import Frame, FrameError, decode_frame, encode_frame

__all__ = [
    "Cursor",
    "Frame",
    "FrameError",
    "FrameLimits",
    "Window",
    "WindowSettings",
    "WindowStats",
    "Windower",
    "decode_frame",
    "encode_frame",
]
