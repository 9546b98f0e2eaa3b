"""Who may see the console, what every response says about itself, and CSRF.

:class:`Guard` is the outermost ASGI middleware. For every HTTP request it

* sets the security headers (:data:`HEADERS`: a Content-Security-Policy that allows only this
  origin's scripts, styles, media and connections, no inline script, no framing);
* finds the user (``auth.mode``): ``none`` → ``local``; ``bearer`` → the ``Authorization:
  Bearer`` header or the session cookie ``/login`` sets (an HMAC of the token, never the token);
  ``basic`` → ``Authorization: Basic`` against the users file; ``proxy`` → ``proxy_header``,
  believed only from ``trusted_proxies``;
* answers 401 without one (basic: a ``WWW-Authenticate`` challenge; bearer: pages redirect to
  ``/login``), except for ``/login`` and ``/static/``;
* logs method, path (never the query string: search words are caption words), status, time.

State-changing requests (POST: ack, login, logout) must pass :func:`csrf_ok`: a same-origin
``Origin``/``Sec-Fetch-Site`` and a double-submit token (cookie ``ew_csrf`` = the form's or the
``X-CSRF-Token`` header's value). Cookies are ``SameSite=Strict`` and ``HttpOnly`` (the CSRF
one is read by the page from a ``<meta>`` tag, not from JavaScript's cookie jar).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console.config import AuthSettings

logger = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
SESSION_COOKIE, CSRF_COOKIE = "ew_session", "ew_csrf"
PUBLIC_PREFIXES = ("/login", "/static/")
_SESSION_CONTEXT = b"earwitness-console-session-v1"


class Guard:
    """Security headers, authentication and the access log around the whole app."""

    def __init__(self, app: ASGIApp, auth: AuthSettings) -> None:
        self._app, self._auth = app, auth
        self._networks = [ipaddress.ip_network(n, strict=False) for n in auth.trusted_proxies]
        self._users = auth.basic_users()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started, status = time.monotonic(), [0]
        send = _with_headers(send, status)
        try:
            user = self.user(HTTPConnection(scope))
            scope.setdefault("state", {})["user"] = user
            if user is None and not scope["path"].startswith(PUBLIC_PREFIXES):
                await self._deny(scope)(scope, receive, send)
            else:
                await self._app(scope, receive, send)
        finally:
            logger.info("%s %s %d %.0f ms", scope["method"], scope["path"], status[0],
                        (time.monotonic() - started) * 1000)  # fmt: skip

    def user(self, conn: HTTPConnection) -> str | None:
        """Who sent the request, or None."""
        mode = self._auth.mode
        if mode == "none":
            return "local"
        if mode == "proxy":
            return self._proxy_user(conn)
        if mode == "basic":
            return self._basic_user(conn.headers.get("authorization", ""))
        return self._bearer_user(conn)

    def _proxy_user(self, conn: HTTPConnection) -> str | None:
        host = conn.client.host if conn.client else ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        if not any(address in network for network in self._networks):
            return None
        name = conn.headers.get(self._auth.proxy_header, "").strip()
        return name[:256] or None

    def _basic_user(self, header: str) -> str | None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        expected = self._users.get(user)
        ok = hmac.compare_digest(password.encode(), (expected or secrets.token_hex(8)).encode())
        return user if ok and expected is not None else None

    def _bearer_user(self, conn: HTTPConnection) -> str | None:
        scheme, _, offered = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_ok(offered.strip()):
            return "token"
        cookie = conn.cookies.get(SESSION_COOKIE, "")
        if cookie and hmac.compare_digest(cookie, self.session_value()):
            return "token"
        return None

    def token_ok(self, offered: str) -> bool:
        token = self._auth.token.get_secret_value() if self._auth.token else ""
        return bool(token) and hmac.compare_digest(offered.encode(), token.encode())

    def session_value(self) -> str:
        """The session cookie's value: HMAC-SHA256 of a fixed context keyed by the token."""
        token = self._auth.token.get_secret_value() if self._auth.token else ""
        return hmac.new(token.encode(), _SESSION_CONTEXT, hashlib.sha256).hexdigest()

    def _deny(self, scope: Scope) -> Response:
        if self._auth.mode == "basic":
            return PlainTextResponse(
                "sign in\n", 401, {"WWW-Authenticate": 'Basic realm="earwitness console"'}
            )
        wants_page = scope["method"] == "GET" and "text/html" in _header(scope, b"accept")
        if self._auth.mode == "bearer" and wants_page:
            return RedirectResponse("/login", 303)
        return PlainTextResponse("not signed in\n", 401)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _with_headers(send: Send, status: list[int]) -> Callable[[Message], Awaitable[None]]:
    async def wrapped(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
            message["headers"] = [*message.get("headers", []), *HEADERS]
        await send(message)

    return wrapped


def csrf_token(request: Request) -> tuple[str, bool]:
    """The browser's CSRF token, and whether it is new (then set it with :func:`set_csrf`)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) >= 32:
        return token, False
    return secrets.token_urlsafe(32), True


def set_csrf(response: Response, token: str, request: Request, secure: bool | None) -> None:
    response.set_cookie(
        CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request, secure)
    )


def set_session(response: Response, value: str, request: Request, secure: bool | None) -> None:
    response.set_cookie(
        SESSION_COOKIE, value, httponly=True, samesite="strict", secure=_secure(request, secure)
    )


def _secure(request: Request, secure: bool | None) -> bool:
    return request.url.scheme == "https" if secure is None else secure


def csrf_ok(request: Request, submitted: str | None) -> bool:
    """A same-origin request that carries the browser's CSRF token."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        return False
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(cookie and submitted) and hmac.compare_digest(cookie, submitted or "")
