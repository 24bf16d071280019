"""``/v1/talks``: the genesis, and founding."""

from __future__ import annotations

from aiohttp import web

from protocol.encoding import Fields, b64e
from protocol.genesis import Genesis
from server.appkeys import STATE, TALKS
from server.handlers.common import json_response, limit_ip, read_json


async def get_talks(request: web.Request) -> web.Response:
    """The genesis, so a joiner can check the fingerprint it pinned."""
    limit_ip(request)
    genesis = request.app[TALKS].genesis()
    state = request.app[STATE]
    return json_response(
        {"genesis": genesis.to_json(), "log_key": b64e(state.log_public), "origin": state.origin}
    )


async def post_talks(request: web.Request) -> web.Response:
    """Found the talks with the founding token and the mediator-signed genesis."""
    limit_ip(request)
    f = Fields(await read_json(request), "talks")
    genesis = Genesis.from_json(f.raw("genesis"))
    token = f.bytes("token", length=32)
    f.done()
    promise = await request.app[TALKS].found(token, genesis)
    return json_response({"promise": promise.to_json()})
