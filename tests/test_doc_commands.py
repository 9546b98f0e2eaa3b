"""Every shell block in README.md and docs/ is run, parsed, or says why not.

A fenced ``sh``/``bash`` block is run as written (``bash -e``, in a scratch folder) unless the
line before it is a marker::

    <!-- docs-test: parse: <why not run> -->   each ``earwitness …`` line goes through the real
                                              parser (``make <target>`` lines: the target must
                                              exist; ``.venv/bin/python bench/<script>.py``: the
                                              script takes every ``--flag`` shown)
    <!-- docs-test: skip: <why> -->            not run here, and the reason is in the doc

Commands shown outside a ``sh`` block (a plain or ``text`` fence) fail the suite, and so do
unmarked blocks in a file without a test that runs them (``RUN_HERE``).

Run blocks see the repository as a user's checkout does: the scratch folder holds a copy of
``examples/`` (commands write next to their settings file) and a link to ``tests/``, and
``earwitness`` is this interpreter's. Blocks of one file run in order in one folder (the kcat
examples of docs/wire-format.md build on each other), and what they produce is checked. The
only changes are where the commands talk to: ``localhost:9092`` in the text becomes the test
broker and the topic ``earwitness.frames`` a fresh one; ``EARWITNESS_*`` settings variables
of the caller are dropped, and a page's test sets those it needs (the broker, a receiver's URL).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest

from earwitness.cli import _parser
from stream.engine.families import ModelFamily, detect_family
from tests.sinks.sinkutil import serving
from tests.support.kafka import REPO, consume
from windowing.wire import decode_frame

BLOCK = re.compile(
    r"(?:<!-- docs-test: (?P<mark>[^>]*?) -->\s*\n)?```(?P<lang>[\w-]*)\n(?P<body>.*?)```", re.S
)
SHELL = ("sh", "bash", "shell", "console")
RUN_HERE = {
    "docs/alerts.md": 2,
    "docs/console.md": 1,
    "docs/export.md": 1,
    "docs/models.md": 1,
    "docs/sources.md": 1,
    "docs/wire-format.md": 3,
}
"""Files whose run blocks a test below runs, and how many it expects."""
BLOCK_TIMEOUT_S = 180
"""Per block: a few ``earwitness`` commands of ~3 s each, on a loaded 2-core host."""
COMMAND = re.compile(r"^\s*(?:earwitness|make|kcat|\.venv/bin/python|helm|kubectl|docker)\s")
DOCS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
MAKE_TARGETS = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))


def blocks(name: str) -> list[tuple[str, str]]:
    """(mark, body) of every shell block of ``name``; mark is "" (run), "parse: …" or "skip: …"."""
    text = (REPO / name).read_text(encoding="utf-8")
    return [
        (m.group("mark") or "", m.group("body"))
        for m in BLOCK.finditer(text)
        if m.group("lang") in SHELL
    ]


def commands(body: str) -> list[str]:
    """Logical lines: continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    lines = [re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines()]
    return [line for line in lines if line]


def argv_of(line: str) -> list[str]:
    """``earwitness publish a.wav [--realtime] [--start-time ISO]`` → argv, options kept."""
    line = re.sub(r"\s[<>]\s*\S+", " ", line)  # redirections: not the command's arguments
    return shlex.split(line.replace("[", " ").replace("]", " "))[1:]


def checkout(folder: Path) -> Path:
    """``folder`` as the repository root the docs' commands are typed in."""
    shutil.copytree(REPO / "examples", folder / "examples")
    (folder / "tests").symlink_to(REPO / "tests")
    return folder


def tool_env(**settings: str) -> dict[str, str]:
    """This environment without its ``EARWITNESS_*`` variables, ``earwitness`` on the PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARWITNESS_")}
    env["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), env.get("PATH", "")])
    return env | settings


def run_blocks(
    name: str, folder: Path, env: dict[str, str], edit: Callable[[str], str] = str
) -> list[subprocess.CompletedProcess[str]]:
    """Run the unmarked blocks of ``name`` in order in ``folder`` (``bash -e``), each after
    ``edit``; every one must exit 0."""
    done = []
    for mark, body in blocks(name):
        if mark:
            continue
        script = edit(body)
        ran = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
        assert ran.returncode == 0, f"{name}:\n{script}\n{ran.stdout[-2000:]}\n{ran.stderr[-4000:]}"
        done.append(ran)
    return done


@pytest.mark.parametrize("name", DOCS)
def test_every_block_is_run_parsed_or_says_why_not(name: str) -> None:
    for mark, _ in blocks(name):
        why = re.fullmatch(r"(?:parse|skip): (.*)", mark, re.S)
        assert mark == "" or why, f"{name}: marker {mark!r} (parse: <why>, skip: <why>)"
        assert mark == "" or len(why.group(1).strip()) > 10, f"{name}: {mark!r} needs its reason"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", DOCS)
def test_commands_are_shown_in_shell_blocks(name: str) -> None:
    """A command in a plain or ``text`` block would escape every test below."""
    text = (REPO / name).read_text(encoding="utf-8")
    for m in BLOCK.finditer(text):
        if m.group("lang") in SHELL:
            continue
        found = [line for line in m.group("body").splitlines() if COMMAND.match(line)]
        assert not found, f"{name}: commands outside a sh block: {found}"


@pytest.mark.parametrize("name", DOCS)
def test_run_blocks_are_in_files_whose_blocks_are_run(name: str) -> None:
    """An unmarked block promises it runs: only the files of RUN_HERE have a test running it."""
    runnable = [body for mark, body in blocks(name) if mark == ""]
    assert len(runnable) == RUN_HERE.get(name, 0), (
        f"{name}: {len(runnable)} unmarked blocks; mark them parse/skip or run them in a test"
    )


def _parse_bench(name: str, line: str) -> None:
    """``.venv/bin/python bench/<script>.py --flag …``: the script exists and takes every flag."""
    argv = argv_of(line)
    script = REPO / argv[0]
    assert script.is_file(), f"{name}: no {argv[0]}"
    source = script.read_text(encoding="utf-8")
    for flag in (a.split("=")[0] for a in argv[1:] if a.startswith("--")):
        assert f'"{flag}"' in source, f"{name}: {argv[0]} has no option {flag}"


@pytest.mark.parametrize("name", DOCS)
def test_documented_earwitness_commands_parse(name: str) -> None:
    for mark, body in blocks(name):
        if not mark.startswith("parse: "):
            continue
        for line in commands(body):
            if line.startswith("make "):
                assert line.split()[1] in MAKE_TARGETS, f"{name}: no make target in {line!r}"
                continue
            if line.startswith(".venv/bin/python bench/"):
                _parse_bench(name, line)
                continue
            assert line.startswith("earwitness "), f"{name}: {line!r} in a parse block"
            argv = argv_of(line)
            try:
                _parser(argv[0]).parse_args(argv)
            except SystemExit as exc:
                raise AssertionError(f"{name}: `{line}` does not parse") from exc


@pytest.mark.kafka
def test_the_kcat_examples_of_the_wire_format_run_and_make_frames(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed (.ci/run installs it from Debian)")
    topic = new_topic()

    def edit(body: str) -> str:
        return body.replace("localhost:9092", kafka_bootstrap).replace("earwitness.frames", topic)

    outputs = [r.stdout for r in run_blocks("docs/wire-format.md", tmp_path, tool_env(), edit)]

    first, last = (
        decode_frame(m.key(), m.value(), m.headers(), (0, i))
        for i, m in enumerate(consume(kafka_bootstrap, topic, count=2))
    )
    assert (first.stream_id, first.seq, first.eos, first.n_samples) == ("cam-7", 0, False, 320)
    assert (last.seq, last.eos) == (1, True) and last.ts_ns > first.ts_ns
    assert outputs[2].count("key=cam-7") == 2


@pytest.mark.slow  # eight earwitness commands, ~3 s each
def test_the_alerts_commands_check_explain_evaluate_and_reach_a_receiver(tmp_path: Path) -> None:
    with serving() as ops:
        env = tool_env(EARWITNESS_ALERTS_RECEIVERS__OPS__URL=f"{ops.url}/hooks/earwitness")
        first, second = run_blocks("docs/alerts.md", checkout(tmp_path), env)

    assert "16 rule(s), 6 receiver(s)" in first.stderr
    assert "glass-breaking: FIRES" in first.stdout
    assert first.stdout.count("test alert delivered") == 2
    sent = [(r.path, r.json()["data"]) for r in ops.accepted()]  # type: ignore[index]
    assert [(path, d["rule_id"], d["state"]) for path, d in sent] == [
        ("/hooks/earwitness", "earwitness-test", "firing"),
        ("/hooks/earwitness", "earwitness-test", "resolved"),
    ]
    assert all(r.headers.get("webhook-signature", "").startswith("v1,") for r in ops.accepted())
    assert "corpus tests/sinks/corpus · 224 captions" in first.stdout

    assert "gunshot: does not fire" in second.stdout and "[hedged: 'could']" in second.stdout
    assert "screaming: FIRES" in second.stdout
    assert "corpus tests/sinks/corpus/heldout.jsonl · 70 captions" in second.stdout
    summary = json.loads(second.stdout.splitlines()[-1])["summary"]
    assert summary["total"]["precision"] >= 0.97 and summary["total"]["recall"] >= 0.98


@pytest.mark.slow  # two earwitness commands
def test_the_console_and_export_checks_pass_on_the_examples(tmp_path: Path) -> None:
    folder = checkout(tmp_path)
    run_blocks("docs/console.md", folder, tool_env())  # exit 0: the settings are valid
    (export,) = run_blocks("docs/export.md", folder, tool_env())
    assert "export settings are valid; destination out/lake" in export.stderr
    assert not folder.joinpath("examples", "out").exists(), "a --check wrote the destination"


@pytest.mark.slow  # two model directories with transformers (~15 s of CPU each)
def test_the_test_models_of_the_models_page_are_their_families(tmp_path: Path) -> None:
    run_blocks("docs/models.md", tmp_path, tool_env())
    assert detect_family(str(tmp_path / ".cache/test-model-qwen25")) is ModelFamily.QWEN2_5_OMNI
    thinking = detect_family(str(tmp_path / ".cache/test-model-thinking"))
    assert thinking is ModelFamily.QWEN3_OMNI_THINKING


@pytest.mark.kafka
def test_the_bundled_sample_is_published_as_one_stream(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic()  # the analyzer or ingest would have created it
    env = tool_env(
        EARWITNESS_ANALYZER_KAFKA__BOOTSTRAP_SERVERS=kafka_bootstrap,
        EARWITNESS_ANALYZER_KAFKA__FRAMES_TOPIC=topic,
    )
    (ran,) = run_blocks("docs/sources.md", checkout(tmp_path), env)
    assert "as stream 'sample': 3657 frames, 73.1 s of audio" in ran.stderr

    records = consume(kafka_bootstrap, topic, count=3657, timeout_s=120)
    frames = [decode_frame(m.key(), m.value(), m.headers(), (0, m.offset())) for m in records]
    assert [f.seq for f in frames] == list(range(3657))
    assert {f.stream_id for f in frames} == {"sample"}
    assert [f.eos for f in frames].index(True) == 3656
