"""The ``earwitness`` command: wires subcommands to the modules that implement them.

Each subcommand lives in its own module, which exposes ``add_arguments(parser)`` and
``run(args) -> int``. Only the module of the subcommand being run is imported (``earwitness
--help`` imports none), so ``earwitness alerts`` never imports vLLM, numpy or the analyzer, and
an image that ships only some packages still runs its own subcommands. Logging is configured
here, once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("stream.cli", "run the analyzer: frames → windows → captions (exactly once)"),
    "alerts": ("sinks.cli", "run the alert runner: captions → rules → receivers"),
    "ingest": ("ingest.cli", "bring live sources (RTSP, HLS, HTTP, UDP, devices) onto Kafka"),
    "publish": ("ingest.publish", "publish recordings (audio or video files) as frames"),
    "tail": ("earwitness.tail", "print caption events (or alerts) as they arrive"),
    "console": ("console.cli", "serve the live web console: streams, alerts, search, listen"),
    "export": ("export.cli", "write captions (and alerts) as Parquet files, exactly once"),
    "make-test-model": (
        "stream.engine.testmodel",
        "write a random-weight Qwen3-Omni model directory (tests, demo, benchmarks)",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(_command_in(argv)).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(_module(args.command).run(args))


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, if any (the first word that is one)."""
    return next((word for word in argv if word in SUBCOMMANDS), None)


def _parser(command: str | None) -> argparse.ArgumentParser:
    """Every subcommand is listed; only ``command``'s module is imported, for its arguments."""
    parser = argparse.ArgumentParser(
        prog="earwitness", description="Real-time audio captioning and alerting on Kafka."
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        subparser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            _module(name).add_arguments(subparser)
    return parser


def _module(command: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(SUBCOMMANDS[command][0])


if __name__ == "__main__":
    raise SystemExit(main())
