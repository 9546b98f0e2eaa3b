"""Docs and code point only at things that exist (relative links, ``docs/…`` and other repository
paths named anywhere, tests cited as proof), and the configuration the docs show is read by the
service it is for."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.kafka import REPO

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
DOCS_PATH = re.compile(r"(?<![\w/.-])(docs/[\w./-]+\.(?:md|json|png))")


def _tracked(*patterns: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if (REPO / line).is_file()]


def test_relative_links_in_markdown_exist() -> None:
    missing = []
    for name in _tracked("*.md"):
        if name.startswith("bench/gpu/results/"):
            continue
        for target in LINK.findall((REPO / name).read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not ((REPO / name).parent / target).exists():
                missing.append(f"{name} → {target}")
    assert not missing, "\n".join(missing)


def test_docs_paths_named_in_code_and_docs_exist() -> None:
    missing = []
    for name in _tracked("*.py", "*.md", "*.yaml", "*.sh", "*.tpl", "*.txt", "Makefile"):
        if name.startswith("bench/gpu/results/"):
            continue
        for path in DOCS_PATH.findall((REPO / name).read_text(encoding="utf-8")):
            if not (REPO / path).exists():
                missing.append(f"{name} → {path}")
    assert not missing, "\n".join(missing)


YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
YAML_TESTED_ELSEWHERE = {
    "docs/console.md": "tests/console/test_cli.py (earwitness console --check on it)",
    "docs/deploy.md": "tests/helm/test_chart.py (rendered as chart values)",
}


def _load_ingest(path: Path) -> None:
    from earwitness.config import load_settings
    from ingest.config import IngestSettings

    assert load_settings(IngestSettings, path).sources


def _load_analyzer(path: Path) -> None:
    from stream.config import load_analyzer_settings

    load_analyzer_settings(path)


def _load_rules(path: Path) -> None:
    from sinks.rules import load_rules

    load_rules(path)


YAML_LOADERS: dict[str, Callable[[Path], None]] = {
    "docs/sources.md": _load_ingest,
    "docs/alerts.md": _load_rules,
    "docs/privacy.md": _load_analyzer,
}
"""What each page's ``yaml`` blocks are, and how the service reads them."""


def test_every_yaml_block_of_the_docs_is_read_by_its_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("EARWITNESS_"):
            monkeypatch.delenv(name)
    for name in ["README.md", *(f"docs/{p.name}" for p in sorted((REPO / "docs").glob("*.md")))]:
        found = YAML_BLOCK.findall((REPO / name).read_text(encoding="utf-8"))
        if not found or name in YAML_TESTED_ELSEWHERE:
            continue
        assert name in YAML_LOADERS, f"{name}: a yaml block no test reads"
        for index, text in enumerate(found):
            path = tmp_path / f"{Path(name).stem}-{index}.yaml"
            path.write_text(text)
            YAML_LOADERS[name](path)


def test_tests_named_in_the_docs_exist() -> None:
    """docs/exactly-once.md and the others cite tests as proof: each cited name is a test."""
    tests = list((REPO / "tests").rglob("*.py"))
    defined = {m for p in tests for m in re.findall(r"def (test_\w+)", p.read_text("utf-8"))}
    files = {p.stem for p in tests}
    missing = [
        f"{name} → {cited}"
        for name in _tracked("*.md")
        if not name.startswith("bench/gpu/results/")
        for cited in re.findall(r"`(test_\w+?)(?:\.py)?`", (REPO / name).read_text("utf-8"))
        if cited not in defined and cited not in files
    ]
    assert not missing, "\n".join(missing)


REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:tests|examples|bench|scripts|helm|stream|sinks|windowing|earwitness|ingest"
    r"|console|requirements|\.ci)/[\w./=,-]*[\w])"
)
NOT_FILES = {
    "earwitness/analyzer": "the CloudEvents source attribute, not a path",
    "earwitness/tiny": "a test model's _name_or_path (earwitness/tiny-<name>), not a path",
    "sinks/text.py": "matcher 1, removed in 2026-12; named as history",
}
LOGS = ("bench/gpu/NOTES.md", "requirements/lock.sh", "helm/requirements/lock.sh")
"""A dated log of GPU sessions (old paths as they were), and scripts naming their temp files."""


def test_repository_paths_named_anywhere_exist() -> None:
    """Docstrings, comments and docs point only at files that exist (``tests/…``, ``bench/…``)."""
    missing = []
    for name in _tracked("*.py", "*.md", "*.yaml", "*.sh", "*.tpl", "*.txt", "*.toml", "Makefile"):
        if name.startswith("bench/gpu/results/") or name in LOGS:
            continue
        for path in REPO_PATH.findall((REPO / name).read_text(encoding="utf-8")):
            if path not in NOT_FILES and not (REPO / path).exists():
                missing.append(f"{name} → {path}")
    assert not missing, "\n".join(missing)
