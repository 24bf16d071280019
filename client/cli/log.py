"""The verified log: ``log`` (metadata only) and ``checkpoint`` (gossip)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from client.api import DocketClient
from client.cli.context import Context, sync_or_warn
from client.cli.output import add_row, new_table, right, short
from client.cli.parsing import Commands, positive
from client.errors import UsageError
from protocol.encoding import JSONValue, b64e


def register(commands: Commands) -> None:
    """Add ``log`` and ``checkpoint``."""
    p = commands.add("log", cmd_log, "list the verified log (metadata only)")
    p.add_argument("--start", type=positive, default=0, help="first index to show")
    p.add_argument("--limit", type=positive, help="show at most N entries")

    p = commands.add(
        "checkpoint", cmd_checkpoint, "print the verified checkpoint, or check another's"
    )
    p.add_argument(
        "--check", metavar="FILE", help="a checkpoint note someone else got from the server"
    )


async def cmd_log(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket log``: the verified log, metadata only."""
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        log = client.log
        start = max(0, args.start)
        end = log.size if args.limit is None else min(log.size, start + args.limit)
        out: list[JSONValue] = []
        table = new_table(right(min_width=5))
        for index in range(start, end):
            summary = describe_entry(client, index)
            add_row(table, str(index), log.kinds[index], summary)
            out.append({"index": index, "kind": log.kinds[index], "summary": summary})
        ctx.say_table(table)
        cp = client.state.checkpoint()
        if cp is not None:
            ctx.say(f"verified checkpoint: size {cp.size}, root {b64e(cp.root)}")
        return {"checkpoints": client.trusted_summary(), "entries": out, "size": log.size}


async def cmd_checkpoint(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket checkpoint [--check FILE]``: gossip.  Print the last verified checkpoint
    note (for other participants to check), or check one they received."""
    async with ctx.client() as client:
        if args.check is None:
            await client.sync()
            note = client.checkpoint_note()
            for line in note.splitlines():
                ctx.say(line)
            return {"note": note}
        try:
            data = Path(args.check).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {args.check}: {exc.strerror}") from exc
        cp = await client.check_checkpoint(data)
        ctx.say(f"Consistent: the checkpoint of size {cp.size} agrees with the verified log.")
        return {"consistent": True, "root": b64e(cp.root), "size": cp.size}


def describe_entry(client: DocketClient, index: int) -> str:
    """One line about a log entry, from the verified log only (never plaintext)."""
    from protocol.acts import Act
    from protocol.envelope import DraftHeader
    from protocol.genesis import Genesis
    from protocol.receipt import Receipt
    from protocol.roster import RosterChange

    log = client.log
    roster = client.roster
    entry = log.parsed[index]
    if isinstance(entry, Genesis):
        return f"talks {entry.title!r} founded by {entry.mediator} (origin {entry.origin})"
    if isinstance(entry, RosterChange):
        author = _member_of(roster, entry.author)
        a = entry.args
        target = a.channel or a.delegation or a.member or ""
        return f"{entry.op} {target} by {author}"
    if isinstance(entry, DraftHeader):
        origin = log.origins[index]
        return (
            f"{origin.member} -> {entry.channel}  draft {short(entry.draft)} v{entry.version} "
            f"({len(entry.recipients)} devices)"
        )
    if isinstance(entry, Act):
        return f"act {entry.kind} by {_member_of(roster, entry.device)}"
    receipt: Receipt = entry
    return f"{receipt.kind} by {_member_of(roster, receipt.device)} for draft {receipt.index}"


def _member_of(roster: Any, device: bytes) -> str:
    for member in roster.members.values():
        if device in member.devices:
            return str(member.id)
    return short(device)
