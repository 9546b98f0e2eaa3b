"""Errors raised by the alert runner, as subclasses of :mod:`earwitness.errors`.

::

    EarwitnessError
    ├── ConfigError
    │   └── RulesError          a rules file or one rule in it is invalid (fatal at start-up)
    ├── BadInputError
    │   └── DeliveryRejected    the receiver refused this alert for good (4xx): dead-letter it
    └── TransientError
        └── DeliveryFailed      the receiver may take it later (timeout, 5xx, 429, refused)

A sender raises only ``DeliveryFailed`` or ``DeliveryRejected``; foreign errors (``httpx``,
``OSError``, ``KafkaException``) are translated where they happen with ``raise ... from exc``.
"""

from __future__ import annotations

from earwitness.errors import BadInputError, ConfigError, TransientError


class RulesError(ConfigError):
    """The rules file cannot be used; the message names the rule id and the field."""


class DeliveryFailed(TransientError):
    """One delivery attempt failed in a way that a later attempt may not.

    ``reason`` is a short stable code (``timeout``, ``connect``, ``http_503``…) used as the
    dead-letter reason once retries run out; ``retry_after_s`` is the receiver's own hint.
    """

    def __init__(self, reason: str, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retry_after_s = retry_after_s


class DeliveryRejected(BadInputError):
    """The receiver refused the alert itself (e.g. HTTP 400/401/404); retrying cannot help."""
