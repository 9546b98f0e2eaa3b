"""Docs point only at things that exist: relative links, and ``docs/…`` paths named anywhere."""

from __future__ import annotations

import re
import subprocess

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
