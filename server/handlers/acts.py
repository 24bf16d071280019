"""``POST /v1/acts``: a signed act (see :mod:`protocol.acts`)."""

from __future__ import annotations

from aiohttp import web

from protocol.acts import Act
from server.appkeys import ROSTER
from server.handlers.common import caller_of, json_response, read_json


async def post_act(request: web.Request) -> web.Response:
    """A signed act -> ``{"promise"}``."""
    caller_of(request)
    act = Act.from_json(await read_json(request))
    promise = await request.app[ROSTER].submit_act(act)
    return json_response({"promise": promise.to_json()})
