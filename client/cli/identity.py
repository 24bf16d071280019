"""Who is who: this device (``init``, ``join``, ``whoami``, ``fingerprint``) and the
verified roster (``roster``, ``channels``)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from client import keystore
from client.api import DocketClient
from client.cli.context import Context, sync_or_warn
from client.cli.output import add_row, new_table, short
from client.cli.parsing import Commands
from client.cli.server import add_ca_option, check_new_home_options, store_tls_choices
from client.errors import ClientError, ServerError, UsageError
from protocol.encoding import JSONValue, b64e


def register(commands: Commands) -> None:
    """Add ``init``, ``join``, ``whoami``, ``fingerprint``, ``roster`` and ``channels``."""
    add_ca_option(commands.add("init", cmd_init, "create device keys in an encrypted key store"))

    p = commands.add(
        "join", cmd_join, "accept an invitation: pin the talks and register this device"
    )
    p.add_argument(
        "code",
        help="the invitation code you were given: the full 'docket-invite:...' code, or "
        "the short code (like K7M2-Q9XW-4THB-3RDX, with --server)",
    )
    p.add_argument("--name", required=True, help="your display name")
    p.add_argument("--talks", help="the talks fingerprint or id, to check against the code")
    add_ca_option(p)

    commands.add("whoami", cmd_whoami, "show this device, member, role and talks")

    p = commands.add("fingerprint", cmd_fingerprint, "show fingerprints to compare aloud")
    p.add_argument("member", nargs="?", help="a member whose device fingerprints to show")

    commands.add("roster", cmd_roster, "show delegations and members from the verified log")
    commands.add("channels", cmd_channels, "show channels and their members")


async def cmd_init(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket init``: create device keys."""
    check_new_home_options(ctx, args)
    passphrase = keystore.read_passphrase(confirm=True)
    public = DocketClient.init_home(ctx.home, passphrase, server=ctx.server)
    store_tls_choices(ctx, args)
    ctx.say(f"Created device keys in {ctx.home}")
    ctx.say(f"Device fingerprint: {public.fingerprint}")
    ctx.say("Next: 'docket join CODE --name NAME' (or 'docket talks found' as the mediator).")
    return {
        "device": b64e(public.device_id),
        "device_fingerprint": public.fingerprint,
        "fingerprint": public.fingerprint,
        "home": str(ctx.home),
    }


async def cmd_join(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket join``: accept an invitation (creating keys if needed)."""
    check_new_home_options(ctx, args)
    if not keystore.keystore_path(ctx.home).exists():
        # Joining is most people's first step: create the device keys on the way.
        passphrase = keystore.read_passphrase(confirm=True)
        DocketClient.init_home(ctx.home, passphrase, server=ctx.server)
    store_tls_choices(ctx, args)
    async with ctx.client() as client:
        genesis = await client.join(args.code, name=args.name, expect_talks=args.talks)
        public = client.public()
        ctx.say(f"Joined talks {genesis.title!r} (fingerprint {genesis.fingerprint}).")
        ctx.say("Compare the talks fingerprint with the one the mediator gave you.")
        ctx.say(f"Your device fingerprint: {public.fingerprint}")
        ctx.say("Read it to whoever invited you; they enrol you with 'docket enrol'.")
        return {
            "device": b64e(public.device_id),
            "device_fingerprint": public.fingerprint,
            "fingerprint": public.fingerprint,
            "talks": b64e(genesis.talks_id),
            "talks_fingerprint": genesis.fingerprint,
        }


async def cmd_whoami(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket whoami``."""
    async with ctx.client() as client:
        refused: str | None = None
        if client.state.genesis() is not None:
            # Tell the truth about now: catch up first when the server lets us (a
            # removed or revoked device cannot, and the log verified so far says why).
            try:
                await client.sync()
            except ServerError as exc:
                ctx.warn(f"{exc} - showing the log as verified up to size {client.log.size}")
                if exc.status == 401:
                    refused = exc.code
            except ClientError as exc:
                ctx.warn(f"{exc} - showing the log as verified up to size {client.log.size}")
        me = client.whoami()
        if refused is not None and me.enrolled:
            # The server no longer lets this device in: removed, rotated or revoked in
            # entries we cannot fetch.  Say so rather than "enrolled".
            me = dataclasses.replace(
                me,
                status=f"refused by the server ({refused}): this device may have been "
                f"removed or revoked after log index {client.log.size - 1}",
            )
        ctx.say(f"home:        {ctx.home}")
        ctx.say(f"server:      {me.server or '-'}")
        ctx.say(f"member:      {me.member or '-'} ({me.role or 'no role'})")
        if me.delegation:
            ctx.say(f"delegation:  {me.delegation}")
        ctx.say(f"enrolled:    {'yes' if me.enrolled else (me.status or 'not yet')}")
        ctx.say(f"device:      {b64e(me.device.device_id)}")
        ctx.say(f"fingerprint: {me.device.fingerprint}")
        ctx.say(f"talks:       {me.talks_fingerprint or '-'}")
        if me.witness:
            ctx.say(f"witness as:  {me.witness}")
        if me.alarms:
            ctx.say(f"alarms:      {', '.join(me.alarms)}")
        return me.to_json()


async def cmd_fingerprint(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket fingerprint [MEMBER]``."""
    async with ctx.client() as client:
        if args.member is None:
            public = client.public()
            genesis = client.state.genesis()
            ctx.say(f"device: {public.fingerprint}")
            if genesis is not None:
                ctx.say(f"talks:  {genesis.fingerprint}")
            # ``device`` is a device id here as everywhere else; fingerprints say so.
            return {
                "device": b64e(public.device_id),
                "device_fingerprint": public.fingerprint,
                "talks": b64e(genesis.talks_id) if genesis else None,
                "talks_fingerprint": genesis.fingerprint if genesis else None,
            }
        await sync_or_warn(ctx, client)
        member = client.roster.members.get(args.member)
        if member is None:
            raise UsageError(f"no member {args.member!r} in the verified roster")
        out = []
        for device_id, device in sorted(member.devices.items()):
            ctx.say(f"{member.id} {short(device_id)}  {device.fingerprint}")
            out.append(
                {
                    "device": b64e(device_id),
                    "device_fingerprint": device.fingerprint,
                    "fingerprint": device.fingerprint,
                }
            )
        return {"devices": out, "member": member.id}


async def cmd_roster(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket roster``: delegations and members from the verified log."""
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        roster = client.roster
        genesis = roster.genesis
        ctx.say(f"Talks: {genesis.title} ({genesis.fingerprint})")
        members: list[JSONValue] = []
        groups: dict[str | None, list[Any]] = {}
        for m in roster.members.values():
            groups.setdefault(m.delegation, []).append(m)
            members.append(
                {
                    "active": m.active,
                    "delegation": m.delegation,
                    "devices": [b64e(d) for d in sorted(m.devices)],
                    "id": m.id,
                    "name": m.name,
                    "role": m.role,
                }
            )
        for key in sorted(groups, key=lambda k: (k is not None, k or "")):
            if key is None:
                ctx.say("Mediator side:")
            else:
                d = roster.delegations[key]
                ctx.say(f"Delegation {d.id}: {d.name} (head: {d.head})")
            table = new_table()
            for m in sorted(groups[key], key=lambda m: m.id):
                flag = "" if m.active else "[removed]"
                add_row(table, m.id, m.role, m.name, f"({len(m.devices)} device(s))", flag)
            ctx.say_table(table, indent=2)
        delegations: list[JSONValue] = [
            {"head": d.head, "id": d.id, "name": d.name} for d in roster.delegations.values()
        ]
        return {
            "delegations": delegations,
            "members": members,
            "roster_head": b64e(roster.head),
            "seq": roster.seq,
        }


async def cmd_channels(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket channels``."""
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        roster = client.roster
        me = client.member_id()
        out: list[JSONValue] = []
        table = new_table()
        for c in sorted(roster.channels.values(), key=lambda c: c.id):
            members = [m.id for m in roster.channel_members(c.id)]
            mine = " *" if me in members else ""
            add_row(table, c.id, c.kind, f"{c.name}{mine}")
            add_row(table, "", "", f"members: {', '.join(members)}")
            out.append(
                {
                    "delegations": list(c.delegations),
                    "id": c.id,
                    "kind": c.kind,
                    "members": members,
                    "name": c.name,
                    "mine": bool(mine),
                }
            )
        ctx.say_table(table)
        if out:
            ctx.say("(* = you are a member)")
        return {"channels": out}
