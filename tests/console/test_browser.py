"""The console in real browsers: headless Chromium and Firefox (Debian's, see
``tests/console/browsers.py``) driven by Selenium, a real console process, the real alert
runner, the real broker. The same walk runs in each browser.

One walk through what an operator does: the Streams page fills live, an incident fires and
resolves on the Alerts page, the operator acknowledges it and the ack survives a console
restart, a search leads to the stream at that time, and a window plays with the right length.
Screenshots are saved under ``out/test-artifacts/``: ``console-*.png`` from Chromium (the README's
picture is the Streams one), ``console-firefox-*.png`` from Firefox.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from earwitness.events import CaptionEvent, EventKind
from sinks.config import AlertsSettings
from sinks.metrics import AlertMetrics
from sinks.rules import parse_rules
from sinks.runner import AlertRunner
from tests.console.browsers import BROWSERS, Browser, require, started
from tests.console.support import (
    NS,
    ConsoleProcess,
    analyzer_windows,
    caption,
    console_settings,
    events_records,
    produce_committed,
    publish_tones,
    window_event,
)
from tests.support.frames import Tone
from tests.support.kafka import REPO
from windowing import Frame

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ARTIFACTS = REPO / "out" / "test-artifacts"
BANG = "A window shatters: glass breaking near the back door, then footsteps running away."
CALM = "Quiet room tone with a ventilation hum; no glass breaking, voices or alarms are heard."
SCENE = {
    "lobby-1": (EventKind.CAPTION, "A receptionist greets a visitor. A phone rings twice.", -24),
    "lobby-2": (EventKind.CAPTION, "Footsteps on a tiled floor and a rolling suitcase.", -31),
    "garage-1": (EventKind.CAPTION, "An engine idles; a car door slams. Tyres squeal.", -18),
    "garage-2": (EventKind.SILENCE, None, -78),
    "roof": (EventKind.CAPTION, "Wind buffets the microphone. Rain starts to fall.", -27),
    "stairs-3": (EventKind.SHED, None, -35),
    "loading-dock": (EventKind.CAPTION, "Glass breaking at the shutter. A forklift beeps.", -15),
    "server-room": (
        EventKind.CAPTION,
        "Steady fan noise from the racks. A door latch clicks.",
        -40,
    ),
    "car-park-east": (EventKind.ERROR, None, -30),
    "canteen": (EventKind.CAPTION, "Cutlery and chatter; a coffee machine hisses.", -21),
}


@pytest.fixture(params=BROWSERS)
def browser(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Browser]:
    require(request.param)
    with started(request.param, tmp_path) as browser:
        yield browser


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    compact = {"cleanup.policy": "compact"}
    names = ("captions", "alerts", "acks", "frames", "state", "dlq")
    return {
        name: new_topic(config=compact if name in ("acks", "state") else None) for name in names
    }


@pytest.fixture
def alert_runner(kafka_bootstrap: str, topics: dict[str, str]) -> Iterator[AlertRunner]:
    """The real alert runner, with its Kafka receiver writing the console's alerts topic."""
    settings = AlertsSettings(
        rules_path=Path("rules.yaml"),
        kafka={"bootstrap_servers": kafka_bootstrap, "captions_topic": topics["captions"],
               "state_topic": topics["state"], "dead_letter_topic": topics["dlq"],
               "group_id": f"alerts-{topics['captions']}", "batch_wait_ms": 100,
               "transactional_id": f"alerts-{topics['captions']}",
               "start_at": "beginning"},  # captions may come before the runner's assignment
        receivers={"bus": {"type": "kafka", "topic": topics["alerts"]}},
        metrics_port=None,
        drain_timeout_s=5,
    )  # fmt: skip
    rules = parse_rules({"rules": [{
        "id": "glass-breaking", "description": "Glass breaking (possible break-in)",
        "severity": "critical", "match": {"any": ["glass breaking"]}, "resolve_after_s": 20,
    }]})  # fmt: skip
    runner = AlertRunner(settings, rules, AlertMetrics())
    thread = threading.Thread(target=runner.run, name="test-alert-runner")
    thread.start()
    yield runner
    runner.stop()
    thread.join(60)


@pytest.fixture
def console(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> Iterator[ConsoleProcess]:
    process = ConsoleProcess(tmp_path / "console.yaml", tmp_path / "console.log",
                             console_settings(tmp_path, kafka_bootstrap, topics))  # fmt: skip
    process.start()
    yield process
    if process.proc is not None:
        process.stop()


def _wait(driver: Any, condition: Callable[[Any], Any], timeout_s: float = 30) -> Any:
    return WebDriverWait(driver, timeout_s, poll_frequency=0.05).until(condition)


def _css(selector: str) -> Callable[[Any], Any]:
    return lambda d: d.find_elements(By.CSS_SELECTOR, selector)


def _shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser = "" if driver.name == "chrome" else f"{driver.name}-"
    driver.save_screenshot(str(ARTIFACTS / f"console-{browser}{name}.png"))


def _scene(bootstrap: str, topics: dict[str, str]) -> None:
    """Ten more streams in every state, one of them silent for minutes (stale)."""
    segment = time.time_ns() - 600 * NS
    events = [
        caption(stream, 3, text, segment_id=segment, kind=kind, rms_dbfs=rms)
        for stream, (kind, text, rms) in SCENE.items()
    ]
    stale = caption("car-park-west", 0, "A barrier arm lifts.", segment_id=segment,
                    produced_ns=time.time_ns() - 300 * NS)  # fmt: skip
    produce_committed(bootstrap, topics["captions"], events_records([*events, stale]))


@dataclass
class Walk:
    """The operator's steps, in order; each leaves the browser where the next one starts."""

    driver: Any
    bootstrap: str
    topics: dict[str, str]
    console: ConsoleProcess
    frames: list[Frame] = field(default_factory=list)
    bang: CaptionEvent | None = None

    def live(self, timeout_s: float = 30) -> None:
        _wait(self.driver, lambda d: d.find_element(By.ID, "live-status").text == "live", timeout_s)

    def captions(self, *events: CaptionEvent) -> None:
        produce_committed(self.bootstrap, self.topics["captions"], events_records(events))

    def a_caption_shows_within_two_seconds(self) -> None:
        self.driver.get(f"{self.console.url}/streams")
        self.live()
        tone = Tone("cam-12", 35, ts0_ns=time.time_ns() - 40 * NS)
        self.frames = publish_tones(self.bootstrap, self.topics["frames"], [tone])
        self.bang = window_event(analyzer_windows(self.frames)[0], self.topics["frames"], BANG)
        self.captions(self.bang)
        committed = time.monotonic()
        (tile,) = _wait(self.driver, _css('.tile[data-stream="cam-12"]'), 10)
        assert time.monotonic() - committed < 2.0
        assert tile.find_element(By.CLASS_NAME, "sentence").text == BANG  # one sentence
        _scene(self.bootstrap, self.topics)
        _wait(self.driver, lambda d: len(_css(".tile")(d)) == 12)

    def the_alert_fires_and_is_acknowledged(self) -> None:
        driver = self.driver
        driver.get(f"{self.console.url}/alerts")
        (incident,) = _wait(driver, _css('.incident.state-firing[data-stream="cam-12"]'), 60)
        caption = incident.find_element(By.CLASS_NAME, "caption")
        assert [m.text for m in caption.find_elements(By.TAG_NAME, "mark")] == ["glass breaking"]
        evidence = incident.find_elements(By.CSS_SELECTOR, ".evidence mark")
        assert [m.text for m in evidence] == ["glass breaking"]  # the rule's evidence sentence
        assert incident.find_element(By.CLASS_NAME, "sev").text.lower() == "critical"
        incident.find_element(By.NAME, "note").send_keys("Guard Ana is on her way")
        incident.find_element(By.CSS_SELECTOR, "form.ack button").click()
        _wait(driver, _css('.incident.acked[data-stream="cam-12"]'), 20)  # via Kafka
        driver.get(f"{self.console.url}/streams")
        badge = '.tile[data-stream="cam-12"] .badge.acked'
        _wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, badge).text == "1")

    def quiet_windows_resolve_it(self) -> None:
        assert self.bang is not None
        self.driver.get(f"{self.console.url}/alerts")
        self.live()
        tail = [
            window_event(w, self.topics["frames"], CALM) for w in analyzer_windows(self.frames)[1:]
        ]
        segment = self.bang.segment_id
        self.captions(*tail, *(caption("cam-12", k, CALM, segment_id=segment) for k in (2, 3)))
        (resolved,) = _wait(self.driver, _css(".incident.state-resolved"), 60)  # cam-12's
        assert "acked" in resolved.get_attribute("class")
        _shot(self.driver, "alerts")

    def the_ack_survives_a_restart(self) -> None:
        self.console.restart()
        self.live()  # the open page reconnected by itself
        self.driver.refresh()
        (again,) = _wait(self.driver, _css(".incident.acked"), 10)
        assert "Guard Ana is on her way" in again.text

    def a_search_leads_to_the_stream_at_that_time(self) -> Any:
        assert self.bang is not None
        driver = self.driver
        driver.get(f"{self.console.url}/search")
        box = driver.find_element(By.NAME, "q")
        box.send_keys('"glass breaking near"')
        box.submit()
        (result,) = _wait(driver, _css(".result"), 10)
        marked = [m.text.lower() for m in result.find_elements(By.TAG_NAME, "mark")]
        assert marked == ["glass breaking near"]
        result.find_element(By.CSS_SELECTOR, "a.open").click()
        _wait(driver, lambda d: f"at={self.bang.window_start_ns}" in d.current_url)  # type: ignore[union-attr]
        assert driver.current_url.endswith(f"#w-{self.bang.event_id}")
        target = driver.find_element(By.ID, f"w-{self.bang.event_id}")
        assert BANG in target.text
        assert _wait(driver, _css("#timeline rect.incident"))
        return target

    def the_window_plays_thirty_seconds(self, target: Any) -> None:
        assert self.bang is not None
        driver = self.driver
        target.find_element(By.CSS_SELECTOR, "button.listen").click()
        audio = _wait(driver, lambda d: target.find_element(By.TAG_NAME, "audio"))
        loaded = "const a = arguments[0]; return a.readyState >= 1 ? a.duration : false;"
        duration = _wait(driver, lambda d: d.execute_script(loaded, audio), 30)
        assert abs(duration - 30.0) < 0.01
        samples = driver.execute_async_script(DECODED_LENGTH, f"/listen/{self.bang.event_id}.wav")
        assert samples == 30 * 16_000
        _shot(driver, "stream")

    def the_streams_page_at_the_end(self) -> None:
        self.driver.get(f"{self.console.url}/streams")
        self.live()
        _wait(self.driver, _css('.tile.state-stale[data-stream="car-park-west"]'))
        open_badge = '.tile[data-stream="loading-dock"] .badge.open'
        _wait(self.driver, lambda d: d.find_element(By.CSS_SELECTOR, open_badge).text == "1")
        _shot(self.driver, "streams")


DECODED_LENGTH = """
const done = arguments[arguments.length - 1];
fetch(arguments[0]).then(r => r.arrayBuffer())
  .then(b => new OfflineAudioContext(1, 1, 16000).decodeAudioData(b))
  .then(buffer => done(buffer.length), e => done(String(e)));
"""
"""The WAV decoded by the browser's own decoder, at 16 kHz: its length in samples."""


def test_an_operator_s_walk_through_the_console(
    browser: Browser,
    kafka_bootstrap: str,
    topics: dict[str, str],
    alert_runner: AlertRunner,
    console: ConsoleProcess,
) -> None:
    walk = Walk(browser.driver, kafka_bootstrap, topics, console)
    walk.a_caption_shows_within_two_seconds()
    walk.the_alert_fires_and_is_acknowledged()
    walk.quiet_windows_resolve_it()
    walk.the_ack_survives_a_restart()
    walk.the_window_plays_thirty_seconds(walk.a_search_leads_to_the_stream_at_that_time())
    walk.the_streams_page_at_the_end()
    restart = "/events?"  # refused while the console restarted: EventSource retried
    errors = [m for m in browser.errors() if not (restart in m and browser.refused(m))]
    assert errors == []
