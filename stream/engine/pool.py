"""Several caption engines on the same GPU(s), behind the one interface the batcher uses.

On a GPU one vLLM engine core can run out of CPU before the GPU runs out of work: its main
thread (scheduler, input preparation, the audio encoder's batching) was measured at ~100 % of
a core with the GPU busy 16-38 % of the time (``docs/benchmarks.md``). ``engine.replicas``
starts that many :class:`~stream.engine.CaptionEngine` objects in this process, each with its
own engine-core process, and spreads windows over them::

    EnginePool                       owner: EngineWorker (thread "ew-engine-loop")
    ├── CaptionEngine replica 0      └── process "VLLM::EngineCore"
    └── CaptionEngine replica 1      └── process "VLLM::EngineCore"

A window goes to the replica with the fewest windows assigned (prepared or in flight) when it
is prepared, and is generated on that same replica. Replicas start one after another (each
sizes its KV cache from the memory left free when it starts) and stop together. One dead
replica makes the pool dead: the worker then stops and the analyzer restarts as for one engine.

Measured on one H200 without MPS, 2 replicas were slower than 1 (20.2 against 23.1 windows/s,
FP8; ``docs/benchmarks.md``), likely because the GPU time-slices between the replicas' CUDA
contexts. The default stays 1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import numpy as np

from stream.engine.engine import CaptionEngine, CaptionResult, PreparedWindow
from stream.engine.settings import EngineSettings

logger = logging.getLogger(__name__)


class EnginePool:
    """Owns ``settings.replicas`` caption engines; see the module docstring."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.replicas = [CaptionEngine(settings) for _ in range(settings.replicas)]
        self._assigned = [0] * settings.replicas
        self.captioned = [0] * settings.replicas
        """Windows each replica has captioned."""

    @property
    def is_alive(self) -> bool:
        return all(replica.is_alive for replica in self.replicas)

    @property
    def process_ids(self) -> tuple[int, ...]:
        return tuple(pid for replica in self.replicas for pid in replica.process_ids)

    @property
    def assigned(self) -> tuple[int, ...]:
        """Windows prepared or in flight, per replica."""
        return tuple(self._assigned)

    async def start(self) -> None:
        """Start the replicas one after another; stop them all if one fails."""
        try:
            for index, replica in enumerate(self.replicas):
                await replica.start()
                logger.info("engine replica %d of %d ready", index + 1, len(self.replicas))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await asyncio.gather(*(replica.stop() for replica in self.replicas))

    async def prepare(self, samples: np.ndarray, request_id: str) -> PreparedWindow:
        index = min(range(len(self.replicas)), key=self._assigned.__getitem__)
        self._assigned[index] += 1
        try:
            prepared = await self.replicas[index].prepare(samples, request_id)
        except BaseException:
            self._assigned[index] -= 1
            raise
        return dataclasses.replace(prepared, replica=index)

    async def generate(self, prepared: PreparedWindow) -> CaptionResult:
        try:
            result = await self.replicas[prepared.replica].generate(prepared)
        finally:
            self._assigned[prepared.replica] -= 1
        self.captioned[prepared.replica] += 1
        return result

    async def caption(self, samples: np.ndarray, request_id: str) -> CaptionResult:
        return await self.generate(await self.prepare(samples, request_id))
