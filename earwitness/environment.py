"""Settings from the environment: each service reads its own prefix, and nothing is ignored.

::

    EARWITNESS_ANALYZER_ENGINE__MAX_NUM_SEQS=512          → engine.max_num_seqs of the analyzer
    EARWITNESS_ALERTS_RECEIVERS__OPS__SECRET=whsec_...    → receivers.ops.secret of the alert runner
    EARWITNESS_ANALYZER_KAFKA__CLIENT='{"sasl.username": "u"}'   JSON for maps (dotted keys)
    EARWITNESS_ANALYZER_ENGINE__QUANTIZATION=null         null sets None

* ``__`` separates levels; names are case-insensitive (``vllm_env`` keys are upper-cased by
  the engine's settings, librdkafka properties stay lower-case).
* A value that starts with ``{`` or ``[`` is JSON; ``null`` is None; anything else is a
  string that the settings class converts (``512`` → int).
* A variable of the service's own prefix that names no setting (a misspelt section or field)
  is an error that names the variable, never silently ignored.
* The old shared prefix (``EARWITNESS_KAFKA__…``, one prefix for every service) still works for
  this release, with a warning per variable; there, a variable that is not a setting of this
  service is ignored with a warning (it may be another service's), so an alert runner variable
  in the analyzer's environment no longer stops the analyzer.

Prefixes of other tools of this project (``EARWITNESS_TEST_…``) are not settings.
"""

from __future__ import annotations

import logging
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel

from earwitness.errors import ConfigError

logger = logging.getLogger(__name__)

LEGACY_PREFIX = "EARWITNESS_"
SERVICE_PREFIXES = (
    "EARWITNESS_ANALYZER_",
    "EARWITNESS_ALERTS_",
    "EARWITNESS_INGEST_",
    "EARWITNESS_CONSOLE_",
    "EARWITNESS_EXPORT_",
)
NOT_SETTINGS = ("EARWITNESS_TEST_",)
"""Variables under the old prefix that belong to other tools (the test suite's broker)."""

Path = tuple[str, ...]


@dataclass
class Overrides:
    """The environment's settings for one service: nested values and where each came from."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[Path, str] = field(default_factory=dict)
    """Settings path → the variable that set it (for error messages)."""

    def source_of(self, loc: Path) -> str | None:
        """The variable that set ``loc`` or a section above it."""
        for depth in range(len(loc), 0, -1):
            if loc[:depth] in self.sources:
                return self.sources[loc[:depth]]
        return None


def overrides(
    model: type[BaseModel],
    prefixes: tuple[str, ...],
    environ: Mapping[str, str] | None = None,
    *,
    strict: bool = True,
) -> Overrides:
    """The settings of ``model`` in the environment, under ``prefixes`` (first wins) and the old
    shared prefix (last, warned). ``strict``: a variable of ``prefixes`` that names no setting
    is an error (off for tools that read only part of a service's settings)."""
    env = os.environ if environ is None else environ
    found = Overrides()
    for name, raw in sorted(env.items()):
        if _legacy(name):
            logger.warning(
                "%s: the shared EARWITNESS_ prefix is deprecated; use %s<...> instead",
                name,
                prefixes[0],
            )
            _put(found, model, name, name[len(LEGACY_PREFIX) :], raw, strict=False)
    for prefix in reversed(prefixes):
        for name, raw in sorted(env.items()):
            if name.upper().startswith(prefix):
                _put(found, model, name, name[len(prefix) :], raw, strict=strict)
    return found


def _legacy(name: str) -> bool:
    upper = name.upper()
    return (
        upper.startswith(LEGACY_PREFIX)
        and not upper.startswith(SERVICE_PREFIXES)
        and not upper.startswith(NOT_SETTINGS)
    )


def _put(
    found: Overrides, model: type[BaseModel], name: str, rest: str, raw: str, *, strict: bool
) -> None:
    path = tuple(part.lower() for part in rest.split("__"))
    if not all(path) or not _known(model, path):
        if strict:
            raise ConfigError(f"environment variable {name} names no setting of this service")
        if name.upper().startswith(LEGACY_PREFIX) and _legacy(name):
            logger.warning("%s is not a setting of this service; ignored", name)
        return
    node = found.values
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = parse_value(raw)
    found.sources[path] = name


def parse_value(raw: str) -> Any:
    """``null`` → None; JSON objects and arrays; anything else as given."""
    text = raw.strip()
    if text == "null":
        return None
    if text[:1] in ("{", "["):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"a value that starts with {text[0]!r} must be JSON: {exc}") from exc
    return raw


def _known(model: type[BaseModel], path: Path) -> bool:
    """Whether ``path`` names a field of ``model`` (any key below a map or a union)."""
    current: Any = model
    for part in path:
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return True  # a map, a union of models: its keys are the settings class's to judge
        info = fields.get(part)
        if info is None:
            return False
        current = _model_in(info.annotation)
        if current is None:
            return part == path[-1]  # a plain value: nothing below it
    return True


def _model_in(annotation: Any) -> Any:
    """The BaseModel class a field holds, a marker for a map, or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if origin in (dict, Mapping):
        return _ANY_KEYS
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) == 1:
        return _model_in(args[0])
    return None


class _AnyKeys:
    """Below a map every key is allowed (checked by the settings class itself)."""


_ANY_KEYS = _AnyKeys


def merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, maps merged key by key (the environment over the file)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(dict(out[key]), value)
        else:
            out[key] = value
    return out
