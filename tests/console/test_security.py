"""Auth modes, security headers and CSRF, against the real app on a real uvicorn server."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.config import ConsoleSettings
from console.live import Hub
from console.metrics import ConsoleMetrics
from console.queries import Queries
from console.render import templates
from console.security import CSP
from console.store import Store
from console.web import App, create_app
from earwitness.config import load_settings
from earwitness.errors import ConfigError
from tests.console.support import serving

TOKEN = "s3cret-token-of-the-console-0123456789"


@contextmanager
def console(tmp_path: Path, **settings: Any) -> Iterator[str]:
    """The web app over an empty database (no Kafka: acks are refused with 404)."""
    config = ConsoleSettings(store={"path": tmp_path / "c.db"}, **settings)
    store = Store(config.store.path, 7, 1_000)
    queries = Queries(config.store.path)
    app = App(config, queries, Hub(store.epoch, queries, ConsoleMetrics()), None,
              ConsoleMetrics(), templates())  # fmt: skip
    try:
        with serving(create_app(app)) as url:
            yield url
    finally:
        store.close()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "console.example.com"])
def test_off_loopback_needs_auth(tmp_path: Path, host: str) -> None:
    config = _write(tmp_path / "c.yaml", f"http: {{host: '{host}'}}\n")
    with pytest.raises(ConfigError, match="not loopback"):
        load_settings(ConsoleSettings, config)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_may_go_without(host: str) -> None:
    assert ConsoleSettings(http={"host": host}).auth.mode == "none"


def test_secrets_come_from_files(tmp_path: Path) -> None:
    _write(tmp_path / "token", TOKEN + "\n")
    _write(tmp_path / "users", "ana:pw1\nbo: pw2 \n")
    config = _write(
        tmp_path / "c.yaml",
        "http: {host: 0.0.0.0}\nauth: {mode: bearer, token_file: token, users_file: users}\n",
    )
    settings = load_settings(ConsoleSettings, config)
    assert settings.auth.token is not None and settings.auth.token.get_secret_value() == TOKEN
    assert settings.auth.basic_users() == {"ana": "pw1", "bo": "pw2"}
    assert TOKEN not in repr(settings)


@pytest.mark.parametrize(
    ("auth", "message"),
    [({"mode": "bearer"}, "needs auth.token"), ({"mode": "basic"}, "needs auth.users"),
     ({"mode": "proxy", "trusted_proxies": ["not-a-net"]}, "not-a-net")],
)  # fmt: skip
def test_modes_need_their_credentials(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConsoleSettings(http={"host": "0.0.0.0"}, auth=auth)


# --- headers ---------------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(tmp_path: Path) -> None:
    with console(tmp_path, auth={"mode": "bearer", "token": TOKEN}) as url:
        replies = [
            httpx.get(f"{url}/static/console.css"),
            httpx.get(f"{url}/streams"),  # 401
            httpx.get(f"{url}/streams", headers={"Authorization": f"Bearer {TOKEN}"}),
            httpx.get(f"{url}/nope", headers={"Authorization": f"Bearer {TOKEN}"}),
        ]
    assert [r.status_code for r in replies] == [200, 401, 200, 404]
    for reply in replies:
        assert reply.headers["content-security-policy"] == CSP
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP


def test_pages_have_no_inline_script_or_style(tmp_path: Path) -> None:
    with console(tmp_path) as url:
        pages = [httpx.get(f"{url}{p}").text for p in ("/streams", "/alerts", "/search?q=x")]
    for page in pages:
        assert "<script>" not in page and " style=" not in page and "onclick" not in page
        assert page.count("<script") == page.count('src="/static/') + page.count(
            'type="application/json"'
        )


# --- authentication --------------------------------------------------------------------------


def test_bearer_header_and_sign_in_cookie(tmp_path: Path) -> None:
    with (
        console(tmp_path, auth={"mode": "bearer", "token": TOKEN}) as url,
        httpx.Client(base_url=url) as client,
    ):
        page = client.get("/alerts", headers={"Accept": "text/html"})
        assert page.headers["location"] == "/login"
        assert client.get("/alerts", headers={"Authorization": "Bearer wrong"}).status_code == 401
        login = client.get("/login")
        csrf = login.cookies["ew_csrf"]
        bad = client.post("/login", data={"csrf": csrf, "token": "wrong"})
        assert bad.status_code == 401 and "ew_session" not in client.cookies
        good = client.post("/login", data={"csrf": csrf, "token": TOKEN})
        assert good.status_code == 303
        session = client.cookies["ew_session"]
        assert TOKEN not in session
        assert (
            "HttpOnly" in good.headers["set-cookie"]
            and "SameSite=strict" in good.headers["set-cookie"]
        )
        assert client.get("/alerts").status_code == 200
    with console(tmp_path, auth={"mode": "bearer", "token": TOKEN + "x"}) as url:
        assert httpx.get(f"{url}/alerts", cookies={"ew_session": session}).status_code == 401


def test_basic_auth(tmp_path: Path) -> None:
    with console(tmp_path, auth={"mode": "basic", "users": "ana:pw1\nbo:pw2"}) as url:
        challenge = httpx.get(f"{url}/streams")
        assert challenge.status_code == 401
        assert challenge.headers["www-authenticate"].startswith("Basic ")
        assert httpx.get(f"{url}/streams", auth=("ana", "pw2")).status_code == 401
        assert httpx.get(f"{url}/streams", auth=("eve", "pw1")).status_code == 401
        ok = httpx.get(f"{url}/streams", auth=("bo", "pw2"))
        assert ok.status_code == 200 and ">bo<" in ok.text
        garbage = {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe").decode()}
        assert httpx.get(f"{url}/streams", headers=garbage).status_code == 401


def test_proxy_header_is_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    header = {"X-Forwarded-User": "ana@example.com"}
    with console(tmp_path, auth={"mode": "proxy"}) as url:
        assert httpx.get(f"{url}/streams").status_code == 401
        ok = httpx.get(f"{url}/streams", headers=header)
        assert ok.status_code == 200 and "ana@example.com" in ok.text
    with console(tmp_path, auth={"mode": "proxy", "trusted_proxies": ["10.0.0.0/8"]}) as url:
        assert httpx.get(f"{url}/streams", headers=header).status_code == 401


# --- CSRF ------------------------------------------------------------------------------------


def test_the_ack_endpoint_refuses_cross_site_requests(tmp_path: Path) -> None:
    with console(tmp_path) as url, httpx.Client(base_url=url) as client:
        csrf = client.get("/alerts").cookies["ew_csrf"]
        ack = "/alerts/a1/ack"
        assert client.post(ack, data={"note": "x"}).status_code == 403  # no token
        assert client.post(ack, data={"csrf": "forged" * 8}).status_code == 403  # wrong token
        cross_origin = {"Origin": "https://evil.example"}
        assert client.post(ack, data={"csrf": csrf}, headers=cross_origin).status_code == 403
        cross_site = {"Sec-Fetch-Site": "cross-site"}
        assert client.post(ack, data={"csrf": csrf}, headers=cross_site).status_code == 403
        no_cookie = httpx.post(f"{url}{ack}", data={"csrf": csrf})
        assert no_cookie.status_code == 403  # a token without the browser's cookie
        same = {"Origin": url, "Sec-Fetch-Site": "same-origin"}
        # Past CSRF: there is no such incident (and no Kafka here), so 404, not 403.
        assert client.post(ack, data={"csrf": csrf}, headers=same).status_code == 404
        header_token = {**same, "X-CSRF-Token": csrf}
        assert client.post(ack, headers=header_token).status_code == 404
        assert client.get(ack).status_code == 405
