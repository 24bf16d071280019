"""``POST /v1/roster``: a signed roster or channel change."""

from __future__ import annotations

from aiohttp import web

from protocol.roster import RosterChange
from server.appkeys import ROSTER
from server.handlers.common import caller_of, json_response, read_json


async def post_roster(request: web.Request) -> web.Response:
    """A signed roster or channel change -> ``{"promise"}``."""
    caller_of(request)
    change = RosterChange.from_json(await read_json(request))
    promise = await request.app[ROSTER].submit(change)
    return json_response({"promise": promise.to_json()})
