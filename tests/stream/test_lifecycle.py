"""No exit path leaves an engine process behind: every signal, while starting and serving.

A real ``earwitness analyze`` process with the engine core in a process of its own (vLLM's
default), signalled while its engine is still starting (the engine core exists, the engine is
not warm) and while it serves. After the analyzer is gone, none of its descendants may be left:
SIGTERM and SIGINT are handled (start-up included), SIGKILL leaves the guardian
(``stream/engine/guardian.py``) to kill them.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from stream.config import AnalyzerSettings, HttpSettings, KafkaSettings
from tests.support.analyzer import BATCH, AnalyzerProcess, engine_settings
from tests.support.kafka import unique_name
from windowing.config import WindowSettings

pytestmark = [pytest.mark.engine, pytest.mark.kafka, pytest.mark.slow]

ENGINE_START_S = 240


def descendants(pid: int) -> list[psutil.Process]:
    """The analyzer's descendants (but Python's resource tracker), as psutil objects."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "multiprocessing.resource_tracker" not in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def wait_for_engine_core(pid: int, timeout_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        procs = descendants(pid)
        try:
            if any("EngineCore" in " ".join(p.cmdline()) for p in procs):
                return procs
        except psutil.Error:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no engine core process in {timeout_s:.0f} s")


CASES = [
    (phase, signum)
    for phase in ("starting", "serving")
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL)
]


@pytest.mark.parametrize("case", CASES, ids=[f"{p}-{s.name}" for p, s in CASES])
def test_no_engine_process_outlives_the_analyzer(
    case: tuple[str, signal.Signals],
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    phase, signum = case
    topic = new_topic()
    settings = AnalyzerSettings(
        kafka=KafkaSettings(
            bootstrap_servers=kafka_bootstrap,
            frames_topic=topic,
            captions_topic=f"{topic}.captions",
            group_id=unique_name("life"),
        ),
        windowing=WindowSettings(window_s=4, hop_s=2),
        engine=engine_settings(tiny_model_dir, vllm_env={"VLLM_ENABLE_V1_MULTIPROCESSING": "1"}),
        batch=BATCH,
        http=HttpSettings(host="127.0.0.1", port=0),
    )
    with AnalyzerProcess(settings, tmp_path, f"life-{phase}-{signum.name}") as proc:
        assert proc.proc is not None
        procs = wait_for_engine_core(proc.proc.pid, ENGINE_START_S)
        if phase == "serving":
            proc.wait_for_log(r"consuming \S+ as group", ENGINE_START_S)
            procs = descendants(proc.proc.pid)
        else:
            assert "caption engine ready" not in proc.log(), "the engine was already warm"
        proc.proc.send_signal(signum)
        code = proc.wait_exit(120)
        _, alive = psutil.wait_procs(procs, timeout=20)
        log = proc.tail()

    assert not alive, f"left behind after {signum.name} while {phase}: {alive}\n{log}"
    if signum is not signal.SIGKILL:
        assert code == 0, log
