"""Both services as real processes, with a secret in every place one can be configured: the
SASL password (each service's own), a webhook signing key, the webhook URL's userinfo and
query, the Slack URL's token and each ``/metrics`` bearer token. None may appear in any line
either service logs (at DEBUG: httpx logs every request URL at INFO) or in its ``/metrics``.

``test_receiver_settings.py::test_secrets_stay_out_of_logs_metrics_and_dead_letters`` covers the
dispatcher in-process (reprs, dead letters, bodies); this runs the whole ``earwitness alerts``
and ``earwitness analyze`` entry points (settings loading, Kafka clients, the HTTP edge). The
analyzer is scraped and stopped while its engine warms up: the captions the runner alerts on
are produced by the test, so no engine has to finish starting (~60 s in all here, half of it
the analyzer's bounded exit while vLLM imports).
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from stream.config import HttpSettings
from tests.sinks.runnerutil import RULES, produce_steps, settings, wait_for
from tests.sinks.sinkutil import Receiver
from tests.support.analyzer import AnalyzerProcess, ServiceProcess, analyzer_settings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]  # ~60 s: the analyzer takes 30 s to exit

KEY = b"SIGNINGKEY-two-services-0123456789"
SIGNING = "whsec_" + base64.b64encode(KEY).decode()
SECRETS = {
    "analyzer SASL password": "ANALYZERSASLPASSWORD",
    "alerts SASL password": "ALERTSSASLPASSWORD",
    "analyzer metrics token": "ANALYZERMETRICSTOKEN",
    "alerts metrics token": "ALERTSMETRICSTOKEN",
    "webhook URL password": "HOOKPASSWORD",
    "webhook URL query": "HOOKQUERYTOKEN",
    "slack URL token": "SLACKURLTOKEN",
    "signing key": SIGNING,
    "signing key bytes": base64.b64encode(KEY).decode(),
    "signing key text": KEY.decode(),
}


def _get(port: int, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _scrape(proc: ServiceProcess, token: str) -> str:
    """``/metrics`` of ``proc`` with its token (and 401 without)."""
    port = int(proc.wait_for_log(r"serving /metrics\S*.* on port (\d+)", 180).group(1))
    assert _get(port)[0] == 401
    status, text = _get(port, token)
    assert status == 200, text
    return text


def _alerts(tmp_path: Path, bootstrap: str, topics: dict[str, str], url: str) -> ServiceProcess:
    host = url.removeprefix("http://")
    (tmp_path / "signing-key").write_text(SIGNING + "\n")
    (tmp_path / "metrics-token").write_text(SECRETS["alerts metrics token"] + "\n")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(RULES))
    receivers = {
        "ops": {
            "type": "webhook",
            "url": f"http://hookuser:HOOKPASSWORD@{host}/hook?token=HOOKQUERYTOKEN",
            "secret_file": "signing-key",
        },
        "chat": {"type": "slack", "url": f"{url}/services/T0/B0/SLACKURLTOKEN"},
    }
    raw = settings(bootstrap, topics, receivers, metrics_port=0)
    raw["metrics_token_file"] = "metrics-token"
    raw["kafka"]["client"] = {"sasl.username": "earwitness-alerts"}
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(raw))
    args = ["--log-level", "debug", "alerts", "--config", str(tmp_path / "alerts.yaml")]
    env = {"EARWITNESS_ALERTS_KAFKA__SASL_PASSWORD": SECRETS["alerts SASL password"]}
    return ServiceProcess(args, tmp_path, "alerts", env)


def _analyzer(tmp_path: Path, bootstrap: str, frames: str, model_dir: Path) -> AnalyzerProcess:
    base = analyzer_settings(bootstrap, frames, model_dir)
    kafka = base.kafka.model_copy(update={"client": {"sasl.username": "earwitness-analyzer"}})
    config = base.model_copy(update={"kafka": kafka, "http": HttpSettings(port=0)})
    env = {  # the settings file holds masked secrets only: they come from the environment
        "EARWITNESS_ANALYZER_KAFKA__SASL_PASSWORD": SECRETS["analyzer SASL password"],
        "EARWITNESS_ANALYZER_HTTP__METRICS_TOKEN": SECRETS["analyzer metrics token"],
    }
    return AnalyzerProcess(config, tmp_path, "analyzer", env, log_level="debug")


def test_no_secret_in_any_log_line_or_metrics_of_either_service(
    kafka_bootstrap: str,
    topics: dict[str, str],
    http_receiver: Receiver,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    frames = topics["captions"] + "-frames"  # the analyzer's own topics (it creates them)
    analyzer = _analyzer(tmp_path, kafka_bootstrap, frames, tiny_model_dir)
    alerts = _alerts(tmp_path, kafka_bootstrap, topics, http_receiver.url)
    with alerts, analyzer:
        analyzer_metrics = _scrape(analyzer, SECRETS["analyzer metrics token"])
        produce_steps(kafka_bootstrap, topics["captions"], "MMM")
        wait_for(lambda: {r.path.split("?")[0] for r in http_receiver.received} >= {
            "/hook", "/services/T0/B0/SLACKURLTOKEN"}, 180)  # fmt: skip
        alerts_metrics = _scrape(alerts, SECRETS["alerts metrics token"])
        for proc in (analyzer, alerts):
            proc.terminate()
        assert alerts.wait_exit(120) == 0, alerts.tail()
        analyzer.wait_exit(180)
    hook = next(r for r in http_receiver.received if r.path.startswith("/hook"))
    assert hook.path == "/hook?token=HOOKQUERYTOKEN"  # the secrets were really used
    assert hook.headers["authorization"].startswith("Basic ")
    assert "webhook-signature" in hook.headers
    assert "HTTP Request: POST" in alerts.log()  # httpx logged the requests it made
    outputs = {
        "analyzer log": analyzer.log(),
        "analyzer /metrics": analyzer_metrics,
        "alerts log": alerts.log(),
        "alerts /metrics": alerts_metrics,
    }
    leaks = [
        f"{what} in the {where}"
        for where, text in outputs.items()
        for what, secret in SECRETS.items()
        if secret in text
    ]
    assert leaks == []
