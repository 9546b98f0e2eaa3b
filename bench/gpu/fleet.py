"""The processes of an end-to-end phase: a broker and N analyzers in one consumer group.

Runs where the analyzer runs (the borrowed GPU machine, or here on CPU as a dry run); never
imported by tests or CI. Who owns what (``e2e.run_phase`` stops each in ``finally``)::

    Broker            scripts/kafka-local in OUT/kafka-<phase> (or an external one)
    Fleet             N x AnalyzerProcess, one consumer group, analyzer i on the GPUs
    └── AnalyzerProcess   ``earwitness analyze`` in its own process session, with
                          CUDA_VISIBLE_DEVICES = its slice of the machine's GPUs

Analyzer i gets ``group_instance_id`` ``a<i>`` (so transactional id ``<group>-a<i>``), its own
HTTP port, and ``tensor_parallel_size`` consecutive GPUs: with 2 GPUs, two data-parallel
analyzers get "0" and "1", one tensor-parallel analyzer gets "0,1". ``Fleet.start(k)`` starts
analyzer k and waits until its /readyz is 200: a join while streams run is a rebalance under
load (the partitions move to the new member once its engine is warm; read_committed readers see
each window once). ``Fleet.join(k)`` does the same without blocking, while the levels run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


class Broker:
    """A private broker through scripts/kafka-local (owner: this phase), or an external one."""

    def __init__(self, out: Path, name: str, bootstrap: str | None) -> None:
        self.dir = out / f"kafka-{name}"
        self.external = bootstrap
        self.bootstrap = bootstrap or ""

    def start(self) -> str:
        if not self.external:
            res = subprocess.run(
                [str(REPO / "scripts" / "kafka-local"), "start", "--dir", str(self.dir)],
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
            if res.returncode != 0:
                raise RuntimeError(f"kafka-local start failed: {res.stderr[-2000:]}")
            self.bootstrap = res.stdout.strip().splitlines()[-1].removeprefix("bootstrap=")
        return self.bootstrap

    def stop(self) -> None:
        if not self.external:
            subprocess.run(
                [str(REPO / "scripts" / "kafka-local"), "stop", "--dir", str(self.dir)],
                capture_output=True,
                check=False,
                timeout=120,
            )


class AnalyzerProcess:
    """``earwitness analyze`` in its own process session (owner: the Fleet)."""

    def __init__(
        self, config_path: Path, log_path: Path, port: int, devices: str | None = None
    ) -> None:
        self.config_path, self.log_path, self.port = config_path, log_path, port
        self.devices = devices
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=f"{REPO}:{os.environ.get('PYTHONPATH', '')}")
        if self.devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.devices
        cmd = [sys.executable, "-m", "earwitness.cli", "analyze", "--config", str(self.config_path)]
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # run_all.sh kills this session after the phase, should this process die first
        self.log_path.with_suffix(".pid").write_text(str(self.proc.pid))

    def wait_ready(self, timeout_s: float) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout_s:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"analyzer exited with {self.proc.returncode} before ready")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - began
            except OSError:
                pass
            time.sleep(1.0)
        raise RuntimeError(f"analyzer not ready after {timeout_s:.0f} s")

    def metrics(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except OSError as exc:
            return f"unavailable: {exc!r}"

    def stop(self) -> int | None:
        """SIGTERM (drain, commit), then SIGKILL the whole session (the engine core too)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(90)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        return self.proc.returncode


def devices_of(index: int, tensor_parallel: int, gpus: int | None) -> str | None:
    """Analyzer ``index``'s CUDA_VISIBLE_DEVICES: ``tensor_parallel`` consecutive GPUs
    (None on CPU, where ``gpus`` is None)."""
    if gpus is None:
        return None
    first = index * tensor_parallel
    if first + tensor_parallel > gpus:
        raise ValueError(f"analyzer {index} needs GPUs {first}..{first + tensor_parallel - 1}")
    return ",".join(str(first + k) for k in range(tensor_parallel))


class Fleet:
    """N analyzers of one config, one consumer group (owner: the phase)."""

    def __init__(
        self, cfg: dict[str, Any], out: Path, name: str, ports: list[int], gpus: int | None
    ) -> None:
        self.analyzers: list[AnalyzerProcess] = []
        tp = int(cfg["engine"].get("tensor_parallel_size") or 1)
        for i, port in enumerate(ports):
            mine = {**cfg, "http": {**cfg["http"], "port": port}}
            mine["kafka"] = {**cfg["kafka"], "group_instance_id": f"a{i}"}
            path = out / f"{name}.analyzer-{i}.yaml"
            path.write_text(yaml.safe_dump(mine, sort_keys=False))
            log_path = out / (f"{name}.analyzer.log" if i == 0 else f"{name}.analyzer-{i}.log")
            self.analyzers.append(AnalyzerProcess(path, log_path, port, devices_of(i, tp, gpus)))
        self.ready_s: dict[int, float] = {}
        self.joined_at: dict[int, float] = {}
        """Wall clock (s) when a joining analyzer was started, and when it was ready (its
        consumer joins the group once its engine is warm: the rebalance starts then)."""
        self.ready_at: dict[int, float] = {}
        self.join_errors: dict[int, str] = {}

    def start(self, index: int, timeout_s: float) -> float:
        """Start analyzer ``index``; block until it is ready (seconds it took)."""
        self.analyzers[index].start()
        self.ready_s[index] = self.analyzers[index].wait_ready(timeout_s)
        return self.ready_s[index]

    def join(self, index: int, timeout_s: float) -> None:
        """Start analyzer ``index`` while streams run; thread ``fleet-join-<i>`` (daemon, ends
        when it is ready or gives up) records when it was ready, or why not."""

        def wait() -> None:
            try:
                self.ready_s[index] = self.analyzers[index].wait_ready(timeout_s)
                self.ready_at[index] = time.time()
            except RuntimeError as exc:
                self.join_errors[index] = str(exc)

        self.joined_at[index] = time.time()
        self.analyzers[index].start()
        threading.Thread(target=wait, name=f"fleet-join-{index}", daemon=True).start()

    def metrics(self) -> dict[int, str]:
        return {i: a.metrics() for i, a in enumerate(self.analyzers) if a.proc is not None}

    def stop(self) -> dict[int, int | None]:
        return {i: a.stop() for i, a in enumerate(self.analyzers)}
