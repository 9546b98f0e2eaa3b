"""Failpoints: named places where a test can SIGKILL the process, to prove crash safety.

Armed only through settings (``failpoints: {"checkpoint.before_commit": 3}`` kills the process
the 3rd time that point is passed); empty in production, where ``hit`` is a dict lookup. The
idea is FoundationDB's and TiKV's ``fail-rs``: crash exactly between two steps of the commit
order, which no external ``kill`` can time. Points:

    checkpoint.before_commit   records produced and offsets sent, transaction not committed
    checkpoint.after_commit    transaction committed, bookkeeping not yet updated
    batch.launched             a micro-batch was handed to the engine
    assign.restored            cursors of newly assigned partitions were just restored
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping

logger = logging.getLogger(__name__)

_armed: dict[str, int] = {}


def arm(points: Mapping[str, int]) -> None:
    """Kill the process at the ``n``-th hit of each named point (process-wide)."""
    _armed.clear()
    _armed.update(points)
    if points:
        logger.warning("failpoints armed (testing only): %s", dict(points))


def hit(name: str) -> None:
    if not _armed or name not in _armed:
        return
    _armed[name] -= 1
    if _armed[name] <= 0:
        logger.warning("failpoint %s: SIGKILL", name)
        os.kill(os.getpid(), signal.SIGKILL)
