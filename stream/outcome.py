"""From a window's fate to its caption event (the contract is ``earwitness/events.py``).

::

    marker (closes a segment)       → nothing         (only its cursor is published)
    silent window (no engine)       → silence event   (or nothing, with batch.silence: skip)
    inactive (activity gate on)     → silence event   skipped = "inactive: …"
    outcome.shed                    → shed event      skipped = "shed: <why>"
    outcome.result                  → caption event   caption, tokens, finish_reason ...
    outcome.error                   → error event     error

Every event also says where its frames are (``frames``) and which analyzer made it
(``analyzer``: instance, settings hash, version).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from earwitness import __version__
from earwitness.config import settings_hash
from earwitness.events import (
    AnalyzerInfo,
    AudioStats,
    CaptionEvent,
    EventKind,
    FrameRange,
    Timings,
    event_id,
    rfc3339,
)
from stream.config import AnalyzerSettings
from stream.engine.engine import CaptionResult
from stream.engine.settings import SilencePolicy
from stream.pending import Pending
from windowing.window import Window


@dataclass(frozen=True)
class EventContext:
    """What every event of one analyzer shares."""

    model: str
    model_revision: str
    frames_topic: str
    silence: SilencePolicy
    analyzer: AnalyzerInfo

    @classmethod
    def of(cls, settings: AnalyzerSettings, instance: str) -> EventContext:
        return cls(
            model=settings.engine.model,
            model_revision=settings.engine.revision or "main",
            frames_topic=settings.kafka.frames_topic,
            silence=settings.batch.silence,
            analyzer=AnalyzerInfo(
                instance=instance, config_hash=settings_hash(settings), version=__version__
            ),
        )


def event_of(entry: Pending, context: EventContext) -> CaptionEvent | None:
    """The event a published window gets; None for a marker (``Window.marker``) and, with
    ``batch.silence: skip``, for silent windows."""
    outcome = entry.outcome
    if entry.window.marker:
        return None
    if outcome is None:
        if context.silence is SilencePolicy.SKIP:
            return None
        return window_event(entry, context, EventKind.SILENCE, skipped=entry.skipped)
    if outcome.shed is not None:
        return window_event(entry, context, EventKind.SHED, skipped=f"shed: {outcome.shed}")
    if outcome.result is not None:
        return window_event(entry, context, EventKind.CAPTION, result=outcome.result)
    return window_event(entry, context, EventKind.ERROR, error=outcome.error)


def window_event(
    entry: Pending,
    context: EventContext,
    kind: EventKind,
    *,
    result: CaptionResult | None = None,
    skipped: str | None = None,
    error: str | None = None,
) -> CaptionEvent:
    """The event for one window's outcome (``result``: the caption, when there is one)."""
    window = entry.window
    return CaptionEvent(
        event_id=event_id(
            window.stream_id, window.segment_id, window.index, context.model_revision
        ),
        kind=kind,
        stream_id=window.stream_id,
        segment_id=window.segment_id,
        window_index=window.index,
        window_start_ns=window.start_ns,
        window_end_ns=window.end_ns,
        window_start=rfc3339(window.start_ns),
        window_end=rfc3339(window.end_ns),
        caption=None if result is None else result.text,
        model=context.model,
        model_revision=context.model_revision,
        audio=AudioStats(
            rms_dbfs=window.rms_dbfs, peak_dbfs=window.peak_dbfs, gap_fraction=window.gap_fraction
        ),
        skipped=skipped,
        error=error,
        timings=Timings(
            window_closed_ns=entry.closed_ns,
            caption_produced_ns=time.time_ns(),
            engine_latency_ms=None if result is None else result.engine_latency_ms,
        ),
        frames=frame_range(window, context.frames_topic),
        analyzer=context.analyzer,
        model_family=None if result is None else result.family or None,
        prompt_id=None if result is None else result.prompt_id or None,
        reasoning=None if result is None else result.reasoning,
        finish_reason=None if result is None else result.finish_reason,
        prompt_tokens=None if result is None else result.prompt_tokens,
        output_tokens=None if result is None else result.output_tokens,
        truncated=None if result is None else result.finish_reason == "length",
    )


def frame_range(window: Window, topic: str) -> FrameRange | None:
    """The offsets of the window's frames (one stream is on one partition)."""
    positions = [p for p in window.positions if isinstance(p, tuple)]
    if not positions:
        return None
    offsets = [offset for _, offset in positions]
    return FrameRange(
        topic=topic, partition=positions[0][0], first_offset=min(offsets), last_offset=max(offsets)
    )
