"""The negotiation: ``rounds``, ``round``, ``initial``, ``agreed``, ``call``, ``propose``,
``reveal`` and ``proposal`` (see :mod:`client.negotiation`)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from client.api import DocketClient
from client.cli.context import Context, sync_or_warn
from client.cli.output import add_row, new_table, short
from client.cli.parsing import Commands, positive
from client.errors import StateError, UsageError
from protocol import crypto
from protocol.encoding import JSONValue
from protocol.envelope import MAX_FILE_NAME, Payload
from protocol.errors import ProtocolError


def register(commands: Commands) -> None:
    """Add the negotiation's commands."""
    p = commands.add(
        "rounds", cmd_rounds, "the rounds: opened, closed over a checkpoint, countersigned"
    )
    p.add_argument("--bundle", type=positive, metavar="N", help="write round N's record bundle")
    p.add_argument("--channel", help="with --bundle: a channel's round (default: whole talks)")
    p.add_argument("--out", metavar="FILE", help="where to write the bundle (with --bundle)")
    group = commands.group("round", "open, close or countersign a round")
    for action, handler, text in (
        ("open", cmd_round_open, "open the next round (mediator)"),
        ("close", cmd_round_close, "close the open round over the log so far (mediator)"),
        ("countersign", cmd_round_countersign, "accept a closed round's record (heads)"),
    ):
        p = group.add(action, handler, text)
        if action == "countersign":
            p.add_argument("round", type=positive, metavar="N", help="round number")
        p.add_argument("--channel", help="a channel's round (default: the whole talks)")

    p = commands.add("initial", cmd_initial, "initial exactly one version, ad referendum (heads)")
    p.add_argument("msg", type=positive, metavar="MSG", help="log index of the version")
    p.add_argument("--withdraw", action="store_true", help="withdraw your delegation's initial")

    p = commands.add("agreed", cmd_agreed, "agreed texts, and where every other text stands")
    p.add_argument("--bundle", type=positive, metavar="MSG", help="write an agreed-text bundle")
    p.add_argument("--out", metavar="FILE", help="where to write the bundle (with --bundle)")

    group = commands.group("call", "calls for sealed proposals (simultaneous exchange)")
    p = group.add("open", cmd_call_open, "open a call for proposals on a channel (mediator)")
    p.add_argument("channel", help="channel id")
    p.add_argument(
        "--delegation", action="append", required=True, help="a delegation called; repeatable"
    )
    p.add_argument(
        "--deadline", type=positive, required=True, metavar="SECONDS", help="seconds from now"
    )
    p = group.add("release", cmd_call_release, "release a call once all committed (mediator)")
    p.add_argument("call", type=positive, metavar="N", help="call number")
    group.add("list", cmd_call_list, "calls, their proposals and who has not revealed")

    p = commands.add("propose", cmd_propose, "table a sealed proposal for a call")
    p.add_argument("call", type=positive, metavar="N", help="call number")
    p.add_argument("file", nargs="?", help="file to propose")
    p.add_argument("--text", help="propose this text instead of a file")
    p.add_argument("--title", help="title (default: file name or first line)")

    p = commands.add("reveal", cmd_reveal, "reveal your sealed proposal to a released call")
    p.add_argument("call", type=positive, metavar="N", help="call number")

    p = commands.add("proposal", cmd_proposal, "open a revealed proposal (checks its commitment)")
    p.add_argument("msg", type=positive, metavar="MSG", help="log index of the sealed draft")


def _channel(args: argparse.Namespace) -> str | None:
    channel: str | None = args.channel
    return channel


async def cmd_rounds(ctx: Context, args: argparse.Namespace) -> JSONValue:
    if args.bundle is not None:
        out = _new_out(args)
        async with ctx.client() as client:
            bundle = await client.disclose_round(args.bundle, args.channel)
            return _write_bundle(ctx, client, out, bundle.to_bytes(), f"round {args.bundle}")
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        rounds = client.negotiation.rounds()
        if not rounds:
            ctx.say("No rounds yet.")
        table = new_table()
        for r in rounds:
            closed = f"closed at {r.closed_at}: size {r.size}, root {short(r.root or b'')}"
            signed = ", ".join(sorted(r.countersigns)) or "-"
            add_row(
                table,
                f"round {r.number}",
                r.channel or "(whole talks)",
                f"opened at {r.opened_at}",
                closed if r.closed_at is not None else "open",
                f"countersigned: {signed}",
            )
        ctx.say_table(table)
        return {"rounds": [r.to_json() for r in rounds]}


async def cmd_round_open(ctx: Context, args: argparse.Namespace) -> JSONValue:
    async with ctx.client() as client:
        sent = await client.negotiation.open_round(_channel(args))
        ctx.say(f"Round opened (log index {sent.index}).")
        return sent.to_json()


async def cmd_round_close(ctx: Context, args: argparse.Namespace) -> JSONValue:
    async with ctx.client() as client:
        sent = await client.negotiation.close_round(_channel(args))
        ctx.say(f"Round closed over the log up to size {sent.index} (log index {sent.index}).")
        return sent.to_json()


async def cmd_round_countersign(ctx: Context, args: argparse.Namespace) -> JSONValue:
    async with ctx.client() as client:
        sent = await client.negotiation.countersign(args.round, _channel(args))
        ctx.say(f"Round {args.round} countersigned (log index {sent.index}).")
        return sent.to_json()


async def cmd_initial(ctx: Context, args: argparse.Namespace) -> JSONValue:
    async with ctx.client() as client:
        sent = await client.negotiation.initial(args.msg, withdraw=args.withdraw)
        what = "Initial withdrawn from" if args.withdraw else "Initialled"
        ctx.say(f"{what} version at index {args.msg} (log index {sent.index}).")
        status = [s.to_json() for s in client.negotiation.texts() if s.index == args.msg]
        for s in status:
            ctx.say(f"State: {s['state']}")
        return {**sent.to_json(), "status": status[0] if status else None}


async def cmd_agreed(ctx: Context, args: argparse.Namespace) -> JSONValue:
    if args.bundle is not None:
        return await _agreed_bundle(ctx, args)
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        agreed = client.negotiation.agreed()
        texts = client.negotiation.texts()
        if not agreed:
            ctx.say("No agreed texts yet.")
        table = new_table()
        for a in agreed:
            add_row(
                table,
                f"index {a.index}",
                a.channel,
                f"draft {short(a.draft)}",
                f"agreed at {a.agreed_at}",
                "initialled by " + ", ".join(sorted(a.initials)),
            )
        ctx.say_table(table)
        pending = [t for t in texts if t.agreed is None]
        if pending:
            ctx.say("Texts in progress:")
            table = new_table()
            for t in pending:
                add_row(table, f"index {t.index}", t.channel, f"v{t.version}", t.state)
            ctx.say_table(table, indent=2)
        return {"agreed": [a.to_json() for a in agreed], "texts": [t.to_json() for t in texts]}


def _new_out(args: argparse.Namespace) -> Path:
    if not args.out:
        raise UsageError("--bundle needs --out FILE")
    out = Path(args.out)
    if out.exists():
        raise UsageError(f"{out} exists")
    return out


def _write_bundle(
    ctx: Context, client: DocketClient, out: Path, data: bytes, what: str
) -> dict[str, JSONValue]:
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise StateError(f"cannot write {out}: {exc.strerror}") from exc
    ctx.say(f"Wrote the bundle for {what} to {out} ({len(data)} bytes).")
    ctx.say(f"Verify with: docket verify-evidence {out} --talks '{client.genesis().fingerprint}'")
    return {"bytes": len(data), "out": str(out)}


async def _agreed_bundle(ctx: Context, args: argparse.Namespace) -> JSONValue:
    out = _new_out(args)
    async with ctx.client() as client:
        bundle = await client.disclose_agreed(args.bundle)
        written = _write_bundle(ctx, client, out, bundle.to_bytes(), f"agreed text {args.bundle}")
        ctx.say("It discloses the text to whoever receives it.")
        return {**written, "index": args.bundle}


async def cmd_call_open(ctx: Context, args: argparse.Namespace) -> JSONValue:
    deadline = int(time.time() * 1000) + args.deadline * 1000
    async with ctx.client() as client:
        sent = await client.negotiation.open_call(args.channel, args.delegation, deadline)
        number = len(client.negotiation.calls())
        ctx.say(f"Call {number} opened on {args.channel} (log index {sent.index}).")
        return {**sent.to_json(), "call": number, "deadline": deadline}


async def cmd_call_release(ctx: Context, args: argparse.Namespace) -> JSONValue:
    async with ctx.client() as client:
        sent = await client.negotiation.release(args.call)
        ctx.say(f"Call {args.call} released (log index {sent.index}); proposers may reveal.")
        return sent.to_json()


async def cmd_call_list(ctx: Context, args: argparse.Namespace) -> JSONValue:
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        calls = client.negotiation.calls()
        if not calls:
            ctx.say("No calls for proposals yet.")
        for c in calls:
            state = "open" if c.released_at is None else f"released at {c.released_at}"
            ctx.say(f"Call {c.number} on {c.channel}: {', '.join(c.delegations)}; {state}")
            table = new_table()
            for d in c.delegations:
                p = c.proposals.get(d)
                if p is None:
                    add_row(table, d, "no proposal")
                    continue
                revealed = (
                    f"revealed at {p.revealed_at}"
                    if p.revealed_at is not None
                    else ("NOT REVEALED" if c.released_at is not None else "sealed")
                )
                add_row(table, d, f"draft at {p.index}", f"committed at {p.committed_at}", revealed)
            ctx.say_table(table, indent=2)
        return {"calls": [c.to_json() for c in calls]}


def _payload(args: argparse.Namespace) -> Payload:
    if (args.file is None) == (args.text is None):
        raise UsageError("give exactly one of FILE or --text")
    try:
        if args.file is not None:
            path = Path(args.file)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
            name = path.name[:MAX_FILE_NAME]
            return Payload(
                title=args.title or name,
                file_name=name,
                media_type="application/octet-stream",
                file_data=data,
            )
        title = args.title or (args.text.strip().splitlines() or [""])[0][:80]
        return Payload(title=title, body=args.text)
    except ProtocolError as exc:
        raise UsageError(f"cannot propose this: {exc.detail}") from exc


async def cmd_propose(ctx: Context, args: argparse.Namespace) -> JSONValue:
    payload = _payload(args)
    async with ctx.client() as client:
        sent, committed = await client.negotiation.propose(
            args.call, payload, now=int(time.time() * 1000)
        )
        ctx.say(
            f"Sealed proposal tabled for call {args.call} as log index {sent.index}, "
            f"committed at {committed.index}; reveal it after the release."
        )
        return {"commit": committed.to_json(), "draft": sent.to_json()}


async def cmd_reveal(ctx: Context, args: argparse.Namespace) -> JSONValue:
    async with ctx.client() as client:
        sent = await client.negotiation.reveal(args.call)
        ctx.say(f"Proposal for call {args.call} revealed (log index {sent.index}).")
        return sent.to_json()


async def cmd_proposal(ctx: Context, args: argparse.Namespace) -> JSONValue:
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        call, proposal, payload = await client.negotiation.open_proposal(args.msg)
        ctx.say(f"Proposal of {proposal.delegation} for call {call.number} ({proposal.member})")
        ctx.say(
            f"Committed at {proposal.committed_at}, before the release at {call.released_at}; "
            f"revealed at {proposal.revealed_at}; content matches the commitment."
        )
        ctx.say(f"Title:    {payload.title}")
        if payload.body is not None:
            ctx.say("")
            for line in payload.body.splitlines():
                ctx.say(line)
        return {
            "body": payload.body,
            "call": call.number,
            "proposal": proposal.to_json(),
            "title": payload.title,
            "file": None
            if payload.file_data is None
            else {
                "name": payload.file_name,
                "sha256": crypto.sha256(payload.file_data).hex(),
                "size": len(payload.file_data),
            },
        }
