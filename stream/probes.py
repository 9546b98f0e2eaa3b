"""The analyzer's probes: the poll loop (``earwitness.health``) plus the engine.

``/healthz`` is 200 while the poll loop is turning and the engine lives and is not stuck;
``/readyz`` is 200 once the engine is warm and the consumer holds partitions. A stuck engine
(windows in it, no caption out for ``engine.stall_unready_s``) fails readiness first, then, past
``engine.stall_unhealthy_s``, liveness, so the orchestrator restarts the analyzer. The server
(``/metrics`` too, thread ``ew-http``) is :class:`earwitness.health.HealthServer`.
"""

from __future__ import annotations

from collections.abc import Callable

from earwitness.health import HealthServer, LoopHealth

__all__ = ["Health", "HealthServer"]


class Health(LoopHealth):
    """What the probes read; written by the poll loop and the engine's start-up."""

    def __init__(
        self,
        stall_s: float,
        engine_unready_s: float = float("inf"),
        engine_unhealthy_s: float = float("inf"),
    ) -> None:
        super().__init__(stall_s)
        self.engine_warm = False
        self.engine_alive: Callable[[], bool] = lambda: True
        self.engine_stalled_s: Callable[[], float] = lambda: 0.0
        self.engine_unready_s = engine_unready_s
        self.engine_unhealthy_s = engine_unhealthy_s

    def healthy(self) -> tuple[bool, str]:
        if not self.engine_alive():
            return False, "engine dead"
        if not self.engine_warm:
            return True, "engine warming up"  # the poll loop starts once the engine is warm
        stalled = self.engine_stalled_s()
        if stalled > self.engine_unhealthy_s:
            return False, f"engine stuck: no caption for {stalled:.0f} s"
        return super().healthy()

    def ready(self) -> tuple[bool, str]:
        if not self.engine_warm:
            return False, "engine warming up"
        stalled = self.engine_stalled_s()
        if stalled > self.engine_unready_s:
            return False, f"engine stalled: no caption for {stalled:.0f} s"
        return super().ready()
