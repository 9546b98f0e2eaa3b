"""The images, built here (scripts/build-images) and run as pods run them (scripts/run-image).

The ``images`` tier (also ``slow``): one session build of every CPU image (cold: minutes; warm,
with ~/.cache/earwitness/images and uv's cache: the project layers only), then each image's
entrypoint with the chart's arguments against the test broker: the CPU analyzer captions a
stream with the tiny model mounted read-only, the alert runner delivers a webhook, ingest and the
console start and answer their probes. The GPU image: ``EARWITNESS_TEST_GPU_IMAGE=1`` (~10 GB).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from sinks.formats import verify_webhook
from stream.config import AnalyzerSettings, HttpSettings, KafkaSettings
from stream.engine.testmodel import write_test_model
from tests.images.support import (
    ARCHIVED,
    BUILT,
    Container,
    archive_index,
    build,
    readable,
    run,
    tag_of,
)
from tests.sinks.sinkutil import Receiver, caption_event, handler
from tests.support.analyzer import BATCH, engine_settings
from tests.support.kafka import produce, unique_name
from tests.support.streams import CaptionWatch, Feeder, covered
from windowing.config import WindowSettings

pytestmark = [pytest.mark.images, pytest.mark.slow]

ENGINE_START_S = 600
"""The tiny model's engine start in a container on a loaded 2-core host (~1-3 min unloaded)."""
SUBCOMMANDS = {
    "analyzer-cpu": ["analyze", "publish", "tail", "make-test-model"],
    "alerts": ["alerts", "tail"],
    "ingest": ["ingest", "publish"],
    "console": ["console"],
}
"""What each image runs: its service, and the tools it ships."""
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.fixture(scope="session")
def built() -> str:
    """Build the CPU images once; returns the git commit they were built from."""
    if os.geteuid() != 0:
        message = "building images needs root (mmdebstrap, buildah)"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so this is an error)")
        pytest.skip(message)
    revision = _git("rev-parse", "HEAD")
    build("--no-archive", *(name for name in BUILT if name not in ARCHIVED))
    build(*ARCHIVED)
    return revision


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A directory mounted read-only at /etc/earwitness, as the chart's ConfigMap is."""
    path = tmp_path / "etc"
    path.mkdir()
    return path


def _mount(path: Path, target: str) -> tuple[str, str]:
    return ("-v", f"{readable(path)}:{target}:ro")


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_for(condition: Callable[[], object], timeout_s: float, why: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s\n{why()}"
        time.sleep(0.2)


@pytest.mark.parametrize("name", BUILT)
def test_each_image_runs_its_commands(built: str, name: str) -> None:
    done = run(name, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: earwitness" in done.stdout
    for command in SUBCOMMANDS[name]:
        done = run(name, command, "--help")
        assert done.returncode == 0, f"{name}: {command} --help\n{done.stderr[-3000:]}"


PROBE = r"""
id -u; id -g
touch /probe 2>/dev/null && echo root-writable || echo root-read-only
for tool in gcc cc g++ c++ clang make pip pip3 uv; do command -v "$tool" || true; done
ls /opt/venv/bin | grep -E '^(pip[0-9.]*|uv|uvx)$' || true
ls -A /root/.cache /var/lib/apt/lists /var/cache/apt/archives 2>/dev/null | grep -v '^lock$' \
  | grep -v ':$' | grep -v '^partial$' || true
"""


@pytest.mark.parametrize("name", BUILT)
def test_runtime_is_non_root_read_only_without_build_tools(built: str, name: str) -> None:
    done = run(name, "-c", PROBE, options=("--entrypoint", "sh"))
    assert done.returncode == 0, done.stderr
    uid, gid, root, *found = done.stdout.split()
    assert (uid, gid, root) == ("10001", "10001", "root-read-only")
    assert found == [], f"{name} has build tools or caches: {found}"


@pytest.mark.parametrize("name", BUILT)
def test_no_certificate_of_the_build_machine_is_left(built: str, name: str) -> None:
    """The build's downloads trust this machine's CA bundle (a TLS-inspecting proxy's CA):
    the image's bundle is Debian's own."""
    local = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    if not local:
        pytest.skip("this machine trusts no certificate of its own")
    done = run(name, "/etc/ssl/certs/ca-certificates.crt", options=("--entrypoint", "cat"))
    assert done.returncode == 0, done.stderr
    bundle = done.stdout.replace("\r", "")
    for cert in local:
        body = cert.read_text().strip().splitlines()[1]
        assert body not in bundle, f"{cert} ended up in the {name} image"


@pytest.mark.parametrize("name", ARCHIVED)
def test_archive_carries_the_tag_and_annotations(built: str, name: str) -> None:
    index = archive_index(name)
    (manifest,) = index["manifests"]
    annotations = manifest.get("annotations", {})
    assert annotations["org.opencontainers.image.ref.name"] == tag_of(name)
    report = (Path("build/images") / f"{name}.txt").read_text()
    assert f"org.opencontainers.image.revision={built}" in report  # or {built}-dirty
    assert "org.opencontainers.image.source=" in report
    assert "## Python packages (/opt/venv)" in report and "earwitness==0.1.0" in report


def _analyzer_settings(bootstrap: str, frames: str) -> AnalyzerSettings:
    return AnalyzerSettings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap,
            frames_topic=frames,
            captions_topic=f"{frames}.captions",
            group_id=unique_name("image"),
            commit_interval_ms=200,
        ),
        windowing=WindowSettings(window_s=4, hop_s=2, min_window_s=1, idle_timeout_s=600),
        engine=engine_settings(Path("/models/tiny")),
        batch=BATCH,
        http=HttpSettings(host="127.0.0.1", port=0),
    )


@pytest.mark.kafka
@pytest.mark.engine
def test_the_cpu_analyzer_image_captions_a_stream(
    built: str,
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    conf: Path,
    tmp_path: Path,
) -> None:
    """The chart's command line, the settings file where the chart mounts it, the tiny model on
    a read-only volume: frames in, one caption per window out, then a clean SIGTERM."""
    model = write_test_model(tmp_path / "model")
    settings = _analyzer_settings(kafka_bootstrap, new_topic())
    (conf / "analyzer.yaml").write_text(settings.model_dump_json())
    feeder = Feeder(kafka_bootstrap, settings.kafka.frames_topic, ["cam-image"], seconds=8)
    expected = feeder.expected(4, 2, 1)
    watch = CaptionWatch(kafka_bootstrap, settings.kafka.captions_topic)
    options = (*_mount(model, "/models/tiny"), *_mount(conf, "/etc/earwitness"))
    args = ("--log-level", "info", "analyze", "--config", "/etc/earwitness/analyzer.yaml")
    try:
        with Container("analyzer-cpu", tmp_path / "analyzer.log", *args, options=options) as pod:
            port = int(pod.wait_for_log(r"serving /metrics\S*.* on port (\d+)", 120).group(1))
            pod.wait_for_log(r"assigned \[", ENGINE_START_S)
            assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            feeder.publish_rest()
            watch.wait_for(covered(expected), 300, pod.tail)
            assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 200
            assert pod.stop() == 0, pod.tail()
    finally:
        watch.close()
    captions = [e for e in watch.events if e.stream_id == "cam-image"]
    assert {e.model for e in captions} == {"/models/tiny"}
    assert all(e.caption for e in captions), "the tiny model writes (random) text"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on the host's loopback (the container shares the host network)."""
    ref: list[Receiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(ref))
    server.daemon_threads = True
    ref.append(Receiver(server))
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="image-webhook-receiver", daemon=True
    )
    thread.start()
    yield ref[0]
    server.shutdown()
    server.server_close()
    thread.join(5)


RULES = {"rules": [{"id": "gunshot", "severity": "critical", "match": {"any": ["gunshot"]}}]}


@pytest.mark.kafka
def test_the_alerts_image_delivers_a_webhook(
    built: str,
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    receiver: Receiver,
    conf: Path,
) -> None:
    captions = new_topic()
    (conf / "rules.yaml").write_text(yaml.safe_dump(RULES))
    config = {
        "rules_path": "rules.yaml",
        "kafka": {
            "bootstrap_servers": kafka_bootstrap,
            "captions_topic": captions,
            "state_topic": new_topic(config={"cleanup.policy": "compact"}),
            "dead_letter_topic": new_topic(),
            "group_id": f"alerts-{captions}",
            "transactional_id": f"alerts-{captions}",
            "batch_wait_ms": 100,
            "start_at": "beginning",  # the caption is produced before the runner starts
        },
        "receivers": {"ops": {"type": "webhook", "url": receiver.url, "secret": SECRET}},
        "metrics_port": None,
    }
    (conf / "alerts.yaml").write_text(yaml.safe_dump(config))
    event = caption_event(0, "A gunshot echoes down the corridor.", stream_id="cam-7")
    produce(kafka_bootstrap, captions, [(b"cam-7", event.to_json())])
    args = ("--log-level", "info", "alerts", "--config", "/etc/earwitness/alerts.yaml")
    options = _mount(conf, "/etc/earwitness")
    with Container("alerts", conf.parent / "alerts.log", *args, options=options) as pod:
        _wait_for(receiver.accepted, 240, pod.tail)
        assert pod.stop() == 0, pod.tail()
    request = receiver.accepted()[0]
    body = request.json()
    assert isinstance(body, dict) and body["type"] == "earwitness.alert.firing", body
    assert (body["data"]["stream_id"], body["data"]["rule_id"]) == ("cam-7", "gunshot")
    assert verify_webhook(SECRET, request.headers, request.body, int(time.time()))


@pytest.mark.kafka
def test_the_ingest_image_starts_and_answers_its_probes(
    built: str,
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    conf: Path,
    tmp_path: Path,
) -> None:
    settings = {"kafka": {"bootstrap_servers": kafka_bootstrap, "frames_topic": new_topic()},
                "http": {"host": "127.0.0.1", "port": 0}, "sources": []}  # fmt: skip
    (conf / "ingest.yaml").write_text(yaml.safe_dump(settings))
    args = ("ingest", "--config", "/etc/earwitness/ingest.yaml")
    check = run("ingest", *args, "--check", options=_mount(conf, "/etc/earwitness"))
    assert check.returncode == 0, check.stderr
    with Container("ingest", tmp_path / "ingest.log", *args,
                   options=_mount(conf, "/etc/earwitness")) as pod:  # fmt: skip
        port = int(pod.wait_for_log(r"on port (\d+)", 120).group(1))
        _wait_for(lambda: _get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 120, pod.tail)
        assert b"earwitness_ingest" in _get(f"http://127.0.0.1:{port}/metrics")[1]
        assert pod.stop() == 0, pod.tail()


@pytest.mark.kafka
def test_the_console_image_starts_and_serves_its_page(
    built: str,
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    conf: Path,
    tmp_path: Path,
) -> None:
    frames = new_topic()
    settings = {
        "kafka": {
            "bootstrap_servers": kafka_bootstrap,
            "captions_topic": new_topic(),
            "frames_topic": frames,
            "alerts_topic": new_topic(),
            "acks_topic": new_topic(config={"cleanup.policy": "compact"}),
        },
        "store": {"path": "/tmp/console.db"},
        "http": {"host": "127.0.0.1", "port": 0},
        "metrics_port": 0,
    }
    (conf / "console.yaml").write_text(yaml.safe_dump(settings))
    args = ("console", "--config", "/etc/earwitness/console.yaml")
    check = run("console", *args, "--check", options=_mount(conf, "/etc/earwitness"))
    assert check.returncode == 0, check.stderr
    with Container("console", tmp_path / "console.log", *args,
                   options=_mount(conf, "/etc/earwitness")) as pod:  # fmt: skip
        port = int(pod.wait_for_log(r"console at http://127\.0\.0\.1:(\d+)/", 180).group(1))
        status, page = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and b"earwitness" in page.lower()
        assert pod.stop() == 0, pod.tail()


@pytest.mark.skipif(
    os.environ.get("EARWITNESS_TEST_GPU_IMAGE") != "1",
    reason="the GPU image is ~10 GB: EARWITNESS_TEST_GPU_IMAGE=1 builds and checks it",
)
def test_the_gpu_image_has_vllm_a_compiler_and_its_cuda_libraries(tmp_path: Path) -> None:
    """Without a GPU here: vLLM imports, gcc compiles against Python.h (what Triton does at
    run time), and every shared library of torch and vLLM resolves (``ldd``)."""
    build("--gpu", "--no-archive", "analyzer-gpu")
    shutil.copy(Path(__file__).with_name("gpu-check.sh"), tmp_path / "gpu-check.sh")
    options = ("--entrypoint", "sh", *_mount(tmp_path, "/check"))
    done = run("analyzer-gpu", "/check/gpu-check.sh", options=options, timeout_s=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["vllm"] == "0.26.0" and facts["torch"].startswith("2.11.0"), facts
    assert facts["unresolved"] == [], facts
