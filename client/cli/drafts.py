"""Drafts: ``send``, ``inbox``, ``read``, ``ack``, ``receipts``, ``history``, ``watch``."""

from __future__ import annotations

import argparse
import json
import mimetypes
from pathlib import Path

from client.api import DocketClient, HistoryItem, ReadDraft, decode_id, parse_leaf_or_index
from client.auditor.lifecycle import SIGNED_AFTER_COMPROMISE
from client.cli import redlines
from client.cli.context import Context, sync_or_warn
from client.cli.files import safe_file_name, save_new_file
from client.cli.output import add_row, fmt_time, new_table, right, short, terminal_safe
from client.cli.parsing import Commands, positive
from client.errors import Alarm, TooLargeInput, UsageError, alarm_for
from protocol.encoding import JSONValue, b64e
from protocol.envelope import MAX_FILE_NAME, MAX_PAYLOAD, Payload
from protocol.errors import ProtocolError

# The largest file a draft can carry: the sealed payload (canonical JSON, the file in
# base64, so 4/3 of its size) must fit MAX_PAYLOAD, with room for the title and name.
MAX_FILE_BYTES = (MAX_PAYLOAD - 8192) // 4 * 3


def register(commands: Commands) -> None:
    """Add ``send``, ``inbox``, ``read``, ``ack``, ``receipts``, ``history`` and ``watch``."""
    p = commands.add("send", cmd_send, "send a draft (a file or text) to a channel")
    p.add_argument("channel", help="channel id")
    p.add_argument("file", nargs="?", help="file to send")
    p.add_argument("--text", help="send this text instead of a file")
    p.add_argument("--title", help="title (default: file name or first line)")
    p.add_argument("--type", help="media type of FILE (default: guessed)")
    p.add_argument(
        "--annex",
        action="store_true",
        help="send FILE as an annex stream (automatic above 16 MiB; up to the server's limit)",
    )
    p.add_argument(
        "--non-paper",
        action="store_true",
        help="deniable: recipients can verify you sent it, nobody can prove it to others",
    )
    p.add_argument("--draft", help="draft id of the draft this version continues")
    p.add_argument(
        "--parent",
        action="append",
        metavar="HASH",
        help="leaf hash (or log index) of a version this one answers; repeatable",
    )

    commands.add(
        "inbox", cmd_inbox, "fetch, verify and list drafts addressed to you (sends receipts)"
    )

    p = commands.add("read", cmd_read, "show a verified draft")
    p.add_argument("msg", type=positive, metavar="MSG", help="log index of the draft")
    p.add_argument("--save", metavar="DIR", help="save the attachment and text into DIR")

    p = commands.add("ack", cmd_ack, "acknowledge a draft (a signed receipt)")
    p.add_argument("msg", type=positive, metavar="MSG", help="log index of the draft")

    p = commands.add("receipts", cmd_receipts, "who received and acknowledged a draft")
    p.add_argument("msg", type=positive, metavar="MSG", help="log index of the draft")

    p = commands.add("history", cmd_history, "the versions of a draft (its lineage)")
    p.add_argument(
        "draft",
        metavar="DRAFT",
        nargs="?",
        help="draft id, or the log index of any version",
    )
    p.add_argument("--draft", dest="draft_opt", metavar="ID", help=argparse.SUPPRESS)
    p.add_argument(
        "--diff", action="store_true", help="show each version's redline against its parent"
    )

    p = commands.add("watch", cmd_watch, "wait for new drafts and show them as they arrive")
    p.add_argument("--count", type=positive, help="stop after N drafts")
    p.add_argument("--timeout", type=float, help="stop after S seconds")


async def cmd_send(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket send``: a text or file draft, optionally a new version."""
    if (args.file is None) == (args.text is None):
        raise UsageError("give exactly one of FILE or --text")
    if args.draft and not args.parent:
        raise UsageError("--draft needs at least one --parent")
    if args.file is not None and (args.annex or _large(Path(args.file))):
        if args.non_paper:
            raise UsageError("a non-paper carries at most 64 KiB: it cannot be sent as an annex")
        return await _send_annex(ctx, args, Path(args.file))
    if args.file is not None:
        path = Path(args.file)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
        if size > MAX_FILE_BYTES:
            raise TooLargeInput(
                f"{path} is {size} bytes; a draft's file may be at most {MAX_FILE_BYTES} "
                f"bytes (about {MAX_FILE_BYTES // (1 << 20)} MiB)"
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
        media = args.type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        name = path.name[:MAX_FILE_NAME]
        title = args.title or name
        try:
            payload = Payload(title=title, file_name=name, media_type=media, file_data=data)
        except ProtocolError as exc:
            raise UsageError(
                f"cannot send this file: {exc.detail} (rename it, or give --title)",
                code=exc.code,
            ) from exc
    else:
        title = args.title or (args.text.strip().splitlines() or [""])[0][:80]
        try:
            payload = Payload(title=title, body=args.text)
        except ProtocolError as exc:
            raise UsageError(f"cannot send this text: {exc.detail}", code=exc.code) from exc
    async with ctx.client() as client:
        await client.sync()
        parents = [parse_leaf_or_index(p, client.log) for p in args.parent or ()]
        draft = decode_id(args.draft, "draft id") if args.draft else None
        sent = await client.send(
            args.channel, payload, draft_id=draft, parents=parents, non_paper=args.non_paper
        )
        ctx.say(
            f"Sent {title!r} to {args.channel} as log index {sent.index} "
            f"(draft {b64e(sent.draft or b'')}, version {sent.version})"
        )
        ctx.say(f"leaf hash: {b64e(sent.leaf)}")
        return sent.to_json()


async def cmd_inbox(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket inbox``: verify new drafts, send receipts, list them."""
    async with ctx.client() as client:
        result = await client.inbox()
        if not result.items:
            ctx.say("No drafts addressed to you yet.")
        # At least as wide as the "{index:>5}" of the rejected and withheld lines below.
        table = new_table(right(min_width=5))
        for item in result.items:
            flags = ("" if item.read else "new ") + ("acked" if item.acknowledged else "")
            attach = f" [file: {item.file_name}]" if item.file_name else ""
            add_row(
                table,
                str(item.index),
                fmt_time(item.time),
                item.channel,
                item.sender,
                f"v{item.version}",
                f"{item.title}{attach}",
                flags.strip(),
            )
        ctx.say_table(table)
        for rej in result.rejected:
            ctx.say(
                f"{rej.index:>5}  REJECTED draft from {rej.sender} in {rej.channel}: {rej.code}"
            )
        for index in result.undelivered:
            ctx.say(f"{index:>5}  WITHHELD: logged for you, but the server will not deliver it")
        if result.receipts_sent:
            ctx.say(f"({result.receipts_sent} receipt(s) sent)")
        if result.undelivered:
            ctx.pending_error = Alarm(
                "withheld",
                f"{len(result.undelivered)} draft(s) addressed to you are in the log but the "
                "server withholds them",
                index=result.undelivered[0],
            )
        elif result.rejected:
            ctx.pending_error = Alarm(
                alarm_for(result.rejected[0].code),
                f"{len(result.rejected)} draft(s) failed verification and were rejected",
                index=result.rejected[0].index,
            )
        return result.to_json()


ANNEX_THRESHOLD = 16 * 1024 * 1024
"""Files larger than this are sent as annex streams (never held whole in memory)."""


def _large(path: Path) -> bool:
    try:
        return path.stat().st_size > ANNEX_THRESHOLD
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc


async def _send_annex(ctx: Context, args: argparse.Namespace, path: Path) -> JSONValue:
    if not path.is_file():
        raise UsageError(f"cannot read {path}: not a file")
    media = args.type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    title = args.title or path.name[:MAX_FILE_NAME]
    async with ctx.client() as client:
        await client.sync()
        parents = [parse_leaf_or_index(p, client.log) for p in args.parent or ()]
        draft = decode_id(args.draft, "draft id") if args.draft else None
        try:
            sent, manifest = await client.send_annex(
                args.channel, path, title=title, media_type=media, draft_id=draft, parents=parents
            )
        except ProtocolError as exc:
            raise UsageError(f"cannot send this file: {exc.detail}") from exc
        ctx.say(
            f"Sent {title!r} to {args.channel} as log index {sent.index} with an annex of "
            f"{manifest.length} bytes in {manifest.chunks} chunks"
        )
        ctx.say(f"leaf hash: {b64e(sent.leaf)}")
        out = sent.to_json()
        assert isinstance(out, dict)
        out["annex"] = {"chunks": manifest.chunks, "length": manifest.length}
        return out


async def cmd_read(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket read MSG [--save DIR]``."""
    async with ctx.client() as client:
        draft = await client.read(args.msg)
        out = draft.to_json()
        show_draft(ctx, draft)
        if args.save is not None:
            directory = Path(args.save)
            written: list[JSONValue] = []
            p = draft.payload
            if p.file_data is not None:
                path = save_new_file(directory, safe_file_name(p.file_name), p.file_data)
                written.append(str(path))
            if p.annex is not None:
                # Reserve a fresh name (never overwriting), then stream the checked,
                # decrypted annex into place over it.
                path = save_new_file(directory, safe_file_name(p.file_name), b"")
                try:
                    await client.save_annex(draft.index, path)
                except BaseException:
                    path.unlink(missing_ok=True)
                    raise
                written.append(str(path))
            if p.body is not None:
                name = safe_file_name(f"{p.title or 'draft'}-{draft.index}.txt")
                path = save_new_file(directory, name, p.body.encode("utf-8"))
                written.append(str(path))
            for path_text in written:
                ctx.say(f"saved: {path_text}")
            out["saved"] = written
        return out


def show_draft(ctx: Context, draft: ReadDraft) -> None:
    """Print a draft's verified facts and its body."""
    h = draft.header
    p = draft.payload
    ctx.say(f"Title:    {p.title}")
    ctx.say(f"From:     {draft.sender} in {draft.channel} at {fmt_time(h.time)}")
    ctx.say(f"Draft:    {b64e(h.draft)} version {h.version}")
    for parent in h.parents:
        ctx.say(f"Answers:  {b64e(parent)}")
    ctx.say(f"Log:      index {draft.index}, leaf {b64e(draft.leaf)}")
    if h.mode is not None:
        ctx.say("Mode:     NON-PAPER (you can verify the sender; nobody can prove it to others)")
    if p.file_data is not None:
        ctx.say(f"File:     {p.file_name} ({p.media_type}, {len(p.file_data)} bytes)")
    if p.annex is not None:
        ctx.say(
            f"Annex:    {p.file_name} ({p.media_type}, {p.annex.length} bytes in "
            f"{p.annex.chunks} chunks; save it with --save DIR)"
        )
    if p.body is not None:
        ctx.say("")
        for line in p.body.splitlines():
            ctx.say(line)


async def cmd_ack(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket ack MSG``."""
    async with ctx.client() as client:
        sent = await client.ack(args.msg)
        ctx.say(f"Acknowledged draft {args.msg} (receipt at log index {sent.index}).")
        return sent.to_json()


async def cmd_receipts(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket receipts MSG``."""
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        status = client.receipts(args.msg)
        ctx.say(f"Draft {status.index} from {status.sender} in {status.channel}:")
        table = new_table()
        for line in status.lines:
            if line.rejected:
                what = f"REJECTED ({line.rejected})"
            else:
                what = (
                    f"received {fmt_time(line.received)}  "
                    f"acknowledged {fmt_time(line.acknowledged)}"
                )
            if line.compromised:
                what += f"  [{SIGNED_AFTER_COMPROMISE}]"
            add_row(table, line.member, short(line.device), what)
        for line in status.readers:
            got = f"received {fmt_time(line.received)}" if line.received else "no receipt yet"
            if line.rejected:
                got = f"REJECTED ({line.rejected})"
            add_row(table, line.member, short(line.device), f"through grant {line.grant}: {got}")
        ctx.say_table(table, indent=2)
        if status.sender_compromised:
            ctx.say(f"  The draft was {SIGNED_AFTER_COMPROMISE}.")
        return status.to_json()


async def cmd_history(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket history DRAFT``."""
    given: str | None = args.draft_opt or args.draft
    if given is None:
        raise UsageError("history needs a DRAFT (see 'docket history --help')")
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        draft_id: bytes
        if given.isdigit():
            draft_id = client.log.draft(int(given)).draft
        else:
            draft_id = decode_id(given, "draft id")
        items = await client.history(draft_id)
        ctx.say(f"Draft {b64e(draft_id)}:")
        table = new_table()
        for item in items:
            answers = ", ".join(short(p) for p in item.parents) or "-"
            add_row(
                table,
                f"v{item.version}",
                f"index {item.index}",
                fmt_time(item.time),
                item.sender,
                item.title or "(not readable here)",
                f"leaf {short(item.leaf)}",
                f"answers {answers}",
                f"[{SIGNED_AFTER_COMPROMISE}]" if item.compromised else "",
                "non-paper" if item.mode != "attributable" else "",
            )
        ctx.say_table(table, indent=2)
        versions = [i.to_json() for i in items]
        if getattr(args, "diff", False):
            await history_diffs(ctx, client, items, versions)
        return {"draft": b64e(draft_id), "versions": versions}


async def history_diffs(
    ctx: Context, client: DocketClient, items: list[HistoryItem], out: list[JSONValue]
) -> None:
    """``history --diff``: each readable version against its newest readable parent."""
    by_leaf = {item.leaf: item for item in items}
    colour = redlines.colour_wanted(ctx)
    for item, row in zip(items, out, strict=True):
        parents = [by_leaf[p] for p in item.parents if p in by_leaf]
        if not parents or item.title is None:
            continue
        parent = max(parents, key=lambda p: p.version)
        if parent.title is None:
            continue
        old, new = await redlines.open_pair(client, parent.index, item.index)
        diff = redlines.compare(old.payload, new.payload)
        assert isinstance(row, dict)
        row["diff"] = {"against": parent.index, **diff}
        head = f"v{parent.version} (index {parent.index}) -> v{item.version} (index {item.index}):"
        redlines.emit(ctx, ["", head, *redlines.render(diff, colour=colour)], colour=colour)


async def cmd_watch(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket watch``: print drafts as they arrive and verify."""
    got: list[JSONValue] = []
    async with ctx.client() as client:
        async for item in client.watch(count=args.count, timeout=args.timeout):
            got.append(item.to_json())
            line = (
                f"{item.index:>5}  {item.channel:<12} {item.sender:<14} v{item.version}  "
                f"{item.title}"
            )
            if ctx.json:
                print(json.dumps(item.to_json(), sort_keys=True), flush=True)
            else:
                print(terminal_safe(line), flush=True)
    if not got:
        ctx.say("No new drafts arrived.")
    return {"items": got}
