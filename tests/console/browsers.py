"""Headless browsers for the console's browser tests, both from Debian's packages.

* **chromium**: ``chromium`` and ``chromium-driver`` (apt). Page errors come from Chrome's
  browser log (uncaught errors, ``console.error``, failed requests).
* **firefox**: ``firefox-esr`` (apt) and geckodriver, which Debian does not ship:
  ``scripts/install-geckodriver`` builds the pinned one from crates.io into
  ``~/.cache/earwitness``. geckodriver has no browser log, so page errors come over WebDriver
  BiDi (uncaught errors and ``console.error``).

``.ci/run`` installs both browsers; geckodriver is built by ``make test-heavy``, which runs the
``firefox`` tier. Without a browser or its driver, its tests skip with the reason, unless ``CI``
is set: there, that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.kafka import REPO

BROWSERS = ("chromium", pytest.param("firefox", marks=pytest.mark.firefox))
"""Fixture params: Firefox is its own tier (``firefox`` marker, ``make test-heavy``), as its
geckodriver is built with cargo on a cold cache (~4 min of CPU, 15 min on a loaded host)."""
WIDTH, HEIGHT = 1440, 900
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}",
    "--autoplay-policy=no-user-gesture-required",
)  # fmt: skip
"""As root, without the machine's closed network making noise (docs of this machine)."""
FIREFOX = "/usr/bin/firefox-esr"
FIREFOX_PREFS: dict[str, str | int | bool] = {
    "media.autoplay.default": 0,  # allow: a Listen click plays at once, as in Chromium
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
}
"""On top of geckodriver's own (no updates, no telemetry): nothing reaching for the network."""
REFUSED = {
    "chromium": "ERR_CONNECTION_REFUSED",
    "firefox": "can\N{RIGHT SINGLE QUOTATION MARK}t establish a connection",
}
"""How each browser words a connection that the server refused (an EventSource retrying)."""


@dataclass
class Browser:
    """A started WebDriver session and the page errors it has seen so far."""

    name: str
    driver: Any
    _errors: Callable[[], list[str]]

    def errors(self) -> list[str]:
        return self._errors()

    def refused(self, message: str) -> bool:
        """Whether ``message`` reports a refused connection, in this browser's words."""
        return REFUSED[self.name] in message


@dataclass
class _BidiErrors:
    """Collects uncaught errors and ``console.error`` calls; BiDi's thread calls it."""

    messages: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, entry: Any) -> None:
        with self.lock:
            self.messages.append(str(entry.text))

    def console(self, entry: Any) -> None:
        if entry.level == "error":
            self.error(entry)

    def __call__(self) -> list[str]:
        with self.lock:
            return list(self.messages)


def geckodriver_path() -> Path:
    """Where scripts/install-geckodriver puts the pinned geckodriver (built or not)."""
    script = REPO / "scripts" / "install-geckodriver"
    out = subprocess.run([str(script), "--path"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def missing(name: str) -> str | None:
    """Why browser ``name`` cannot run here, or None when it can."""
    if name == "chromium":
        if shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER):
            return None
        return "Chromium is not installed (apt-get install chromium chromium-driver)"
    if not shutil.which(FIREFOX):
        return "Firefox is not installed (apt-get install firefox-esr)"
    if not os.access(geckodriver_path(), os.X_OK):
        return "geckodriver is not built (scripts/install-geckodriver: cargo, minutes cold)"
    return None


def require(name: str) -> None:
    """Skip without browser ``name``, unless ``CI`` is set: there, fail."""
    message = missing(name)
    if message is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI is set, so this is an error")
    pytest.skip(message)


def _chromium(profile: Path) -> Browser:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)

    def errors() -> list[str]:
        return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]

    return Browser("chromium", driver, errors)


def _firefox(profile: Path) -> Browser:
    from selenium import webdriver
    from selenium.webdriver.firefox.service import Service

    options = webdriver.FirefoxOptions()
    options.binary_location = FIREFOX
    options.add_argument("-headless")
    options.enable_bidi = True
    for pref, value in FIREFOX_PREFS.items():
        options.set_preference(pref, value)
    service = Service(str(geckodriver_path()), log_output=str(profile.with_suffix(".log")))
    driver = webdriver.Firefox(service=service, options=options)
    driver.set_window_size(WIDTH, HEIGHT)
    errors = _BidiErrors()
    driver.script.add_javascript_error_handler(errors.error)
    driver.script.add_console_message_handler(errors.console)
    return Browser("firefox", driver, errors)


@contextmanager
def started(name: str, tmp_path: Path) -> Iterator[Browser]:
    """Browser ``name``, headless, with its profile under ``tmp_path``; quit on exit."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to download a driver
    start = _chromium if name == "chromium" else _firefox
    browser = start(tmp_path / name)
    browser.driver.set_script_timeout(60)
    try:
        yield browser
    finally:
        browser.driver.quit()
