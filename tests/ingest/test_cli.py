"""``earwitness ingest`` as a real process: probes and metrics, SIGHUP and file-change reloads
that touch only the sources that changed, a broken sources file ignored, SIGTERM with ew-eos."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.ingest.conftest import frames_on
from tests.ingest.servers import RtspServer
from tests.support.kafka import REPO

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class _Process:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log_path = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "earwitness.cli", *args],
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout_s: float = 60, count: int = 1) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = list(re.finditer(pattern, self.log()))
            if len(found) >= count:
                return found[count - 1]
            assert self.proc.poll() is None, f"exited {self.proc.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{self.log()}"
            time.sleep(0.2)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _write(path: Path, bootstrap: str, topic: str, sources: dict[str, str]) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": bootstrap, "frames_topic": topic},
                "http": {"port": 0},
                "reload_poll_s": 1,
                "sources": [{"stream_id": k, "url": v} for k, v in sources.items()],
            }
        )
    )


def test_reload_probes_metrics_and_a_clean_stop(
    rtsp: RtspServer, kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic()
    config = tmp_path / "sources.yaml"
    _write(config, kafka_bootstrap, topic, {"keep": rtsp.url("/pcmu"), "drop": rtsp.url("/opus")})
    ingest = _Process(["ingest", "--config", str(config)], tmp_path / "ingest.log")
    try:
        port = int(ingest.wait_for(r"on port (\d+)").group(1))
        ingest.wait_for(r"source keep .* up")
        ingest.wait_for(r"source drop .* up")
        time.sleep(3)
        assert _get(port, "/healthz")[0] == 200
        assert _get(port, "/readyz")[0] == 200
        metrics = _get(port, "/metrics")[1]
        assert 'earwitness_ingest_source_state{state="up",stream_id="keep"} 1.0' in metrics
        assert re.search(r'earwitness_ingest_frames_total\{stream_id="keep"\} [1-9]', metrics)
        assert "rtsp://" not in metrics

        _write(
            config, kafka_bootstrap, topic, {"keep": rtsp.url("/pcmu"), "new": rtsp.url("/pcma")}
        )
        ingest.proc.send_signal(signal.SIGHUP)
        ingest.wait_for(r"sources reloaded: 1 added, 1 removed, 0 restarted, 2 running")
        ingest.wait_for(r"source new .* up")
        time.sleep(3)
        assert 'stream_id="drop"' not in _get(port, "/metrics")[1]

        config.write_text("sources: [ {stream_id: broken")  # no SIGHUP: the file changed
        ingest.wait_for(r"sources file not reloaded, the running sources stay")
        _write(config, kafka_bootstrap, topic, {"keep": rtsp.url("/pcmu")})
        ingest.wait_for(r"sources reloaded: 0 added, 1 removed, 0 restarted, 1 running")
        time.sleep(2)
        ingest.proc.send_signal(signal.SIGTERM)
        assert ingest.proc.wait(60) == 0, ingest.log()
    finally:
        ingest.close()
    got = frames_on(kafka_bootstrap, topic)
    keep = got["keep"]
    assert [f.seq for f in keep] == list(range(len(keep))), "never touched by the reloads"
    assert keep[-1].eos and sum(f.eos for f in keep) == 1
    for sid in ("drop", "new"):
        assert got[sid][-1].eos and [f.seq for f in got[sid]] == list(range(len(got[sid])))


def test_one_url_without_a_file_and_bad_settings(
    rtsp: RtspServer, kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic()
    args = ["ingest", rtsp.url("/aac"), "--stream", "cam-1", "--bootstrap", kafka_bootstrap]
    one = _Process([*args, "--topic", topic], tmp_path / "one.log")
    try:
        one.wait_for(r"source cam-1 .* up")
        time.sleep(2)
        one.proc.send_signal(signal.SIGINT)
        assert one.proc.wait(60) == 0, one.log()
    finally:
        one.close()
    frames = frames_on(kafka_bootstrap, topic)["cam-1"]
    assert frames[-1].eos and len(frames) > 50
    with_password = _Process(
        ["ingest", "rtsp://bob:hunter2@127.0.0.1:1/x", "--stream", "x"], tmp_path / "bad.log"
    )
    assert with_password.proc.wait(60) == 2
    assert "password_file or password_env" in with_password.log()
    assert "hunter2" not in with_password.log()
