"""Changing the roster: ``talks found``, ``delegation create``, ``channel create``,
``channel members``, ``invite``, ``enrol`` and ``remove``.  The client checks the
author's authority before signing; the verified log is the judge."""

from __future__ import annotations

import argparse
import io

import segno

from client import keystore
from client.admin import check_log_key
from client.api import ROLES, DocketClient
from client.cli.context import Context
from client.cli.output import fmt_time
from client.cli.parsing import Commands
from client.cli.server import add_ca_option, check_new_home_options, store_tls_choices
from client.cli.witnesses import policy_from_args, policy_json, policy_options
from protocol.encoding import JSONValue, b64e
from protocol.roster import CHANNEL_KINDS


def register(commands: Commands) -> None:
    """Add the ``talks``, ``delegation`` and ``channel`` groups, ``invite``, ``enrol`` and
    ``remove``."""
    talks = commands.group("talks", "found the talks (mediator)")
    p = talks.add("found", cmd_talks_found, "sign and submit the genesis")
    p.add_argument("--token", required=True, help="founding token from 'docket-server init'")
    p.add_argument("--log-key", required=True, help="the server's log key (base64url)")
    p.add_argument("--origin", required=True, help="the server's log origin")
    p.add_argument("--title", required=True, help="title of the talks")
    p.add_argument("--member", default="mediator", help="the mediator's member id")
    p.add_argument("--name", required=True, help="the mediator's display name")
    policy_options(p)
    add_ca_option(p)

    delegation = commands.group("delegation", "manage delegations (mediator)")
    p = delegation.add(
        "create",
        cmd_delegation_create,
        "create a delegation and name its head",
        description="create a delegation headed by a member who accepted a head invitation",
    )
    p.add_argument("id", help="delegation id")
    p.add_argument("--name", required=True, help="delegation name")
    p.add_argument("--head", required=True, help="member id of the head (invited as head)")
    p.add_argument("--fingerprint", help="the head's device fingerprint, as read to you")
    p = delegation.add("head", cmd_delegation_head, "replace a delegation's head (mediator)")
    p.add_argument("id", help="delegation id")
    p.add_argument("member", help="the member of that delegation who becomes its head")

    channel = commands.group("channel", "manage channels (mediator)")
    p = channel.add("create", cmd_channel_create, "create a channel")
    p.add_argument("id", help="channel id")
    p.add_argument("--name", required=True, help="channel name")
    p.add_argument("--kind", required=True, choices=CHANNEL_KINDS, help="channel kind")
    _channel_member_options(p)
    p = channel.add(
        "members",
        cmd_channel_members,
        "set a channel's members",
        description="replace a channel's members",
    )
    p.add_argument("id", help="channel id")
    _channel_member_options(p)

    p = commands.add("invite", cmd_invite, "invite a person (mediator: any role; head: members)")
    p.add_argument("member", help="member id to give them")
    p.add_argument("--role", default="member", choices=ROLES, help="their role")
    p.add_argument("--delegation", help="their delegation (mediator inviting a head or member)")
    p.add_argument("--no-qr", action="store_true", help="do not draw the code as a QR code")

    p = commands.add("enrol", cmd_enrol, "enrol an invited person who has joined")
    p.add_argument("member", help="member id")
    p.add_argument("--fingerprint", help="their device fingerprint, as read to you")

    p = commands.add("remove", cmd_remove, "remove a member of your delegation (or mediator staff)")
    p.add_argument("member", help="member id")


def _channel_member_options(p: argparse.ArgumentParser) -> None:
    """``--delegation`` and ``--member`` (repeatable): who is in a channel."""
    p.add_argument("--delegation", action="append", help="member delegation; repeatable")
    p.add_argument("--member", action="append", help="individual member; repeatable")


async def cmd_talks_found(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket talks found``: sign and submit the genesis."""
    log_key = check_log_key(args.log_key)
    policy = policy_from_args(args)
    check_new_home_options(ctx, args)
    if not keystore.keystore_path(ctx.home).exists():
        passphrase = keystore.read_passphrase(confirm=True)
        DocketClient.init_home(ctx.home, passphrase, server=ctx.server)
    store_tls_choices(ctx, args)
    async with ctx.client() as client:
        genesis = await client.found_talks(
            founding_token=args.token,
            title=args.title,
            mediator=args.member,
            mediator_name=args.name,
            log_key=log_key,
            origin=args.origin,
            policy=policy,
        )
        ctx.say(f"Founded {genesis.title!r}.")
        ctx.say(f"Witness policy: {policy.describe()}")
        ctx.say(f"Talks fingerprint: {genesis.fingerprint}")
        ctx.say(f"Talks id:          {b64e(genesis.talks_id)}")
        ctx.say("Hand the fingerprint to every delegation out of band.")
        return {
            "fingerprint": genesis.fingerprint,
            "origin": genesis.origin,
            "policy": policy_json(policy),
            "talks": b64e(genesis.talks_id),
        }


async def cmd_delegation_create(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket delegation create``."""
    async with ctx.client() as client:
        sent = await client.create_delegation(
            args.id, name=args.name, head=args.head, expect_fingerprint=args.fingerprint
        )
        ctx.say(f"Created delegation {args.id} headed by {args.head} (log index {sent.index}).")
        return sent.to_json()


async def cmd_delegation_head(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket delegation head ID MEMBER``: the old head's authority ends there."""
    async with ctx.client() as client:
        sent = await client.lifecycle.replace_head(args.id, args.member)
        ctx.say(f"{args.member} now heads {args.id} (log index {sent.index}).")
        return sent.to_json()


async def cmd_channel_create(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket channel create``."""
    async with ctx.client() as client:
        sent = await client.create_channel(
            args.id,
            name=args.name,
            kind=args.kind,
            delegations=args.delegation or (),
            members=args.member or (),
        )
        ctx.say(f"Created channel {args.id} (log index {sent.index}).")
        return sent.to_json()


async def cmd_channel_members(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket channel members``."""
    async with ctx.client() as client:
        sent = await client.set_channel_members(
            args.id, delegations=args.delegation or (), members=args.member or ()
        )
        ctx.say(f"Set the members of channel {args.id} (log index {sent.index}).")
        return sent.to_json()


async def cmd_invite(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket invite``: print an invitation code."""
    async with ctx.client() as client:
        inv = await client.invite(args.member, role=args.role, delegation=args.delegation)
        ctx.say(f"Invitation for {inv.member} ({inv.role}) expires {fmt_time(inv.expires)}.")
        ctx.say("Give them this code over a trusted channel:")
        ctx.say(inv.code)
        if inv.short_code:
            ctx.say("")
            ctx.say(f"Or read them the short code: {inv.short_code}")
            ctx.say(f"  docket join {inv.short_code} --server {client.server} --name NAME")
            ctx.say("  (the rest is fetched from the server and checked against the code)")
        if not args.no_qr:
            ctx.say("")
            ctx.say("Or let them scan the full code:")
            for line in qr_lines(inv.code):
                ctx.say(line)
        return inv.to_json()


def qr_lines(text: str) -> list[str]:
    """``text`` as a QR code in Unicode half blocks (segno's compact terminal rendering:
    plain characters, no escape sequences), dark modules as spaces on light blocks."""
    buffer = io.StringIO()
    segno.make(text, error="l").terminal(out=buffer, compact=True, border=2)
    return buffer.getvalue().splitlines()


async def cmd_enrol(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket enrol MEMBER``."""
    async with ctx.client() as client:
        sent = await client.enrol(args.member, expect_fingerprint=args.fingerprint)
        ctx.say(f"Enrolled {args.member} (log index {sent.index}).")
        if args.fingerprint is None:
            member = client.roster.members[args.member]
            for device in member.devices.values():
                ctx.say(f"Device fingerprint: {device.fingerprint} - confirm it with them.")
        return sent.to_json()


async def cmd_remove(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket remove MEMBER``."""
    async with ctx.client() as client:
        sent = await client.remove(args.member)
        ctx.say(f"Removed {args.member} (log index {sent.index}).")
        return sent.to_json()
