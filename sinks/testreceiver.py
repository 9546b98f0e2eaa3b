"""``earwitness alerts test-receiver NAME --config FILE``: send a marked test alert to one receiver.

Builds the receiver's real sender from the settings (URL, secret, TLS, Kafka client all as the
runner would) and sends a ``firing`` test alert, then its ``resolved`` (so Alertmanager or a
pager closes it again), one attempt each within the receiver's ``timeout_s``. The alert is
marked everywhere a receiver shows it: rule id ``earwitness-test``, label ``test: "true"``,
stream ``earwitness-test-receiver`` and a description that says it is a test. Each run has
a fresh incident id, so receivers that dedupe do not swallow a second try.

Exit codes: 0 both delivered; 1 a delivery failed (the reason is printed); 2 bad settings or
no receiver of that name.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from typing import TextIO

from earwitness.config import load_settings
from earwitness.errors import ConfigError
from sinks.alerts import Alert, AlertState, Resolution
from sinks.config import AlertsSettings
from sinks.errors import DeliveryFailed, DeliveryRejected
from sinks.rules import Severity
from sinks.senders import Sender, build_sender

logger = logging.getLogger(__name__)

TEST_RULE_ID = "earwitness-test"
TEST_STREAM_ID = "earwitness-test-receiver"


def test_alerts(now_ns: int | None = None) -> tuple[Alert, Alert]:
    """A firing test alert and its resolution, with a fresh incident id."""
    now_ns = now_ns or time.time_ns()
    firing = Alert(
        alert_id=str(uuid.uuid4()),
        state=AlertState.FIRING,
        rule_id=TEST_RULE_ID,
        description="earwitness test alert (earwitness alerts test-receiver): not an incident",
        severity=Severity.INFO,
        stream_id=TEST_STREAM_ID,
        labels={"test": "true"},
        started_ns=now_ns,
        last_match_ns=now_ns,
        windows=1,
        matched=("test",),
        caption="This is a test alert sent by earwitness alerts test-receiver.",
        first_segment_id=0,
        first_window_index=0,
        last_event_id="test",
    )
    resolved = firing.model_copy(
        update={
            "state": AlertState.RESOLVED,
            "ended_ns": now_ns,
            "resolution": Resolution.QUIET,
            "resolution_note": "test alert resolved at once",
        }
    )
    return firing, resolved


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        settings = load_settings(AlertsSettings, args.config)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    receiver = settings.receivers.get(args.name)
    if receiver is None:
        known = ", ".join(settings.receivers) or "none"
        logger.error("no receiver %r in %s (receivers: %s)", args.name, args.config, known)
        return 2
    sender = build_sender(receiver, settings.kafka.client_config())
    try:
        return _send_both(sender, args.name, out)
    finally:
        sender.close()


def _send_both(sender: Sender, name: str, out: TextIO) -> int:
    for alert in test_alerts():
        try:
            sender.send(alert)
        except (DeliveryFailed, DeliveryRejected) as exc:
            kind = "rejected" if isinstance(exc, DeliveryRejected) else "failed"
            out.write(f"{name}: {alert.state} test alert {kind}: {exc.reason} ({exc.detail})\n")
            return 1
        out.write(f"{name}: {alert.state} test alert delivered ({alert.idempotency_key})\n")
    return 0
