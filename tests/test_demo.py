"""``make demo`` (``scripts/demo``): the whole path on this machine, and its GPU branch."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.kafka import REPO

DEMO = REPO / "scripts" / "demo"


def run_demo(env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EARWITNESS_")}
    return subprocess.run(
        ["bash", str(DEMO)],
        cwd=REPO,
        env={**clean, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_the_gpu_branch_needs_the_weights_and_says_how_to_get_them(tmp_path: Path) -> None:
    done = run_demo({"DEMO_ENGINE": "gpu", "DEMO_MODEL": str(tmp_path / "none")}, 60)
    assert done.returncode == 2, done.stderr
    assert f"no model at {tmp_path / 'none'}" in done.stderr
    assert "huggingface-cli download Qwen/Qwen3-Omni-30B-A3B-Captioner" in done.stderr
    assert "Kafka" not in done.stdout, "it stops before starting anything"


@pytest.mark.slow
def test_the_gpu_engine_lock_resolves_for_linux_x86_64() -> None:
    """What `make venv-gpu` installs exists on PyPI for CPython 3.11 manylinux (no download)."""
    done = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "uv"),
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "-r",
            str(REPO / "helm" / "requirements" / "analyzer-gpu.lock"),
            "--python-version",
            "3.11",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--target",
            "/tmp/earwitness-gpu-dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"\+ vllm==0\.26\.0", done.stderr + done.stdout)


@pytest.mark.slow
@pytest.mark.engine
def test_make_demo_runs_the_whole_path_on_the_cpu() -> None:
    """The README's first command, as a new user runs it (the CPU engine; its own broker)."""
    try:
        done = run_demo({"DEMO_ENGINE": "cpu"}, 1200)
    finally:
        subprocess.run([str(REPO / "scripts" / "kafka-local"), "stop"], check=False, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Caption events (earwitness tail)" in out
    assert len(re.findall(r"^\d\d:\d\d:\d\d cam-12 ", out, re.M)) == 6, out[-3000:]
    delivered = re.search(r"^(\d+) alert\(s\) delivered", out, re.M)
    assert delivered and int(delivered.group(1)) >= 1, out[-3000:]
