"""``/v1/auth/*``: challenge-response login, logout and token rotation."""

from __future__ import annotations

from aiohttp import web

from protocol.encoding import Fields, b64e
from protocol.keys import DEVICE_ID_LEN
from server.appkeys import AUTH
from server.handlers.common import (
    caller_of,
    json_response,
    limit_ip,
    read_json,
    require_founded,
)
from server.services.auth import CHALLENGE_LEN


async def post_challenge(request: web.Request) -> web.Response:
    """``{"device"}`` -> ``{"challenge", "expires"}``."""
    limit_ip(request)
    require_founded(request)
    f = Fields(await read_json(request), "challenge request")
    device = f.bytes("device", length=DEVICE_ID_LEN)
    f.done()
    challenge, expires = request.app[AUTH].challenge(device)
    return json_response({"challenge": b64e(challenge), "expires": expires})


async def post_token(request: web.Request) -> web.Response:
    """``{"challenge", "device", "sig"}`` -> ``{"expires", "token"}``."""
    limit_ip(request)
    require_founded(request)
    f = Fields(await read_json(request), "token request")
    challenge = f.bytes("challenge", length=CHALLENGE_LEN)
    device = f.bytes("device", length=DEVICE_ID_LEN)
    sig = f.bytes("sig", length=64)
    f.done()
    token, expires = await request.app[AUTH].token(challenge, device, sig)
    return json_response({"expires": expires, "token": b64e(token)})


async def post_logout(request: web.Request) -> web.Response:
    """Revoke the presented bearer token -> ``{"revoked": true}``; it answers 401 at once."""
    caller_of(request)
    await request.app[AUTH].logout(request.headers.get("Authorization"))
    return json_response({"revoked": True})


async def post_rotate(request: web.Request) -> web.Response:
    """Swap the presented bearer token for a new one -> ``{"expires", "token"}``; the old
    one answers 401 at once."""
    caller_of(request)
    token, expires = await request.app[AUTH].rotate(request.headers.get("Authorization"))
    return json_response({"expires": expires, "token": b64e(token)})
