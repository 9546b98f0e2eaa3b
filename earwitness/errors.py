"""The one exception tree of earwitness.

::

    EarwitnessError
    ├── ConfigError          fatal at start-up: bad settings, bad rules file
    ├── BadInputError        recoverable: one bad record; carries it for the dead-letter topic
    ├── TransientError       recoverable: retry later (broker hiccup, sink timeout)
    └── FatalError           the process must stop and be restarted by its orchestrator
        ├── EngineDeadError  the vLLM engine died
        └── KafkaFatalError  a fatal client error (fenced producer, auth failure)

Foreign exceptions are translated at the boundary with ``raise ... from exc``. Packages add
subclasses next to the code that raises them (e.g. ``windowing.wire.FrameError``).
"""

from __future__ import annotations


class EarwitnessError(Exception):
    """Root of every error earwitness raises on purpose."""


class ConfigError(EarwitnessError):
    """Invalid configuration; raised at start-up and never caught by the service loop."""


class BadInputError(EarwitnessError):
    """One input record cannot be processed. It goes to a dead-letter topic, never silently.

    ``reason`` is a short stable code (a metric label and the ``ew-error`` header);
    ``detail`` is a human sentence; ``record`` is the raw input, opaque here.
    """

    def __init__(self, reason: str, detail: str, record: object = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.record = record


class TransientError(EarwitnessError):
    """A temporary failure; the caller retries with backoff."""


class FatalError(EarwitnessError):
    """The process cannot continue; it commits what is finished and exits non-zero."""


class EngineDeadError(FatalError):
    """The inference engine is gone; restart the process."""


class KafkaFatalError(FatalError):
    """The Kafka client reported a fatal error (fenced, unauthorised, ...)."""
