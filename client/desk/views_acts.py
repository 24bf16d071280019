"""The negotiation's acts and a head's device actions, as forms: initial (and withdraw)
a version, table a sealed proposal to an open call, the mediator's call open and
release, revoke a compromised device, grant a new device a channel's history.

Every handler here is a thin form over the library method the CLI uses
(:mod:`client.negotiation`, :mod:`client.lifecycle`), so the rules and their refusals
are the library's: a refusal is a stable code rendered by the app's error middleware,
with nothing signed.  Every one is refused while an alarm is raised, as sending is, and
every form carries the session's CSRF token (checked by the guard before this runs).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from client.api import DocketClient
from client.desk.app import DESK_KEY, Desk
from client.errors import UsageError
from client.lifecycle import device_lines, owns
from protocol.encoding import b64e
from protocol.envelope import Payload
from protocol.errors import ProtocolError
from protocol.roster import ROLE_MEDIATOR

MAX_CALL_MINUTES = 60 * 24 * 30


def add_routes(routes: web.RouteTableDef) -> None:
    routes.post("/draft/{index:\\d+}/initial")(initial)
    routes.post("/propose")(propose)
    routes.post("/calls/open")(call_open)
    routes.post("/calls/{number:\\d+}/release")(call_release)
    routes.post("/roster/revoke")(revoke)
    routes.post("/roster/grant")(grant)


def _refuse_if_blocked(desk: Desk, what: str) -> None:
    if desk.blocked():
        raise UsageError(f"{what} is blocked while an alarm is raised (see the banner)")


def _field(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


# -- what the pages show -----------------------------------------------------------------


def is_head(client: DocketClient) -> bool:
    """Whether this home's member heads a delegation (who initials for it)."""
    me = client.member_id()
    roster = client.roster
    if not me or me not in roster.members:
        return False
    delegation = roster.members[me].delegation
    return delegation is not None and roster.delegations[delegation].head == me


def agreement(client: DocketClient, index: int) -> dict[str, Any] | None:
    """The agreement state of the draft at ``index`` (tabled / initialled k of n /
    agreed), whether it is the version that can be initialled, and what this head may
    do; ``None`` for a channel without delegations."""
    header = client.log.draft(index)
    status = next((s for s in client.negotiation.texts() if s.draft == header.draft), None)
    if status is None:
        return None
    me = client.member_id()
    roster = client.roster
    mine = roster.members[me].delegation if me in roster.members else None
    return {
        "state": status.state,
        "newest": status.index,
        "current": status.index == index,
        "initialled": status.initialled,
        "parties": status.parties,
        "head": is_head(client) and mine in status.parties,
        "stands": mine in status.initialled,
        "agreed": status.agreed is not None,
    }


def open_calls(client: DocketClient) -> list[dict[str, Any]]:
    """Calls this member's delegation may still answer with a sealed proposal."""
    me = client.member_id()
    roster = client.roster
    if not me or me not in roster.members:
        return []
    delegation = roster.members[me].delegation
    now = int(time.time() * 1000)
    return [
        {"number": c.number, "channel": c.channel, "deadline": c.deadline}
        for c in client.negotiation.calls()
        if c.released_at is None
        and now <= c.deadline
        and delegation in c.delegations
        and delegation not in c.proposals
    ]


def mediator_calls(client: DocketClient) -> dict[str, Any] | None:
    """For the mediator: every call (to release) and the channels to open one on."""
    me = client.member_id()
    roster = client.roster
    if not me or me not in roster.members or roster.members[me].role != ROLE_MEDIATOR:
        return None
    channels = [c for c in roster.channels.values() if c.delegations]
    return {
        "calls": client.negotiation.calls(),
        "channels": channels,
        "delegations": sorted(roster.delegations),
    }


def owned_devices(client: DocketClient) -> list[dict[str, Any]]:
    """The current devices this member has authority over (a head: the delegation's;
    the mediator: the staff's), each with the channels it could be granted, except
    this desk's own device."""
    me = client.member_id()
    roster = client.roster
    if not me or me not in roster.members:
        return []
    out = []
    for line in device_lines(roster):
        if line.status != "current" or line.device == client.device_id:
            continue
        member = roster.members[line.member]
        if not member.active or not owns(roster, me, line.member):
            continue
        channels = sorted(
            c.id
            for c in roster.channels.values()
            if roster.is_channel_member(c.id, line.member) and roster.is_channel_member(c.id, me)
        )
        out.append(
            {
                "member": line.member,
                "device": b64e(line.device),
                "fingerprint": line.fingerprint,
                "channels": channels,
            }
        )
    return out


# -- the acts --------------------------------------------------------------------------


async def initial(request: web.Request) -> web.StreamResponse:
    """Initial (or withdraw the initial on) exactly the version at this index."""
    desk = request.app[DESK_KEY]
    index = int(request.match_info["index"])
    form = await request.post()
    withdraw = _field(form, "withdraw") == "1"
    _refuse_if_blocked(desk, "withdrawing an initial" if withdraw else "initialling")
    async with desk.lock:
        await desk.client.negotiation.initial(index, withdraw=withdraw)
    desk.hub.publish("log")
    raise web.HTTPSeeOther(f"/draft/{index}#agreement-h")


async def propose(request: web.Request) -> web.StreamResponse:
    """Table a sealed proposal (a text) to an open call; revealed after the release."""
    desk = request.app[DESK_KEY]
    _refuse_if_blocked(desk, "proposing")
    form = await request.post()
    number = _field(form, "call")
    text = _field(form, "text").replace("\r\n", "\n")
    if not number.isdigit():
        raise UsageError("choose the call to answer")
    if not text.strip():
        raise UsageError("give the text of the proposal")
    title = _field(form, "title").strip() or (text.strip().splitlines() or [""])[0][:80]
    try:
        payload = Payload(title=title, body=text)
    except ProtocolError as exc:
        raise UsageError(f"cannot propose this: {exc.detail}") from exc
    async with desk.lock:
        sent, _committed = await desk.client.negotiation.propose(
            int(number), payload, now=int(time.time() * 1000)
        )
    desk.hub.publish("log")
    raise web.HTTPSeeOther(f"/draft/{sent.index}")


async def call_open(request: web.Request) -> web.StreamResponse:
    """The mediator opens a call for sealed proposals on a channel."""
    desk = request.app[DESK_KEY]
    _refuse_if_blocked(desk, "opening a call")
    form = await request.post()
    channel = _field(form, "channel")
    delegations = [d for d in form.getall("delegation", []) if isinstance(d, str)]
    minutes = _field(form, "minutes")
    if not minutes.isdigit() or not 1 <= int(minutes) <= MAX_CALL_MINUTES:
        raise UsageError(f"the deadline is 1 to {MAX_CALL_MINUTES} minutes from now")
    if not delegations:
        raise UsageError("name at least one delegation the call is for")
    deadline = int(time.time() * 1000) + int(minutes) * 60_000
    async with desk.lock:
        await desk.client.negotiation.open_call(channel, delegations, deadline)
    desk.hub.publish("log")
    raise web.HTTPSeeOther("/compose#calls-h")


async def call_release(request: web.Request) -> web.StreamResponse:
    """The mediator releases a call: proposers may then reveal."""
    desk = request.app[DESK_KEY]
    _refuse_if_blocked(desk, "releasing a call")
    async with desk.lock:
        await desk.client.negotiation.release(int(request.match_info["number"]))
    desk.hub.publish("log")
    raise web.HTTPSeeOther("/compose#calls-h")


async def revoke(request: web.Request) -> web.StreamResponse:
    """Revoke a compromised device for good (head; the mediator for staff)."""
    desk = request.app[DESK_KEY]
    _refuse_if_blocked(desk, "revoking a device")
    form = await request.post()
    member, device, since = _field(form, "member"), _field(form, "device"), _field(form, "since")
    if not since.isdigit():
        raise UsageError("give the log index from which the device is compromised")
    async with desk.lock:
        await desk.client.lifecycle.revoke_device(member, device, since=since)
    desk.hub.publish("log")
    raise web.HTTPSeeOther("/roster#devices-h")


async def grant(request: web.Request) -> web.StreamResponse:
    """Grant a member's (new) device the history of a channel, up to now."""
    desk = request.app[DESK_KEY]
    _refuse_if_blocked(desk, "granting history")
    form = await request.post()
    member, device, channel = (_field(form, k) for k in ("member", "device", "channel"))
    async with desk.lock:
        _sent, indices = await desk.client.lifecycle.grant(member, device, channel=channel)
    desk.hub.publish("log")
    raise web.HTTPSeeOther(f"/roster?granted={len(indices)}#devices-h")
