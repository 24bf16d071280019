"""The receipt board (drafts x recipients), one-click acknowledge, and the live parts:
the event stream and the fragments pages fetch again when it says something changed."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from client.desk import render
from client.desk.app import DESK_KEY, fragment, page
from client.desk.guards import SECURITY_HEADERS
from client.errors import ClientError, UsageError

KEEPALIVE = 15.0  # seconds between SSE comments, so a dead tab is noticed


def add_routes(routes: web.RouteTableDef) -> None:
    routes.get("/board")(board)
    routes.get("/board/grid")(grid)
    routes.post("/ack/{index:\\d+}")(ack)
    routes.get("/events")(events)
    routes.get("/banner")(banner)


async def _grid_values(request: web.Request) -> dict[str, Any]:
    desk = request.app[DESK_KEY]
    client = desk.client
    channel = request.query.get("channel") or None
    delegation = request.query.get("delegation") or None
    async with desk.lock:
        titles = {}
        for record in client.state.draft_records():
            if record.status == "opened":
                with contextlib.suppress(ClientError):
                    titles[record.index] = client.drafts.opener.open_record(record.index).title
        rows, members = render.board(client, channel=channel, delegation=delegation, titles=titles)
        roster = client.roster
    return {
        "rows": rows,
        "members": members,
        "channel": channel or "",
        "delegation": delegation or "",
        "channels": sorted(roster.channels),
        "delegations": sorted(roster.delegations),
        "query": request.query_string,
    }


async def board(request: web.Request) -> web.Response:
    return page(request, "board.html", view="board", **await _grid_values(request))


async def grid(request: web.Request) -> web.Response:
    return fragment(request, "grid.html", **await _grid_values(request))


async def ack(request: web.Request) -> web.StreamResponse:
    """Acknowledge a draft (a signed receipt), then back to where the form was."""
    desk = request.app[DESK_KEY]
    index = int(request.match_info["index"])
    if desk.blocked():
        raise UsageError("acknowledging is blocked while an alarm is raised (see the banner)")
    async with desk.lock:
        await desk.client.ack(index)
    desk.hub.publish("log")
    form = await request.post()
    back = str(form.get("back", "/board"))
    if not back.startswith("/") or back.startswith("//"):
        back = "/board"
    if request.headers.get("X-Docket-CSRF"):
        return web.json_response({"acknowledged": index})
    raise web.HTTPSeeOther(back)


async def banner(request: web.Request) -> web.Response:
    return fragment(request, "banner.html")


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``change`` event per verified change (no content)."""
    desk = request.app[DESK_KEY]
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    # Set before the headers go out: the guard's own cannot be added to a prepared answer.
    for name, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(name, value)
    await resp.prepare(request)
    queue = desk.hub.subscribe()
    try:
        await resp.write(b"retry: 2000\n\n")
        while True:
            try:
                kind = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except TimeoutError:
                await resp.write(b": keepalive\n\n")
                continue
            if kind is None:
                break
            await resp.write(f"event: change\ndata: {kind} {desk.hub.version}\n\n".encode())
    except ConnectionResetError:
        pass  # the page went away
    finally:
        desk.hub.unsubscribe(queue)
    return resp
