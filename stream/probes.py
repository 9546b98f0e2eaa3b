"""The analyzer's probes: the poll loop (``earwitness.health``) plus the engine.

``/healthz`` is 200 while the poll loop is turning and the engine lives; ``/readyz`` is 200 once
the engine is warm and the consumer holds partitions. The server (``/metrics`` too, thread
``ew-http``) is :class:`earwitness.health.HealthServer`.
"""

from __future__ import annotations

from collections.abc import Callable

from earwitness.health import HealthServer, LoopHealth

__all__ = ["Health", "HealthServer"]


class Health(LoopHealth):
    """What the probes read; written by the poll loop and the engine's start-up."""

    def __init__(self, stall_s: float) -> None:
        super().__init__(stall_s)
        self.engine_warm = False
        self.engine_alive: Callable[[], bool] = lambda: True

    def healthy(self) -> tuple[bool, str]:
        if not self.engine_alive():
            return False, "engine dead"
        if not self.engine_warm:
            return True, "engine warming up"  # the poll loop starts once the engine is warm
        return super().healthy()

    def ready(self) -> tuple[bool, str]:
        if not self.engine_warm:
            return False, "engine warming up"
        return super().ready()
