"""The witness's HTTP face: ``POST /add-checkpoint`` (c2sp.org/tlog-witness) and friends.

Routes (the submission and monitoring prefixes are both the root):

* ``POST /add-checkpoint`` — the spec's call; 200 with our cosignature line, 400, 403,
  404, 409 (``text/x.tlog.size``) or 422 with a one-line plain-text reason;
* ``GET /<hex SHA-256 of origin>/checkpoint`` — the last checkpoint cosigned for that
  log with the log's signature and ours (404 before the first);
* ``GET /healthz`` — liveness.

Anything unexpected is logged with its traceback and answered with a bare 500.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from client.witnessd.home import WitnessHome
from client.witnessd.service import Clock, WitnessService, wall_clock
from client.witnessd.wire import MAX_BODY, SIZE_CONTENT_TYPE, WitnessRefusal, malformed

log = logging.getLogger("docket.witnessd")
SERVICE = web.AppKey("witness", WitnessService)
HOME = web.AppKey("home", WitnessHome)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except WitnessRefusal as refusal:
        if refusal.status == 409 and refusal.size is not None:
            return web.Response(
                status=409, body=b"%d\n" % refusal.size, content_type=SIZE_CONTENT_TYPE
            )
        return web.Response(status=refusal.status, text=refusal.detail + "\n")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return web.Response(status=500, text="internal error\n")


async def add_checkpoint(request: web.Request) -> web.Response:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise malformed(f"body larger than {MAX_BODY} bytes") from None
    line = await request.app[SERVICE].add_checkpoint(body)
    return web.Response(body=line.encode("utf-8"), content_type="text/plain", charset="utf-8")


async def monitor_checkpoint(request: web.Request) -> web.Response:
    wanted = request.match_info["origin_hash"]
    for item in request.app[HOME].logs:
        if hashlib.sha256(item.origin.encode("utf-8")).hexdigest() == wanted:
            latest = await request.app[SERVICE].latest(item.origin)
            if latest is not None:
                return web.Response(body=latest.note, content_type="text/plain", charset="utf-8")
    return web.Response(status=404, text="no checkpoint cosigned for that log\n")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "logs": len(request.app[HOME].logs)})


def create_app(home: WitnessHome, *, clock: Clock = wall_clock) -> web.Application:
    """The witness app for ``home``; the state file is opened when the app starts."""
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY)
    app[HOME] = home
    app[SERVICE] = WitnessService(home, clock=clock)
    app.router.add_post("/add-checkpoint", add_checkpoint)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/{origin_hash:[0-9a-f]{64}}/checkpoint", monitor_checkpoint)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    service = app[SERVICE]
    await service.open()
    try:
        yield
    finally:
        await service.close()


@contextlib.asynccontextmanager
async def running(
    home: WitnessHome, host: str, port: int, *, clock: Clock = wall_clock
) -> AsyncIterator[str]:
    """Serve ``home`` on ``host:port``; yield the URL actually bound."""
    runner = web.AppRunner(create_app(home, clock=clock), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = int(runner.addresses[0][1])
        yield f"http://{f'[{host}]' if ':' in host else host}:{bound}"
    finally:
        await runner.cleanup()
