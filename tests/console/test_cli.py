"""``earwitness console --check`` on the settings file docs/console.md shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from console.config import ConsoleSettings
from earwitness.config import load_settings
from tests.support.kafka import REPO

DOC = REPO / "docs" / "console.md"


def _example() -> str:
    (block,) = re.findall(r"```yaml\n(# console\.yaml\n.*?)```", DOC.read_text(), re.S)
    return block


def _check(config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARWITNESS_")}
    return subprocess.run(
        [sys.executable, "-m", "earwitness.cli", "console", "--config", str(config), "--check"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_documented_example_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("EARWITNESS_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "console.yaml"
    config.write_text(_example())
    settings = load_settings(ConsoleSettings, config)
    assert (settings.http.port, settings.listen.windowing.hop_s) == (8470, 10)
    assert _check(config).returncode == 0


def test_check_refuses_an_open_bind_without_auth(tmp_path: Path) -> None:
    config = tmp_path / "console.yaml"
    config.write_text(_example().replace("host: 127.0.0.1", "host: 0.0.0.0"))
    done = _check(config)
    assert done.returncode == 2
    assert "set auth.mode" in done.stderr
