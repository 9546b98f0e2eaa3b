"""The handlers that do more than render: ack, listen, live events, sign-in; the lifespan.

Blocking work (Kafka, the database) runs in the thread pool; window audio additionally waits
for one of ``listen.max_concurrent`` slots, so a burst of clicks cannot starve the pages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from console.audio import AudioUnavailable, WindowRef, wav, window_audio
from console.live import VIEWS, View
from console.render import render
from console.security import csrf_ok, set_session
from earwitness.errors import TransientError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from console.web import App

logger = logging.getLogger(__name__)

_AUDIO_STATUS = {"expired": 410, "no_frames": 404, "too_long": 413, "mismatch": 409}


def _app(request: Request) -> App:
    return request.app.state.console  # type: ignore[no-any-return]


@asynccontextmanager
async def lifespan(starlette: Starlette) -> AsyncIterator[None]:
    app: App = starlette.state.console
    app.hub.bind(asyncio.get_running_loop())
    starlette.state.listen_slots = asyncio.Semaphore(app.settings.listen.max_concurrent)
    yield


async def ack(request: Request) -> Response:
    """Acknowledge an incident (optional note): written to the acks topic, then read back."""
    app = _app(request)
    form = await request.form()
    submitted = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
    if not csrf_ok(request, submitted):
        app.metrics.acks.labels("csrf").inc()
        return PlainTextResponse("cross-site request refused\n", 403)
    alert_id = request.path_params["alert_id"]
    if app.acks is None or await run_in_threadpool(app.queries.incident, alert_id) is None:
        return PlainTextResponse("no such incident\n", 404)
    user = request.scope["state"]["user"] or "unknown"
    try:
        await run_in_threadpool(app.acks.write, alert_id, user, str(form.get("note") or ""))
    except TransientError as exc:
        app.metrics.acks.labels("failed").inc()
        logger.warning("ack of %s not written: %s", alert_id, exc)
        return PlainTextResponse("Kafka did not take the ack; try again\n", 503)
    app.metrics.acks.labels("ok").inc()
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"alert_id": alert_id, "by": user}, 202)
    return RedirectResponse("/alerts", 303)


async def listen(request: Request) -> Response:
    """The window's audio as WAV, rebuilt from the frames topic; never cached, never stored."""
    app = _app(request)
    settings = app.settings.listen
    if not settings.enabled:
        return PlainTextResponse("listening is off\n", 404)
    row = await run_in_threadpool(app.queries.window, request.path_params["event_id"])
    if row is None or row["frames_topic"] is None:
        return PlainTextResponse("no such window, or it has no frame positions\n", 404)
    if row["frames_topic"] != app.settings.kafka.frames_topic:
        return PlainTextResponse(
            "the window's frames are on a topic this console does not read\n", 403
        )
    ref = WindowRef(
        row["stream_id"], row["segment_id"], row["window_index"], row["start_ns"], row["end_ns"],
        row["frames_topic"], row["frames_partition"], row["first_offset"], row["last_offset"],
    )  # fmt: skip
    async with request.app.state.listen_slots:
        return await _audio(app, ref)


async def _audio(app: App, ref: WindowRef) -> Response:
    settings = app.settings.listen
    try:
        with app.metrics.listen_seconds.time():
            samples = await run_in_threadpool(
                window_audio, app.settings.kafka.client_config(), ref, settings.windowing,
                timeout_s=settings.timeout_s, max_records=settings.max_records,
            )  # fmt: skip
    except AudioUnavailable as exc:
        app.metrics.listen.labels(exc.reason).inc()
        return PlainTextResponse(f"{exc.detail}\n", _AUDIO_STATUS.get(exc.reason, 404))
    except TransientError as exc:
        app.metrics.listen.labels("failed").inc()
        logger.warning("window audio of %s not read: %s", ref.stream_id, exc)
        return PlainTextResponse("the frames could not be read; try again\n", 503)
    app.metrics.listen.labels("ok").inc()
    headers = {"Cache-Control": "no-store", "Content-Disposition": "inline"}
    return Response(wav(samples), media_type="audio/wav", headers=headers)


async def events(request: Request) -> Response:
    """Live updates as SSE; resumes after ``Last-Event-ID`` (a reconnect) or ``since``."""
    app = _app(request)
    name = request.query_params.get("view", "streams")
    if name not in VIEWS:
        return PlainTextResponse("unknown view\n", 400)
    view = View(name, request.query_params.get("stream", "") if name == "stream" else "")
    last = request.headers.get("last-event-id") or request.query_params.get("since")
    http = app.settings.http
    shutdown = anyio.Event()
    return EventSourceResponse(
        app.hub.stream(view, last, http.sse_catch_up_rows, shutdown),
        ping=http.sse_ping_s,
        send_timeout=30,
        shutdown_event=shutdown,
        shutdown_grace_period=2,
    )


async def login(request: Request) -> Response:
    """Bearer mode: a form that takes the token once and sets the session cookie."""
    app = _app(request)
    guard = app.guard
    if app.settings.auth.mode != "bearer" or guard is None:
        return RedirectResponse("/streams", 303)
    if request.method == "GET":
        return render(request, "login.html", {"page": "login", "failed": False})
    form = await request.form()
    if not csrf_ok(request, str(form.get("csrf") or "")) or not guard.token_ok(
        str(form.get("token") or "")
    ):
        response = render(request, "login.html", {"page": "login", "failed": True})
        response.status_code = 401
        return response
    response = RedirectResponse("/streams", 303)
    set_session(response, guard.session_value(), request, app.settings.http.cookie_secure)
    return response


async def logout(request: Request) -> Response:
    if not csrf_ok(request, str((await request.form()).get("csrf") or "")):
        return PlainTextResponse("cross-site request refused\n", 403)
    response = RedirectResponse("/login", 303)
    response.delete_cookie("ew_session")
    return response
