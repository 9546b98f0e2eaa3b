"""One window's request to the engine: prepare, wait for its batch, generate, retry, time out.

::

    prepare ─► gate (the whole batch prepared) ─► generate ─► result
       │ rejected: error, no retry                    │ failed or timed out: retry the whole
       │ failed: generate prepares it again            │ request (prepare + generate) up to
                                                       │ request_retries times, then an error

Each attempt is bounded by ``engine.request_timeout_s``: a request the engine never finishes is
aborted (cancelling the awaitable aborts it inside vLLM) and counts as a failed attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Protocol, TypeVar

import numpy as np

from earwitness.errors import BadInputError, TransientError
from stream.engine.engine import CaptionResult, PreparedWindow

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Captioner(Protocol):
    """What the batcher needs of an engine (``stream.engine.CaptionEngine``)."""

    def prepare(self, samples: np.ndarray, request_id: str) -> Awaitable[PreparedWindow]: ...

    def generate(self, prepared: PreparedWindow) -> Awaitable[CaptionResult]: ...

    def caption(self, samples: np.ndarray, request_id: str) -> Awaitable[CaptionResult]: ...

    @property
    def is_alive(self) -> bool:
        """False once the engine (its core process) has died."""
        ...


class RequestTimeout(TransientError):
    """The engine did not finish one attempt within ``request_timeout_s``."""


class Gate:
    """Opens when every window of one batch has been prepared (or failed to be)."""

    def __init__(self, windows: int) -> None:
        self._left = windows
        self._open = asyncio.Event()
        if windows <= 0:
            self._open.set()

    def arrive(self) -> None:
        self._left -= 1
        if self._left <= 0:
            self._open.set()

    async def opened(self) -> None:
        await self._open.wait()


async def caption_window(
    engine: Captioner,
    samples: np.ndarray,
    request_id: str,
    gate: Gate,
    *,
    retries: int,
    timeout_s: float,
) -> tuple[CaptionResult | None, str | None, int]:
    """``(result, error, attempts)`` of one window; see the module docstring."""
    prepared: PreparedWindow | None = None
    try:
        prepared = await _bounded(engine.prepare(samples, request_id), timeout_s, request_id)
    except BadInputError as exc:
        return None, f"rejected: {exc}", 1
    except TransientError as exc:
        logger.warning("preparing %s failed: %s", request_id, exc)
    finally:
        gate.arrive()
    await gate.opened()
    attempts, error = 0, ""
    while attempts <= retries:
        attempts += 1
        try:
            if prepared is not None:
                first, prepared = prepared, None
                return await _bounded(engine.generate(first), timeout_s, request_id), None, attempts
            attempt = engine.caption(samples, request_id)
            return await _bounded(attempt, timeout_s, request_id), None, attempts
        except BadInputError as exc:
            return None, f"rejected: {exc}", attempts
        except TransientError as exc:
            error = str(exc)
            logger.warning("caption %s failed (attempt %d): %s", request_id, attempts, exc)
    return None, f"failed after {attempts} attempts: {error}", attempts


async def _bounded(call: Awaitable[T], timeout_s: float, request_id: str) -> T:
    try:
        return await asyncio.wait_for(call, timeout_s)
    except TimeoutError as exc:
        raise RequestTimeout(f"{request_id}: no result after {timeout_s:g} s") from exc
