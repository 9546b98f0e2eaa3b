"""The analyzer's probes (``stream/probes.py``): a stuck engine fails readiness, then liveness."""

from __future__ import annotations

from stream.probes import Health


def test_a_stuck_engine_fails_readiness_then_liveness() -> None:
    health = Health(stall_s=60, engine_unready_s=120, engine_unhealthy_s=300)
    health.engine_warm, health.assigned = True, True
    stalled = [0.0]
    health.engine_stalled_s = lambda: stalled[0]
    assert health.ready() == (True, "ok") and health.healthy() == (True, "ok")
    stalled[0] = 121.0
    assert health.ready() == (False, "engine stalled: no caption for 121 s")
    assert health.healthy() == (True, "ok")
    stalled[0] = 301.0
    assert health.healthy() == (False, "engine stuck: no caption for 301 s")


def test_a_warming_engine_is_alive_but_not_ready() -> None:
    health = Health(stall_s=60, engine_unready_s=1, engine_unhealthy_s=1)
    health.engine_stalled_s = lambda: 1000.0  # ignored until warm
    assert health.healthy() == (True, "engine warming up")
    assert health.ready() == (False, "engine warming up")
