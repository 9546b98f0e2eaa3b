"""The shape of the tree (issue 13): which package may import which, thread names, module size.

Checked on the source (``ast``), so an import inside a function counts as much as one at the
top: the alerts image ships only ``earwitness/`` and ``sinks/``, and a lazy import of the
analyzer would fail there, at run time, in the one path no test took.
"""

from __future__ import annotations

import ast
import inspect
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from tests.support.kafka import REPO

PACKAGES = ("earwitness", "stream", "windowing", "sinks", "ingest", "console")
MAY_IMPORT = {
    "earwitness": {"earwitness"},
    "windowing": {"earwitness", "windowing"},  # the exception tree only
    "sinks": {"earwitness", "sinks"},
    "stream": {"earwitness", "windowing", "stream"},
    "ingest": {"earwitness", "windowing", "ingest"},
    "console": {"earwitness", "windowing", "console"},
}
"""Each package's own imports among the project's packages (the data path, one way)."""
MAX_LINES = 400
LONGER: dict[str, str] = {}
"""Modules allowed over MAX_LINES, each with its reason (issue 13: none over ~400)."""


def _modules(package: str) -> Iterator[Path]:
    yield from sorted((REPO / package).rglob("*.py"))


def _trees(package: str) -> Iterator[tuple[str, ast.AST]]:
    for path in _modules(package):
        yield str(path.relative_to(REPO)), ast.parse(path.read_text(encoding="utf-8"))


def _imported(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_they_may(package: str) -> None:
    wrong = [
        f"{name} imports {imported}"
        for name, tree in _trees(package)
        for imported in _imported(tree)
        if imported in PACKAGES and imported not in MAY_IMPORT[package]
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_thread_is_named_ew(package: str) -> None:
    """One convention for thread names (``ew-<what>``), so a stack dump says whose it is."""
    wrong = []
    for name, tree in _trees(package):
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and ast.unparse(node.func) == "threading.Thread"):
                continue
            given = next((k.value for k in node.keywords if k.arg == "name"), None)
            text = ast.unparse(given) if given is not None else ""
            if not text.lstrip("f").strip("'\"").startswith("ew-") and text != "thread_name":
                wrong.append(f"{name}:{node.lineno}: Thread(name={text or 'missing'})")
    assert not wrong, "\n".join(wrong)


def test_the_health_servers_thread_name_default_is_ew() -> None:
    from earwitness.health import HealthServer

    default = inspect.signature(HealthServer.__init__).parameters["thread_name"].default
    assert default.startswith("ew-")


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_stay_small(package: str) -> None:
    long = [
        f"{path.relative_to(REPO)}: {lines} lines"
        for path in _modules(package)
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and str(path.relative_to(REPO)) not in LONGER
    ]
    assert not long, "\n".join(long)


def _models_below(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """``model`` and every settings model its fields hold (unions and maps included)."""
    seen: set[type[BaseModel]] = set()
    todo = [model]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        yield current
        for info in current.model_fields.values():
            todo += [t for t in _types_in(info.annotation) if issubclass(t, BaseModel)]


def _types_in(annotation: object) -> Iterator[type]:
    if isinstance(annotation, type):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _types_in(arg)


def _root_settings() -> list[type[BaseModel]]:
    from console.config import ConsoleSettings
    from ingest.config import IngestSettings
    from sinks.config import AlertsSettings
    from sinks.rules import Rule
    from stream.config import AnalyzerSettings

    return [AnalyzerSettings, AlertsSettings, Rule, IngestSettings, ConsoleSettings]


def test_every_setting_says_what_it_is() -> None:
    """Every field a user can set (in a settings or rules file) has a description, except
    sections (their class says it) and a receiver's ``type`` (the class's docstring)."""
    missing = [
        f"{model.__module__}.{model.__name__}.{name}"
        for root in _root_settings()
        for model in _models_below(root)
        for name, info in model.model_fields.items()
        if not info.description
        and name != "type"
        and not any(issubclass(t, BaseModel) for t in _types_in(info.annotation))
    ]
    assert not missing, "\n".join(missing)
