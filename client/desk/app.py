"""The desk application: one :class:`~client.api.DocketClient`, guarded, rendered.

Theory of operation
-------------------
``docket desk`` runs this aiohttp app inside the client process, on 127.0.0.1 and a
free port.  The browser never holds a key and never talks to the Docket server: every
page is rendered here, server-side, from what the client library verified.  The
client is not written for concurrent use, so every call into it takes
:attr:`Desk.lock`; the follower (:mod:`client.desk.live`) takes the same lock between
its waits for the server.

Plaintext exists only in this process's memory (opened drafts are cached encrypted in
the home, as the CLI keeps them) and in the responses, which all carry
``Cache-Control: no-store``.  Nothing is written to disk unless the user saves a file,
and then it is the browser's download, under a sanitised name.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from client.api import DocketClient
from client.auditor import AuditReport
from client.desk.guards import CSRF_FIELD, CSRF_KEY, Sessions, make_guard, refusal
from client.desk.live import Hub, follow
from client.errors import ALARMS, Alarm, ClientError, UsageError
from protocol.errors import ProtocolError

HERE = Path(__file__).resolve().parent
MAX_UPLOAD = 64 * 1024 * 1024 + 65536  # protocol.envelope.MAX_PAYLOAD and the form's own

DESK_KEY: web.AppKey[Desk] = web.AppKey("desk")
FROZEN_ALARMS = ("fork", "rollback")


@dataclass
class AuditRun:
    """The desk's one audit: progress while it runs, then the report."""

    done: int = 0
    total: int = 0
    running: bool = False
    report: AuditReport | None = None
    error: str | None = None


@dataclass
class Desk:
    """What the app holds: the client, its lock, the sessions and the live hub."""

    client: DocketClient
    sessions: Sessions = field(default_factory=Sessions)
    hub: Hub = field(default_factory=Hub)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    audit: AuditRun = field(default_factory=AuditRun)
    follow: bool = True
    started: float = field(default_factory=time.time)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    last_alarm: dict[str, str] | None = None

    def alarms(self) -> list[dict[str, Any]]:
        """The alarms recorded in the home, each with its plain-words explanation."""
        out = []
        for record in self.client.state.alarms():
            out.append(
                {
                    "name": record.name,
                    "detail": record.detail,
                    "index": record.index,
                    "time": record.time,
                    "explanation": ALARMS.get(record.name, ""),
                }
            )
        return out

    def blocked(self) -> bool:
        """Whether sending is blocked: any alarm recorded (the banner says which)."""
        return bool(self.client.state.alarms()) or bool(self.client.state.get("frozen"))

    def note(self, alarm: Alarm) -> None:
        """Keep the last alarm a page or the follower ran into.  The client records in
        the home the ones that are proof (fork, rollback, forged...); this one is shown
        as a notice (``stale_view``, say, passes when the witnesses catch up)."""
        self.last_alarm = {
            "name": alarm.name,
            "detail": alarm.detail,
            "explanation": alarm.explanation,
        }


def environment() -> jinja2.Environment:
    """Jinja2 with autoescaping on for every template (a hostile title renders inert)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from client.desk import render

    env.filters.update(render.FILTERS)
    return env


ENV_KEY: web.AppKey[jinja2.Environment] = web.AppKey("jinja")


def page(request: web.Request, template: str, *, status: int = 200, **values: Any) -> web.Response:
    """Render ``template`` with the context every page needs (banner, CSRF, who)."""
    desk = request.app[DESK_KEY]
    me = desk.client.whoami()
    text = (
        request.app[ENV_KEY]
        .get_template(template)
        .render(
            alarms=desk.alarms(),
            blocked=desk.blocked(),
            notice=None if desk.blocked() else desk.last_alarm,
            csrf=request.get(CSRF_KEY, ""),
            csrf_field=CSRF_FIELD,
            me=me,
            title_talks=_talks_title(desk.client),
            path=request.path,
            **values,
        )
    )
    return web.Response(status=status, text=text, content_type="text/html", charset="utf-8")


def fragment(request: web.Request, template: str, **values: Any) -> web.Response:
    """Render a partial (what the live parts fetch) with the same context as a page."""
    return page(request, template, **values)


def _talks_title(client: DocketClient) -> str:
    genesis = client.state.genesis()
    return genesis.title if genesis is not None else ""


_STATUS = {1: 409, 2: 400, 3: 502, 4: 500}


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """A refusal or failure of the client becomes a page with its code, never a
    traceback; an alarm is kept so the banner shows it on every page."""
    desk = request.app[DESK_KEY]
    try:
        resp: web.StreamResponse = await handler(request)
        return resp
    except Alarm as exc:
        desk.note(exc)
        desk.hub.publish("alarm")
        return refusal(409, exc.name, f"{exc.message} -- {exc.explanation}")
    except ClientError as exc:
        code = str(getattr(exc, "code", type(exc).__name__))
        return refusal(_STATUS.get(exc.exit_code, 400), code, exc.message)
    except ProtocolError as exc:
        return refusal(422, exc.code, exc.detail)
    except ValueError as exc:
        return refusal(400, "bad_request", str(exc))


def build_app(desk: Desk) -> web.Application:
    """The guarded app over ``desk`` (the follower starts with the app if asked)."""
    from client.desk import views_acts, views_board, views_drafts, views_log

    app = web.Application(
        middlewares=[make_guard(desk.sessions), errors], client_max_size=MAX_UPLOAD
    )
    app[DESK_KEY] = desk
    app[ENV_KEY] = environment()
    routes = web.RouteTableDef()
    views_drafts.add_routes(routes)
    views_board.add_routes(routes)
    views_log.add_routes(routes)
    views_acts.add_routes(routes)
    app.add_routes(routes)
    app.router.add_static("/static", HERE / "static", show_index=False, follow_symlinks=False)

    async def follower(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(follow(desk)) if desk.follow else None
        yield
        desk.hub.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(follower)
    return app


@dataclass
class Running:
    """A desk listening on loopback: its base URL and launch URL."""

    base: str
    launch: str
    runner: web.AppRunner


async def start(desk: Desk, *, port: int = 0) -> Running:
    """Listen on 127.0.0.1 (a free port unless ``port``); return the URLs."""
    runner = web.AppRunner(build_app(desk), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    if not runner.addresses:
        raise UsageError("the desk could not listen on 127.0.0.1")
    bound = int(runner.addresses[0][1])
    base = f"http://127.0.0.1:{bound}"
    return Running(base=base, launch=f"{base}/launch?token={desk.sessions.token}", runner=runner)
