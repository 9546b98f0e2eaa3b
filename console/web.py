"""The web app: Starlette routes, Jinja2 pages, static files. No JavaScript build step.

::

    GET  /streams                 every stream's tile (filter and sort in the page)
    GET  /streams/<id>?at=<ns>    one stream's timeline, windows and incidents
    GET  /alerts                  incidents, live; POST /alerts/<id>/ack acknowledges
    GET  /search?q=&stream=&kind=&from=&to=     full text over captions
    GET  /listen/<event id>.wav   a window's audio, rebuilt from the frames topic
    GET  /events?view=&since=     live updates (SSE), resumable (console.live)
    GET  /fragments/...           one window or incident as HTML, for live inserts

Page handlers are plain functions: Starlette runs them in its thread pool, where each thread
reads through its own database connection (console.queries). :class:`App` holds what the
handlers share; it is built by :func:`console.cli.serve`, which owns it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from console import actions, views
from console.acks import AckWriter
from console.config import ConsoleSettings
from console.live import Hub
from console.metrics import ConsoleMetrics
from console.queries import Queries, SearchQuery, fts_query
from console.render import render
from console.security import Guard

HERE = Path(__file__).parent
DEFAULT_SPAN_S = 15 * 60
KINDS = ("caption", "silence", "shed", "error")


@dataclass
class App:
    """What every handler needs; one per console."""

    settings: ConsoleSettings
    queries: Queries
    hub: Hub
    acks: AckWriter | None
    metrics: ConsoleMetrics
    templates: Jinja2Templates
    guard: Guard | None = None


def _app(request: Request) -> App:
    return request.app.state.console  # type: ignore[no-any-return]


def home(request: Request) -> Response:
    return RedirectResponse("/streams", 303)


def streams_page(request: Request) -> Response:
    app = _app(request)
    since = app.hub.event_id(app.queries.last_change_id())  # before the rows: never miss one
    now, stale_s = time.time_ns(), app.settings.http.stale_after_s
    tiles = [
        {**dict(row), "state": views.tile_state(row["kind"], row["seen_ns"], now, stale_s)}
        for row in app.queries.streams()
    ]
    firing = [
        {"id": i["alert_id"], "stream": i["stream_id"], "acked": i["ack_by"] is not None}
        for i in app.queries.incidents(state="firing", limit=100_000)
    ]
    context = {"tiles": tiles, "firing": firing, "since": since, "stale_after_s": stale_s,
               "page": "streams"}  # fmt: skip
    return render(request, "streams.html", context)


def stream_page(request: Request) -> Response:
    app = _app(request)
    stream_id = request.path_params["stream_id"]
    since = app.hub.event_id(app.queries.last_change_id())
    stream = app.queries.stream(stream_id)
    span_ns = int(float(request.query_params.get("span_s") or DEFAULT_SPAN_S) * views.NS)
    at = views.parse_utc(request.query_params.get("at"))
    end = (stream["end_ns"] if stream else time.time_ns()) + 1
    from_ns, to_ns = (at - span_ns // 2, at + span_ns // 2) if at else (end - span_ns, end)
    windows = app.queries.windows(stream_id, from_ns, to_ns, app.settings.http.page_windows)
    incidents = app.queries.incidents_between(stream_id, from_ns, to_ns)
    context = {
        "stream_id": stream_id, "stream": stream, "windows": windows, "incidents": incidents,
        "timeline": views.timeline(windows, incidents, from_ns, to_ns), "at": at,
        "span_s": span_ns // views.NS, "live": at is None, "since": since, "page": "stream",
        "listen": app.settings.listen.enabled,
    }  # fmt: skip
    return render(request, "stream.html", context)


def alerts_page(request: Request) -> Response:
    app = _app(request)
    state = request.query_params.get("state") or None
    since = app.hub.event_id(app.queries.last_change_id())
    incidents = app.queries.incidents(state=state if state in ("firing", "resolved") else None)
    context = {"incidents": incidents, "since": since, "state": state, "page": "alerts"}
    return render(request, "alerts.html", context)


def search_page(request: Request) -> Response:
    app = _app(request)
    params = request.query_params
    query = SearchQuery(
        text=params.get("q", "")[:500],
        stream_id=params.get("stream", "").strip(),
        kind=params.get("kind", "") if params.get("kind") in KINDS else "",
        from_ns=views.parse_utc(params.get("from")),
        to_ns=views.parse_utc(params.get("to")),
        before=int(params["before"]) if params.get("before", "").isdigit() else None,
    )
    searched = any((query.text, query.stream_id, query.kind, query.from_ns, query.to_ns))
    limit = app.settings.http.search_results
    results = app.queries.search(query, limit) if searched else []
    key = "start_ns" if fts_query(query) is None else "id"  # the order search() used
    more = results[-1][key] if len(results) == limit else None
    context = {"query": query, "results": results, "searched": searched, "more": more,
               "kinds": KINDS, "page": "search", "listen": app.settings.listen.enabled}  # fmt: skip
    return render(request, "search.html", context)


def window_fragment(request: Request) -> Response:
    app = _app(request)
    window = app.queries.window(request.path_params["event_id"])
    if window is None:
        return Response("no such window\n", 404, media_type="text/plain")
    return render(request, "_window.html", {"w": window, "listen": app.settings.listen.enabled})


def alert_fragment(request: Request) -> Response:
    incident = _app(request).queries.incident(request.path_params["alert_id"])
    if incident is None:
        return Response("no such incident\n", 404, media_type="text/plain")
    return render(request, "_incident.html", {"i": incident})


def create_app(app: App) -> Guard:
    """The ASGI app: the routes inside :class:`~console.security.Guard`."""
    routes = [
        Route("/", home),
        Route("/streams", streams_page),
        Route("/streams/{stream_id:path}", stream_page),
        Route("/alerts", alerts_page),
        Route("/alerts/{alert_id}/ack", actions.ack, methods=["POST"]),
        Route("/search", search_page),
        Route("/listen/{event_id}.wav", actions.listen),
        Route("/events", actions.events),
        Route("/fragments/window/{event_id}", window_fragment),
        Route("/fragments/incident/{alert_id}", alert_fragment),
        Route("/login", actions.login, methods=["GET", "POST"]),
        Route("/logout", actions.logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    starlette = Starlette(routes=routes, lifespan=actions.lifespan)
    starlette.state.console = app
    guard = Guard(starlette, app.settings.auth)
    app.guard = guard
    return guard
