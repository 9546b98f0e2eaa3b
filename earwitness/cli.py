"""The ``earwitness`` command: wires subcommands to the modules that implement them.

Each subcommand lives in its own module, which exposes ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their subcommand runs, so ``earwitness
alerts`` never imports vLLM. Logging is configured here, once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("stream.analyze_cli", "run the analyzer: frames → windows → captions"),
    "publish": ("stream.publish", "publish an audio file as live frames"),
    "tail": ("stream.tail", "print caption events (or alerts) as they arrive"),
    "alerts": ("sinks.cli", "run the alert runner: captions → rules → receivers"),
    "make-test-model": ("stream.testmodel", "write a random-weight Qwen3-Omni model directory"),
    "roundtrip": ("stream.roundtrip", "produce and consume through a broker (smoke check)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    return int(module.run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earwitness", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        _add_arguments_lazily(command, module_name)
    return parser


def _add_arguments_lazily(command: argparse.ArgumentParser, module_name: str) -> None:
    """Subcommand arguments come from their module; a missing module leaves it bare."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return
    module.add_arguments(command)


if __name__ == "__main__":
    raise SystemExit(main())
