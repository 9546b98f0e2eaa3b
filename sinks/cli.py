"""``earwitness alerts --config FILE``: load settings and rules, run the alert runner.

Two actions try rules without running anything:

* ``earwitness alerts eval --rules R --corpus C``: score rules on a labelled corpus
  (:mod:`sinks.evaluate`);
* ``earwitness alerts explain --caption TEXT``: which rules match a caption, and why
  (:mod:`sinks.explain`);
* ``earwitness alerts test-receiver NAME --config FILE``: send a marked test alert (firing,
  then resolved) to one receiver (:mod:`sinks.testreceiver`).

Exit codes: 0 after a clean stop (SIGTERM/SIGINT drain), 2 for invalid configuration or
rules, 1 for a fatal runtime error (the orchestrator restarts the process); ``eval`` exits 1
when a ``--min-*`` threshold is not met.
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from earwitness.audit_trail import Identity
    from earwitness.health import HealthServer, LoopHealth
    from sinks.config import AlertsSettings
    from sinks.metrics import AlertMetrics
    from sinks.rules import RuleSet

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="alerts settings (YAML/TOML); required to run")
    parser.add_argument(
        "--check", action="store_true", help="validate the settings and rules file, then exit"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    _eval_arguments(actions.add_parser("eval", help="score rules on a labelled caption corpus"))
    _explain_arguments(actions.add_parser("explain", help="which rules match a caption, and why"))
    _test_receiver_arguments(
        actions.add_parser("test-receiver", help="send a marked test alert to one receiver")
    )


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", type=Path, required=True, help="the rules file")
    parser.add_argument("--corpus", type=Path, required=True, help="labelled captions (JSONL)")
    parser.add_argument("--json", action="store_true", help="one JSON object per caption")
    parser.add_argument("--min-precision", type=float, help="exit 1 below this total precision")
    parser.add_argument("--min-recall", type=float, help="exit 1 below this total recall")


def _explain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--caption", required=True, help="the caption text ('-': read stdin)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--rules", type=Path, help="the rules file")
    source.add_argument("--config", type=Path, help="alerts settings naming the rules file")
    parser.add_argument("--stream", help="stream id: only the rules whose globs match it")
    parser.add_argument("--json", action="store_true", help="one JSON object per rule")


def _test_receiver_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the receiver's name in the settings")
    parser.add_argument("--config", type=Path, required=True, help="alerts settings (YAML/TOML)")


def run(args: argparse.Namespace) -> int:
    if args.action == "eval":
        from sinks import evaluate

        return evaluate.run(args)
    if args.action == "explain":
        from sinks import explain

        return explain.run(args)
    if args.action == "test-receiver":
        from sinks import testreceiver

        return testreceiver.run(args)
    if args.config is None:
        logger.error(
            "earwitness alerts: --config FILE is required"
            " (or an action: eval, explain, test-receiver)"
        )
        return 2
    return _run_service(args)


def _run_service(args: argparse.Namespace) -> int:
    from earwitness.config import load_settings
    from earwitness.errors import ConfigError, FatalError, TransientError
    from sinks.config import AlertsSettings

    try:
        settings = load_settings(AlertsSettings, args.config)
        rules = _load_rules(settings)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    logger.info(
        "%d rule(s), %d receiver(s): %s",
        len(rules),
        len(settings.receivers),
        ", ".join(settings.receivers),
    )
    from sinks.receivers import plaintext_warnings

    for warning in plaintext_warnings(settings.receivers):
        logger.warning("%s", warning)
    if args.check:
        return 0
    try:
        return _serve(settings, rules)
    except (ConfigError, TransientError) as exc:
        logger.error("cannot start: %s", exc)
        return 2
    except FatalError as exc:
        logger.error("fatal: %s", exc)
        return 1


def _load_rules(settings: AlertsSettings) -> RuleSet:
    """The rules file (a relative ``rules_path`` in the config file is relative to it)."""
    from sinks.rules import load_rules

    rules = load_rules(settings.rules_path)
    rules.check_receivers(set(settings.receivers))
    return rules


def _serve(settings: AlertsSettings, rules: RuleSet) -> int:
    """Owners: this function owns the runner and the HTTP server (thread ``ew-http``)."""
    from earwitness.audit_trail import ensure_audit_topics, start_audit, stop_audit
    from earwitness.health import LoopHealth
    from sinks.metrics import AlertMetrics
    from sinks.runner import AlertRunner
    from sinks.topics import ensure_topics

    ensure_topics(settings.kafka)
    ensure_audit_topics(settings.audit, settings.kafka, create=settings.kafka.create_topics)
    metrics = AlertMetrics()
    health = LoopHealth(settings.health_stall_s)
    runner = AlertRunner(settings, rules, metrics, health)
    server = _http_server(settings, metrics, health)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.stop())
    code = 1
    try:
        trail = start_audit(settings.audit, settings.kafka, _identity(settings))
        try:
            code = runner.run()
        finally:
            stop_audit(trail, code)
        return code
    finally:
        if server is not None:
            server.stop()


def _identity(settings: AlertsSettings) -> Identity:
    """The runner as its audit records name it; a rules file change is a configuration change."""
    import hashlib

    from earwitness.audit_trail import Identity
    from earwitness.config import settings_hash

    return Identity(
        service="alerts",
        instance=settings.kafka.transactional_id,
        config_hash=settings_hash(settings),
        rules_hash=hashlib.sha256(settings.rules_path.read_bytes()).hexdigest(),
    )


def _http_server(
    settings: AlertsSettings, metrics: AlertMetrics, health: LoopHealth
) -> HealthServer | None:
    """``/metrics``, ``/healthz``, ``/readyz`` on ``metrics_port``, started; None when off."""
    from earwitness.health import HealthServer

    if settings.metrics_port is None:
        return None
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    server = HealthServer(
        settings.metrics_host, settings.metrics_port, health, metrics.registry, token=token
    )
    server.start()
    return server
