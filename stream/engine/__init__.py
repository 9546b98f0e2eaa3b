"""The engine room: the vLLM caption engine on its own thread, behind a handful of calls.

::

    poll thread (stream/analyzer.py)  │  thread "ew-engine-loop" (worker.py)
                                      │
      submit(window)  ────────────────┼──► MicroBatcher (batcher.py) ──► EnginePool (pool.py)
      cancel(keys)    ────────────────┼──►   (a revoked partition's      └─► CaptionEngine
      take_outcomes() ◄───────────────┼───    windows)   Outcome             (engine.py, vLLM)
      pending, dead, stalled_s        │                                      └─► processes.py

The folder boundary is the thread boundary: from the poll loop only :class:`EngineWorker`'s
``submit``, ``cancel``, ``take_outcomes``, ``pending`` and ``dead`` (and the :class:`Outcome` it
hands back) cross it; the CLI adds ``start``/``stop`` and the probes read ``stalled_s``.
``settings.py`` holds the engine's and the batcher's settings; ``testmodel.py`` (with a
``testmodel_<family>.py`` per model family) writes the tiny random-weight models that CI and the
CPU demo run (``earwitness make-test-model``).
"""

from stream.engine.batcher import Outcome
from stream.engine.settings import BatchSettings, EngineSettings
from stream.engine.worker import EngineWorker

__all__ = ["BatchSettings", "EngineSettings", "EngineWorker", "Outcome"]
