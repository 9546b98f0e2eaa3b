"""Pages: the Jinja2 environment and :func:`render` (which adds the CSRF token)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from console import views
from console.security import csrf_token, set_csrf

if TYPE_CHECKING:
    from console.web import App

TEMPLATES = Path(__file__).parent / "templates"


def templates() -> Jinja2Templates:
    env = Jinja2Templates(directory=TEMPLATES)
    env.env.filters.update(
        utc=views.utc, clock=views.clock, highlight=views.highlight, marks=views.marks,
        evidence=views.evidence, datetime_local=views.datetime_local,
        q=lambda s: quote(str(s), safe=""),
    )  # fmt: skip
    return env


def render(request: Request, name: str, context: dict[str, Any]) -> Response:
    """A page, with the CSRF token in its context (and its cookie, if the browser had none)."""
    app: App = request.app.state.console
    token, new = csrf_token(request)
    context = {"csrf": token, "user": request.scope["state"].get("user"),
               "auth": app.settings.auth.mode, **context}  # fmt: skip
    response = app.templates.TemplateResponse(request, name, context)
    if new:
        set_csrf(response, token, request, app.settings.http.cookie_secure)
    return response
