"""Loading typed settings: a YAML or TOML file, overlaid by the service's environment variables.

Settings classes are pydantic-settings models (frozen, validated, units in field names). The
environment wins over the file, so a Helm chart or a shell can override one field without
rewriting the file. Each service has its own prefix and nested fields use ``__``:
``EARWITNESS_ANALYZER_ENGINE__MAX_NUM_SEQS=64`` (``earwitness/environment.py`` has the rules).

Relative paths in a config file (values of keys named ``path`` or ending in ``_path``, ``_file``
or ``_dir``) are relative to the file's folder; from the environment, to the working directory.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import orjson
import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from earwitness.environment import Overrides, merge, overrides
from earwitness.errors import ConfigError


class Settings(BaseSettings):
    """Base of every root settings class (analyzer, alert runner, ...).

    Only root classes read the environment, through :func:`load_settings`; their parts are
    plain frozen pydantic models. Precedence, highest first: the service's environment
    (``ENV_PREFIXES``), the config file, field defaults.
    """

    ENV_PREFIXES: ClassVar[tuple[str, ...]] = ()
    """The service's own prefixes, e.g. ``("EARWITNESS_ANALYZER_",)``."""
    ENV_STRICT: ClassVar[bool] = True
    """Whether a variable of those prefixes that names no setting is an error."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,  # secrets must not reach logs through validation errors
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the environment is merged in by load_settings


S = TypeVar("S", bound=Settings)


def load_settings(cls: type[S], path: Path | None = None) -> S:
    """Build ``cls`` from ``path`` (``.yaml``/``.yml``/``.toml``; optional) and the environment."""
    values = read_config_file(path) if path is not None else {}
    env = overrides(cls, cls.ENV_PREFIXES, strict=cls.ENV_STRICT)
    try:
        return cls(**merge(values, env.values))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, env, path)) from exc


def _describe(exc: ValidationError, env: Overrides, path: Path | None) -> str:
    """Each error with where its value came from: a variable, or the file."""
    lines = [f"invalid settings{f' ({path})' if path else ''}:"]
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        where = env.source_of(loc)
        origin = f"environment variable {where}" if where else (str(path) if path else "defaults")
        lines.append(f"  {'.'.join(loc) or '(root)'}: {error['msg']} (from {origin})")
    return "\n".join(lines)


def secret_from_file(values: Any, field: str, file_field: str) -> Any:
    """For a ``mode="before"`` validator: ``<field>_file: PATH`` → ``<field>``, the file's
    content stripped, unless ``<field>`` is set and not empty (e.g. from the environment: it
    wins)."""
    if not isinstance(values, dict) or values.get(file_field) is None or values.get(field):
        return values
    path = Path(values[file_field])
    try:
        return {**values, field: path.read_text(encoding="utf-8").strip()}
    except OSError as exc:
        raise ValueError(f"{file_field}: cannot read {path}: {exc.strerror}") from exc


class MetricsToken(BaseModel):
    """The bearer token of a service's ``/metrics`` (mixed into its HTTP settings)."""

    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, /metrics needs 'Authorization: Bearer <token>' (probes stay open).",
    )
    metrics_token_file: Path | None = Field(default=None, description="File holding the token.")

    _metrics_token_file = model_validator(mode="before")(
        lambda values: secret_from_file(values, "metrics_token", "metrics_token_file")
    )


def settings_hash(settings: BaseSettings) -> str:
    """sha256 (hex) of the settings as JSON with sorted keys; secrets are masked (``SecretStr``
    dumps as ``**********``), so the hash names the configuration without holding a secret."""
    dumped = orjson.dumps(settings.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(dumped).hexdigest()


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot parse config file {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return _resolve_paths(data, path.parent)


def _is_path_key(key: object) -> bool:
    return isinstance(key, str) and (key == "path" or key.endswith(("_path", "_file", "_dir")))


def _resolve_paths(node: Any, base: Path) -> Any:
    """Relative path values (see the module docstring) made relative to ``base``."""
    if isinstance(node, dict):
        return {
            key: str(base / value)
            if _is_path_key(key) and isinstance(value, str) and not Path(value).is_absolute()
            else _resolve_paths(value, base)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_resolve_paths(item, base) for item in node]
    return node
