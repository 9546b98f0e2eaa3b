"""Every shell block in README.md and docs/ is run, parsed, or says why not.

A fenced ``sh``/``bash`` block is run as written (``bash -e``, in a scratch folder) unless the
line before it is a marker::

    <!-- docs-test: parse -->            each ``earwitness …`` line goes through the real parser
                                         (``make <target>`` lines: the target must exist;
                                         ``.venv/bin/python bench/<script>.py``: the script takes
                                         every ``--flag`` shown)
    <!-- docs-test: skip: <why> -->      not run here, and the reason is in the doc

Commands shown outside a ``sh`` block (a plain or ``text`` fence) fail the suite, and so do
unmarked blocks in a file without a test that runs them (``RUN_HERE``).

Run blocks talk to the test broker: ``localhost:9092`` becomes its address and the topic
``earwitness.frames`` a fresh one, the only substitutions. Blocks of one file run in order in
one folder (the kcat examples of docs/wire-format.md build on each other), and what they
produce is checked.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from earwitness.cli import _parser
from tests.support.kafka import REPO, consume
from windowing.wire import decode_frame

BLOCK = re.compile(
    r"(?:<!-- docs-test: (?P<mark>[^>]*?) -->\s*\n)?```(?P<lang>[\w-]*)\n(?P<body>.*?)```", re.S
)
SHELL = ("sh", "bash")
RUN_HERE = {"docs/wire-format.md": 3}
"""Files whose run blocks a test below runs, and how many it expects."""
COMMAND = re.compile(r"^\s*(?:earwitness|make|kcat|\.venv/bin/python|helm|kubectl|docker)\s")
DOCS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
MAKE_TARGETS = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))


def blocks(name: str) -> list[tuple[str, str]]:
    """(mark, body) of every shell block of ``name``; mark is "" (run), "parse" or "skip: …"."""
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


@pytest.mark.parametrize("name", DOCS)
def test_every_block_is_run_parsed_or_says_why_not(name: str) -> None:
    for mark, _ in blocks(name):
        assert mark in ("", "parse") or mark.startswith("skip: "), f"{name}: marker {mark!r}"
        if mark.startswith("skip: "):
            assert len(mark) > len("skip: ") + 10, f"{name}: a skip needs its reason"


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
        if mark != "parse":
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
    runnable = [body for mark, body in blocks("docs/wire-format.md") if mark == ""]
    outputs = []
    for body in runnable:
        script = body.replace("localhost:9092", kafka_bootstrap).replace("earwitness.frames", topic)
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{script}\n{done.stderr}"
        outputs.append(done.stdout)

    first, last = (
        decode_frame(m.key(), m.value(), m.headers(), (0, i))
        for i, m in enumerate(consume(kafka_bootstrap, topic, count=2))
    )
    assert (first.stream_id, first.seq, first.eos, first.n_samples) == ("cam-7", 0, False, 320)
    assert (last.seq, last.eos) == (1, True) and last.ts_ns > first.ts_ns
    assert outputs[2].count("key=cam-7") == 2
