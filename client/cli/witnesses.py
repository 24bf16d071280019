"""Witnesses and the witness policy: ``witness add|remove|list``, ``policy show|set``,
and the policy options of ``talks found``.

A witness is named by its C2SP key name and vouches with its Ed25519 key; the roster
records which party it speaks for (the mediator's side, a delegation, or an outside
observer).  The policy says which cosignatures make a checkpoint trusted and how long
they count as fresh; clients refuse to act on a view no fresh quorum vouches for.
"""

from __future__ import annotations

import argparse

from client.cli.context import Context, sync_or_warn
from client.cli.output import terminal_safe
from client.cli.parsing import Commands, Parser
from client.errors import UsageError
from client.witnessd.cli import add_commands as witnessd_commands
from protocol.checkpoint import parse_vkey
from protocol.encoding import JSONValue, b64d, b64e
from protocol.errors import ProtocolError
from protocol.genesis import (
    DEFAULT_MAX_AGE,
    RULE_PARTIES,
    RULES,
    ExternalWitness,
    WitnessPolicy,
)
from protocol.roster import PARTY_MEDIATOR, PARTY_OUTSIDE


def register(commands: Commands) -> None:
    """Add the ``witness`` and ``policy`` groups."""
    witness = commands.group("witness", "witnesses of the log")
    p = witness.add(
        "add",
        cmd_witness_add,
        "register a witness key (mediator: its own or an outside one; head: its delegation's)",
    )
    p.add_argument("name", help="the witness's key name, e.g. ORIGIN/witness/north-box")
    p.add_argument("--key", required=True, help="its Ed25519 public key (base64url or vkey)")
    side = p.add_mutually_exclusive_group()
    side.add_argument("--delegation", help="the delegation it speaks for (heads: their own)")
    side.add_argument("--outside", action="store_true", help="an outside observer (mediator only)")
    p = witness.add("remove", cmd_witness_remove, "retire a registered witness for good")
    p.add_argument("name", help="the witness's key name")
    witness.add("list", cmd_witness_list, "the witnesses, their parties and keys")
    # ``init`` and ``serve``: the always-on tlog-witness daemon (client.witnessd).
    witnessd_commands(witness.subparsers)

    policy = commands.group("policy", "the witness policy")
    policy.add("show", cmd_policy_show, "the witness policy in force")
    p = policy.add(
        "set",
        cmd_policy_set,
        "replace the witness policy (mediator; the quorum in force must cosign it)",
    )
    policy_options(p)


def policy_options(p: Parser) -> None:
    """The options that describe a witness policy (``talks found``, ``policy set``)."""
    p.add_argument(
        "--rule",
        choices=RULES,
        default=RULE_PARTIES,
        help="parties: the mediator and a majority of the delegations (default); "
        "count: any --quorum witnesses",
    )
    p.add_argument(
        "--quorum", type=int, default=1, help="witnesses needed in all (count rule; default 1)"
    )
    p.add_argument(
        "--max-age",
        type=int,
        default=DEFAULT_MAX_AGE,
        help=f"seconds a cosignature counts as fresh (default {DEFAULT_MAX_AGE})",
    )
    p.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="NAME=KEY",
        help="an outside witness (repeatable)",
    )
    p.add_argument(
        "--no-fresh-quorum",
        action="store_true",
        help="let clients act on any signed view, not only on one a fresh quorum cosigned",
    )
    p.add_argument(
        "--accept-single-witness",
        action="store_true",
        help="accept a policy under which one witness alone makes a checkpoint trusted",
    )


def witness_key(text: str) -> bytes:
    """A witness public key given as base64url (32 bytes) or a C2SP vkey
    (``name+hexkeyid+base64(0x01 || key)``)."""
    try:
        if "+" in text:
            return parse_vkey(text)[1]
        return b64d(text, length=32, what="witness key")
    except ProtocolError as exc:
        raise UsageError(f"bad witness key: {exc.detail}") from exc


def policy_from_args(args: argparse.Namespace) -> WitnessPolicy:
    """The policy the options describe; refuses a single-witness policy unless accepted."""
    external = []
    for item in args.witness:
        name, sep, key = item.partition("=")
        if not sep:
            raise UsageError(f"--witness needs NAME=KEY, not {item!r}")
        try:
            external.append(ExternalWitness(name=name, key=witness_key(key)))
        except ProtocolError as exc:
            raise UsageError(f"--witness {name}: {exc.detail}") from exc
    try:
        policy = WitnessPolicy(
            quorum=args.quorum,
            rule=args.rule,
            max_age=args.max_age,
            external=tuple(external),
            fresh=not args.no_fresh_quorum,
        )
    except ProtocolError as exc:
        raise UsageError(f"bad witness policy: {exc.detail}") from exc
    if policy.single_witness and not args.accept_single_witness:
        raise UsageError(
            "a count policy with quorum 1 lets one witness (and the host) fork the log "
            "unseen; use the default parties rule, a larger --quorum, or say "
            "--accept-single-witness"
        )
    return policy


def policy_json(policy: WitnessPolicy) -> JSONValue:
    return {**policy.to_json(), "description": policy.describe()}


async def cmd_witness_add(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket witness add``: a signed ``witness.set`` roster change."""
    key = witness_key(args.key)
    async with ctx.client() as client:
        await client.sync()
        if args.outside:
            party = PARTY_OUTSIDE
        elif args.delegation:
            party = args.delegation
        else:
            me = client.roster.members.get(client.member_id() or "")
            party = me.delegation if me is not None and me.delegation else PARTY_MEDIATOR
        sent = await client.set_witness(args.name, key=key, party=party)
        ctx.say(f"Witness {terminal_safe(args.name)} registered for {party} at index {sent.index}.")
        return {"index": sent.index, "name": args.name, "party": party, "key": b64e(key)}


async def cmd_witness_remove(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket witness remove``: a signed ``witness.remove`` roster change."""
    async with ctx.client() as client:
        await client.sync()
        sent = await client.remove_witness(args.name)
        ctx.say(f"Witness {terminal_safe(args.name)} retired at index {sent.index}.")
        return {"index": sent.index, "name": args.name}


async def cmd_witness_list(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket witness list``: from the verified roster."""
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        roster = client.roster
        parties = roster.witness_parties()
        out: list[JSONValue] = []
        for name, keys in sorted(roster.witnesses().items()):
            party = parties.get(name, "?")
            out.append({"name": name, "party": party, "keys": [b64e(k) for k in keys]})
            ctx.say(f"{terminal_safe(name)}  ({terminal_safe(party)}, {len(keys)} key(s))")
        ctx.say(f"Policy: {roster.policy.describe()}")
        return {"witnesses": out, "policy": policy_json(roster.policy)}


async def cmd_policy_show(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket policy show``."""
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        policy = client.roster.policy
        ctx.say(f"Witness policy: {policy.describe()}")
        return policy_json(policy)


async def cmd_policy_set(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket policy set``: a signed ``policy.set`` roster change (mediator)."""
    policy = policy_from_args(args)
    async with ctx.client() as client:
        await client.sync()
        sent = await client.set_policy(policy)
        ctx.say(f"Witness policy replaced at index {sent.index}: {policy.describe()}")
        ctx.say("It governs checkpoints once the quorum in force has cosigned the change.")
        return {"index": sent.index, "policy": policy_json(policy)}
