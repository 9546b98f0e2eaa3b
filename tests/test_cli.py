"""The ``earwitness`` command: every subcommand it lists runs, and only its own module loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from earwitness.cli import SUBCOMMANDS
from tests.support.kafka import REPO


def _earwitness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "earwitness.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_lists_every_subcommand() -> None:
    done = _earwitness("--help")
    assert done.returncode == 0, done.stderr
    for name in SUBCOMMANDS:
        assert name in done.stdout


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_subcommand_runs(command: str) -> None:
    done = _earwitness(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: earwitness " + command)


def test_top_level_help_imports_no_subcommand() -> None:
    code = (
        "import sys\n"
        "from earwitness.cli import _parser\n"
        "_parser(None)\n"
        "mods = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted({'stream', 'sinks', 'ingest', 'windowing', 'numpy'} & mods))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
