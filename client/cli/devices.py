"""Devices, people and keys over months of talks: ``device invite|add|approve|list|
remove|rotate|revoke``, ``grant``, ``leave``, ``keys export|import`` and ``passphrase``
(docs/PROTOCOL.md section 5a; the library side is :mod:`client.lifecycle` and
:mod:`client.backup`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from client import backup, keystore
from client.cli.context import Context, sync_or_warn
from client.cli.output import fmt_time
from client.cli.parsing import Commands
from client.errors import KeystoreError, UsageError
from client.lifecycle import device_lines
from client.state import STATE_FILE, LocalState
from protocol.encoding import JSONValue, b64e


def register(commands: Commands) -> None:
    """Add the ``device`` and ``keys`` groups, ``grant``, ``leave`` and ``passphrase``."""
    device = commands.group("device", "a member's devices: add, list, rotate, remove, revoke")
    p = device.add(
        "invite",
        cmd_device_invite,
        "invite a new device of a member (head, or the member's own device)",
    )
    p.add_argument("member", nargs="?", help="whose device (default: yours)")
    p = device.add(
        "add",
        cmd_device_add,
        "enrol the device that accepted your device invitation",
        description="enrol (as head) or propose (as the member's own device) the new device "
        "that joined with your device invitation; compare its fingerprint aloud first",
    )
    p.add_argument("member", help="whose device")
    p.add_argument("--fingerprint", help="the new device's fingerprint, as read to you")
    p = device.add("approve", cmd_device_approve, "head: enrol a device a member's device proposed")
    p.add_argument("member", help="whose device")
    p.add_argument("--device", help="the proposed device id (or a prefix)")
    p.add_argument("--fingerprint", help="its fingerprint, as read to you")
    p = device.add("list", cmd_device_list, "current, proposed and former devices")
    p.add_argument("member", nargs="?", help="one member (default: everyone)")
    p = device.add("remove", cmd_device_remove, "retire a device of a member (head)")
    p.add_argument("member", help="whose device")
    p.add_argument("device", help="device id (or a unique prefix)")
    p = device.add(
        "rotate",
        cmd_device_rotate,
        "new keys for a device (old ones retired, old signatures stay attributable)",
        description="on your device: rotate its keys (a head or the mediator directly; a "
        "member proposes new keys, the head rotates them in, then run this again); as "
        "head: 'device rotate MEMBER DEVICE' rotates in the keys that device proposed",
    )
    p.add_argument("member", nargs="?", help="head: the member whose device to rotate")
    p.add_argument("device", nargs="?", help="head: that device's id (or a prefix)")
    p = device.add(
        "revoke",
        cmd_device_revoke,
        "revoke a compromised device for good (head; mediator for staff)",
    )
    p.add_argument("member", help="whose device")
    p.add_argument("device", help="device id (or a unique prefix)")
    p.add_argument(
        "--compromised-since",
        required=True,
        help="the log index (or time: ms since the epoch or ISO 8601) the compromise began",
    )

    p = commands.add("grant", cmd_grant, "give a new device the earlier drafts of a channel")
    p.add_argument("member", help="the member whose device gets the history")
    p.add_argument("device", help="their device id (or a unique prefix)")
    p.add_argument("--channel", required=True, help="the channel")
    p.add_argument("--upto", type=int, help="last log index to include (default: all)")

    commands.add("leave", cmd_leave, "leave the talks (your devices are retired for good)")

    keys = commands.group("keys", "back up and restore this device's keys")
    p = keys.add("export", cmd_keys_export, "write an encrypted backup (Argon2id) of the keys")
    p.add_argument("file", help="the backup file to create")
    p = keys.add("import", cmd_keys_import, "restore a backup into a new home")
    p.add_argument("file", help="the backup file")

    commands.add("passphrase", cmd_passphrase, "change the key store passphrase (no re-keying)")


async def cmd_device_invite(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket device invite [MEMBER]``."""
    async with ctx.client() as client:
        inv = await client.lifecycle.invite_device(args.member)
        ctx.say(f"Device invitation for {inv.member} expires {fmt_time(inv.expires)}.")
        ctx.say("On the new device: docket join CODE --name NAME, with this code:")
        ctx.say(inv.code)
        return inv.to_json()


async def cmd_device_add(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket device add MEMBER``."""
    async with ctx.client() as client:
        sent, device, proposed = await client.lifecycle.add_device(
            args.member, expect_fingerprint=args.fingerprint
        )
        verb = "Proposed" if proposed else "Added"
        ctx.say(
            f"{verb} device {b64e(device.device_id)} of {args.member} (log index {sent.index})."
        )
        ctx.say(f"Device fingerprint: {device.fingerprint} - compare it aloud with the device.")
        if proposed:
            ctx.say(f"Your head approves it with 'docket device approve {args.member}'.")
        out = sent.to_json()
        out.update(device=b64e(device.device_id), fingerprint=device.fingerprint, proposed=proposed)
        return out


async def cmd_device_approve(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket device approve MEMBER``."""
    async with ctx.client() as client:
        sent = await client.lifecycle.approve_device(
            args.member, device=args.device, fingerprint=args.fingerprint
        )
        ctx.say(f"Approved the proposed device of {args.member} (log index {sent.index}).")
        return sent.to_json()


async def cmd_device_list(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket device list [MEMBER]``."""
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        lines = device_lines(client.roster, args.member)
        for line in lines:
            ctx.say(f"{line.member:<12} {b64e(line.device)}  {line.fingerprint}  {line.status}")
        return {"devices": [line.to_json() for line in lines]}


async def cmd_device_remove(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket device remove MEMBER DEVICE``."""
    async with ctx.client() as client:
        sent = await client.lifecycle.remove_device(args.member, args.device)
        ctx.say(f"Removed the device of {args.member} (log index {sent.index}).")
        return sent.to_json()


async def cmd_device_rotate(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket device rotate [MEMBER DEVICE]``."""
    async with ctx.client() as client:
        out = await client.lifecycle.rotate(args.member, args.device)
        state = out["state"]
        if state == "proposed":
            ctx.say(
                f"Proposed new keys (log index {out['index']}), fingerprint {out['fingerprint']}."
            )
            ctx.say("Your head rotates them in; then run 'docket device rotate' again here.")
        elif state == "waiting":
            ctx.say("Your new keys are proposed; your head has not rotated them in yet.")
        else:
            ctx.say(f"Rotated: the new device id is {out['new_device']}.")
            if "fingerprint" in out:
                ctx.say(f"New fingerprint: {out['fingerprint']}")
        result: dict[str, JSONValue] = dict(out)
        return result


async def cmd_device_revoke(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket device revoke MEMBER DEVICE --compromised-since INDEX|TIME``."""
    async with ctx.client() as client:
        sent, since = await client.lifecycle.revoke_device(
            args.member, args.device, since=args.compromised_since
        )
        ctx.say(
            f"Revoked the device of {args.member} (log index {sent.index}); what it signed "
            f"from index {since} on is flagged as signed after a declared compromise."
        )
        out = sent.to_json()
        out["since"] = since
        return out


async def cmd_grant(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket grant MEMBER DEVICE --channel C``."""
    async with ctx.client() as client:
        sent, indices = await client.lifecycle.grant(
            args.member, args.device, channel=args.channel, upto=args.upto
        )
        ctx.say(
            f"Granted {len(indices)} draft(s) of {args.channel} to {args.member}'s device "
            f"(log index {sent.index})."
        )
        out = sent.to_json()
        out["drafts"] = list(indices)
        return out


async def cmd_leave(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket leave``."""
    async with ctx.client() as client:
        sent = await client.lifecycle.leave()
        ctx.say(f"You left the talks (log index {sent.index}); this device is retired.")
        return sent.to_json()


def _pinned(home: Path) -> bytes | None:
    """The talks id a home is pinned to, if it has local state."""
    if not (home / STATE_FILE).exists():
        return None
    state = LocalState(home)
    try:
        genesis = state.genesis()
    finally:
        state.close()
    return None if genesis is None else genesis.talks_id


async def cmd_keys_export(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket keys export FILE``: sealed under the key store passphrase."""
    passphrase = keystore.read_passphrase()
    keys = backup.export_keys(ctx.home, Path(args.file), passphrase, _pinned(ctx.home), os.urandom)
    ctx.say(f"Wrote an encrypted backup of device {b64e(keys.device_id)} to {args.file}.")
    ctx.say("It opens only with this passphrase; keep it apart from the device.")
    return {"device": b64e(keys.device_id), "file": args.file}


async def cmd_keys_import(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket keys import FILE`` into a home without a key store."""
    passphrase = keystore.read_passphrase()
    keys, talks = backup.import_keys(
        ctx.home, Path(args.file), passphrase, _pinned(ctx.home), os.urandom
    )
    ctx.say(f"Restored device {b64e(keys.device_id)} into {ctx.home}.")
    ctx.say(f"Device fingerprint: {keys.public.fingerprint}")
    return {
        "device": b64e(keys.device_id),
        "fingerprint": keys.public.fingerprint,
        "talks": None if talks is None else b64e(talks),
    }


async def cmd_passphrase(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket passphrase``: the current passphrase, then the new one
    (``DOCKET_NEW_PASSPHRASE`` when not on a terminal)."""
    old = keystore.read_passphrase()
    new = os.environ.get(NEW_PASSPHRASE_ENV)
    if new is None:
        if os.environ.get(keystore.PASSPHRASE_ENV) is not None:
            raise UsageError(f"set {NEW_PASSPHRASE_ENV} to the new passphrase")
        new = keystore.read_passphrase(confirm=True, prompt="New passphrase: ")
    keystore.check_strength(new)
    if new == old:
        raise KeystoreError("the new passphrase is the old one")
    keystore.change_passphrase(ctx.home, old, new, os.urandom)
    ctx.say("Changed the passphrase; the keys are unchanged.")
    return {"changed": True, "device": b64e(keystore.load_public(ctx.home).device_id)}


NEW_PASSPHRASE_ENV = "DOCKET_NEW_PASSPHRASE"  # noqa: S105 - the variable's name
