"""The analyzer's audit trail (earwitness/audit.py): a real ``earwitness analyze`` writes a
start record before it serves and a stop record (exit 0) after SIGTERM, and its caption events
name the same instance and config hash, so a caption traces to its audit records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from earwitness import __version__
from earwitness.audit import AuditAction, AuditRecord, AuditSettings
from earwitness.events import CaptionEvent
from tests.support.analyzer import ENGINE_START_S, AnalyzerProcess, analyzer_settings
from tests.support.kafka import consume, unique_name
from tests.support.streams import Feeder

pytestmark = [pytest.mark.engine, pytest.mark.kafka, pytest.mark.slow]


def test_the_analyzer_audits_its_start_and_stop_and_its_captions_point_there(
    kafka_bootstrap: str, new_topic: Callable[..., str], tiny_model_dir: Path, tmp_path: Path
) -> None:
    audit = AuditSettings(log_topic=unique_name("audit"), state_topic=unique_name("audit-st"))
    settings = analyzer_settings(kafka_bootstrap, new_topic(), tiny_model_dir).model_copy(
        update={"audit": audit}
    )
    feeder = Feeder(kafka_bootstrap, settings.kafka.frames_topic, ["cam-a"], seconds=12)
    with AnalyzerProcess(settings, tmp_path, "audited") as proc:
        proc.wait_for_log(r"audit: start analyzer/", ENGINE_START_S)
        feeder.publish_rest()
        captions = consume(kafka_bootstrap, settings.kafka.captions_topic, count=1, timeout_s=180)
        proc.terminate()
        assert proc.wait_exit(120) == 0, proc.tail()

    start, stop = (
        AuditRecord.from_json(m.value()) for m in consume(kafka_bootstrap, audit.log_topic, count=2)
    )
    assert (start.action, stop.action, stop.exit_code) == (AuditAction.START, "stop", 0)
    assert (start.service, start.model, start.model_revision) == (
        "analyzer", settings.engine.model, "main",
    )  # fmt: skip
    assert start.version == __version__
    event = CaptionEvent.from_json(captions[0].value())
    assert event.analyzer is not None
    assert (event.analyzer.instance, event.analyzer.config_hash) == (
        start.instance, start.config_hash,
    )  # fmt: skip
