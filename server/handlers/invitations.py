"""``/v1/invitations``: create, list, accept."""

from __future__ import annotations

from aiohttp import web

from protocol.encoding import Fields, JSONValue, b64e, parse
from protocol.errors import BadValueError
from protocol.keys import DevicePublic
from protocol.names import check_name
from protocol.records import ID_RE, NAME_MAX
from server.appkeys import INVITATIONS
from server.handlers.common import (
    caller_of,
    json_response,
    limit_ip,
    read_json,
    require_founded,
)
from server.services.invitations import SHORT_SEALED_MAX


async def post_invitation(request: web.Request) -> web.Response:
    """``{"delegation", "member", "role"}`` -> ``{"expires", "id", "token"}``."""
    caller = caller_of(request)
    f = Fields(await read_json(request), "invitation")
    delegation = f.opt_str("delegation", max_len=64)
    member = f.str("member", max_len=64, pattern=ID_RE)
    role = f.str("role", max_len=16)
    f.done()
    if delegation is not None and not ID_RE.fullmatch(delegation):
        raise BadValueError("invitation.delegation: invalid value")
    invitation_id, token, expires = await request.app[INVITATIONS].create(
        caller, delegation=delegation, member=member, role=role
    )
    return json_response({"expires": expires, "id": invitation_id, "token": b64e(token)})


async def get_invitations(request: web.Request) -> web.Response:
    """The caller's invitations, with the keys of accepted ones."""
    caller = caller_of(request)
    rows = await request.app[INVITATIONS].list_for(caller)
    items: list[JSONValue] = [
        {
            "delegation": row.delegation,
            "device": None if row.device is None else parse(row.device),
            "expires": row.expires,
            "id": row.id,
            "member": row.member,
            "name": row.name,
            "role": row.role,
            "state": row.state,
        }
        for row in rows
    ]
    return json_response({"invitations": items})


async def post_accept(request: web.Request) -> web.Response:
    """``{"device", "name", "sig", "token"}`` -> ``{"state": "accepted"}``."""
    limit_ip(request)
    require_founded(request)
    f = Fields(await read_json(request), "acceptance")
    device = DevicePublic.from_json(f.raw("device"))
    # The name will be signed into the roster by the inviter: refuse now what the roster
    # would refuse then (protocol.names), so the joiner hears it while they can fix it.
    name = check_name(f.str("name", max_len=NAME_MAX), "acceptance.name")
    sig = f.bytes("sig", length=64)
    token = f.bytes("token", length=32)
    f.done()
    await request.app[INVITATIONS].accept(
        request.match_info["id"], token=token, device=device, name=name, sig=sig
    )
    return json_response({"state": "accepted"})


async def post_short(request: web.Request) -> web.Response:
    """``{"handle", "sealed"}``: the inviter stores its sealed code for a short code."""
    caller = caller_of(request)
    f = Fields(await read_json(request), "short")
    handle = f.bytes("handle", length=32)
    sealed = f.bytes("sealed", max_len=SHORT_SEALED_MAX)
    f.done()
    await request.app[INVITATIONS].store_short(
        caller, request.match_info["id"], handle=handle, sealed=sealed
    )
    return json_response({"state": "stored"})


async def post_short_lookup(request: web.Request) -> web.Response:
    """``{"handle"}`` -> ``{"sealed"}`` (unauthenticated: the joiner has no token yet)."""
    limit_ip(request)
    require_founded(request)
    f = Fields(await read_json(request), "short")
    handle = f.bytes("handle", length=32)
    f.done()
    sealed = await request.app[INVITATIONS].lookup_short(handle)
    return json_response({"sealed": b64e(sealed)})
