"""``docket``: the command line for delegation members, heads, the mediator and auditors.

Every subcommand is a thin wrapper over :class:`client.api.DocketClient`: parse
arguments, call one library coroutine, print the result for people (default) or as one
JSON object (``--json``).  Exit codes (see :mod:`client.errors`): 0 ok, 1 verification
failure or alarm, 2 usage error, 3 network or server error, 4 local state or key store
error.  Any failure prints one line on stderr and never a traceback.

The home directory is ``--home``, else ``$DOCKET_HOME``, else ``$XDG_DATA_HOME/docket``,
else ``~/.local/share/docket``.  The passphrase comes from ``DOCKET_PASSPHRASE`` or a
prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mimetypes
import os
import re
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from client import keystore
from client.api import (
    ROLES,
    DocketClient,
    ReadDraft,
    check_talks_matches,
    decode_id,
    parse_leaf_or_index,
    verify_evidence_bytes,
)
from client.auditor import audit_log, read_export
from client.errors import (
    ALARMS,
    EXIT_OK,
    EXIT_STATE,
    EXIT_USAGE,
    EXIT_VERIFY,
    Alarm,
    ClientError,
    NetworkError,
    StateError,
    UsageError,
    VerificationError,
    alarm_for,
)
from protocol.checkpoint import Checkpoint, parse_note
from protocol.encoding import JSONValue, b64d, b64e
from protocol.envelope import MAX_FILE_NAME, Payload
from protocol.errors import ProtocolError
from protocol.evidence import EvidenceReport
from protocol.merkle import leaf_hash
from protocol.roster import CHANNEL_KINDS

Handler = Callable[["Context", argparse.Namespace], Coroutine[Any, Any, JSONValue]]


# --- output helpers ---------------------------------------------------------------------


def fmt_time(ms: int | None) -> str:
    """Milliseconds since the epoch as a short UTC timestamp."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def short(data: bytes) -> str:
    """The first 11 base64url characters of an id or hash (for people, not scripts)."""
    return b64e(data)[:11]


def terminal_safe(text: str) -> str:
    """``text`` with every non-printable character shown as ``?``.

    Titles, names, file names and bodies come from other parties; control characters
    (C0 and C1, so also CSI) could drive the terminal, and bidi overrides could make one
    text look like another.  Human output passes through here.
    """
    return "".join(c if c.isprintable() or c == "\t" else "?" for c in text)


def default_home() -> Path:
    """``$DOCKET_HOME``, ``$XDG_DATA_HOME/docket`` or ``~/.local/share/docket``."""
    if os.environ.get("DOCKET_HOME"):
        return Path(os.environ["DOCKET_HOME"])
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "docket"


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:]")


def safe_file_name(name: str | None) -> str:
    """A file name that is safe to create in a directory of our choosing.

    The name comes from another party: strip path separators, control characters and
    leading dots (no hidden files, no ``..``), bound its length, and fall back to
    ``attachment`` when nothing is left.
    """
    cleaned = _UNSAFE_NAME.sub("_", name or "")
    cleaned = cleaned.strip().lstrip(".").strip()
    encoded = cleaned.encode("utf-8")[:200]
    cleaned = encoded.decode("utf-8", errors="ignore")
    return cleaned or "attachment"


def save_new_file(directory: Path, name: str, data: bytes) -> Path:
    """Create ``directory/name`` (or ``name (n)``) without ever overwriting a file."""
    directory.mkdir(parents=True, exist_ok=True)
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    for n in range(1000):
        candidate = name if n == 0 else (f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})")
        path = directory / candidate
        try:
            # O_EXCL: fail rather than follow or replace whatever is there, even a symlink.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return path
    raise StateError(f"cannot find a free file name for {name!r} in {directory}")


# --- context -----------------------------------------------------------------------------


class Context:
    """Per-invocation settings and output."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json: bool = args.json
        self.home: Path = Path(args.home) if args.home else default_home()
        self.server: str | None = args.server
        self.lines: list[str] = []
        # An error to report after the output (e.g. rejected drafts in the inbox): the
        # command's result is still printed, then the exit code says something failed.
        self.pending_error: ClientError | None = None

    def client(self) -> DocketClient:
        """A client for the home, prompting for the passphrase only when needed."""
        return DocketClient(self.home, server=self.server, passphrase=keystore.read_passphrase)

    def say(self, line: str = "") -> None:
        """Queue a line of human output (printed unless ``--json``)."""
        self.lines.append(line)

    def warn(self, line: str) -> None:
        """A warning on stderr (both modes)."""
        print(f"docket: warning: {line}", file=sys.stderr)


async def sync_or_warn(ctx: Context, client: DocketClient) -> None:
    """Sync; when the server is unreachable, go on with the state verified so far."""
    try:
        await client.sync()
    except NetworkError as exc:
        size = client.log.size
        ctx.warn(f"{exc} - showing the log as verified up to size {size}")


# --- commands ----------------------------------------------------------------------------


async def cmd_init(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket init``: create device keys."""
    passphrase = keystore.read_passphrase(confirm=True)
    public = DocketClient.init_home(ctx.home, passphrase, server=ctx.server)
    ctx.say(f"Created device keys in {ctx.home}")
    ctx.say(f"Device fingerprint: {public.fingerprint}")
    ctx.say("Next: 'docket join CODE --name NAME' (or 'docket talks found' as the mediator).")
    return {
        "device": b64e(public.device_id),
        "fingerprint": public.fingerprint,
        "home": str(ctx.home),
    }


async def cmd_join(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket join``: accept an invitation (creating keys if needed)."""
    if not keystore.keystore_path(ctx.home).exists():
        # Joining is most people's first step: create the device keys on the way.
        passphrase = keystore.read_passphrase(confirm=True)
        DocketClient.init_home(ctx.home, passphrase, server=ctx.server)
    async with ctx.client() as client:
        genesis = await client.join(args.code, name=args.name, expect_talks=args.talks)
        public = client.public()
        ctx.say(f"Joined talks {genesis.title!r} (fingerprint {genesis.fingerprint}).")
        ctx.say("Compare the talks fingerprint with the one the mediator gave you.")
        ctx.say(f"Your device fingerprint: {public.fingerprint}")
        ctx.say("Read it to whoever invited you; they enrol you with 'docket enrol'.")
        return {
            "device": b64e(public.device_id),
            "fingerprint": public.fingerprint,
            "talks": b64e(genesis.talks_id),
            "talks_fingerprint": genesis.fingerprint,
        }


async def cmd_whoami(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket whoami``."""
    async with ctx.client() as client:
        me = client.whoami()
        ctx.say(f"home:        {ctx.home}")
        ctx.say(f"server:      {me.server or '-'}")
        ctx.say(f"member:      {me.member or '-'} ({me.role or 'no role'})")
        if me.delegation:
            ctx.say(f"delegation:  {me.delegation}")
        ctx.say(f"enrolled:    {'yes' if me.enrolled else 'not yet'}")
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
            return {
                "device": public.fingerprint,
                "talks": genesis.fingerprint if genesis else None,
            }
        await sync_or_warn(ctx, client)
        member = client.roster.members.get(args.member)
        if member is None:
            raise UsageError(f"no member {args.member!r} in the verified roster")
        out = []
        for device_id, device in sorted(member.devices.items()):
            ctx.say(f"{member.id} {short(device_id)}  {device.fingerprint}")
            out.append({"device": b64e(device_id), "fingerprint": device.fingerprint})
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
            for m in sorted(groups[key], key=lambda m: m.id):
                flag = "" if m.active else "  [removed]"
                ctx.say(f"  {m.id:<16} {m.role:<9} {m.name}  ({len(m.devices)} device(s)){flag}")
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
        for c in sorted(roster.channels.values(), key=lambda c: c.id):
            members = [m.id for m in roster.channel_members(c.id)]
            mine = " *" if me in members else ""
            ctx.say(f"{c.id:<14} {c.kind:<13} {c.name}{mine}")
            ctx.say(f"{'':<14} members: {', '.join(members)}")
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
        if out:
            ctx.say("(* = you are a member)")
        return {"channels": out}


async def cmd_send(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket send``: a text or file draft, optionally a new version."""
    if (args.file is None) == (args.text is None):
        raise UsageError("give exactly one of FILE or --text")
    if args.draft and not args.parent:
        raise UsageError("--draft needs at least one --parent")
    if args.file is not None:
        path = Path(args.file)
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
            raise UsageError(f"cannot send this file: {exc.detail}") from exc
    else:
        title = args.title or (args.text.strip().splitlines() or [""])[0][:80]
        try:
            payload = Payload(title=title, body=args.text)
        except ProtocolError as exc:
            raise UsageError(f"cannot send this text: {exc.detail}") from exc
    async with ctx.client() as client:
        await client.sync()
        parents = [parse_leaf_or_index(p, client.log) for p in args.parent or ()]
        draft = decode_id(args.draft, "draft id") if args.draft else None
        sent = await client.send(args.channel, payload, draft_id=draft, parents=parents)
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
        for item in result.items:
            flags = ("" if item.read else "new ") + ("acked" if item.acknowledged else "")
            attach = f" [file: {item.file_name}]" if item.file_name else ""
            ctx.say(
                f"{item.index:>5}  {fmt_time(item.time)}  {item.channel:<12} "
                f"{item.sender:<14} v{item.version}  {item.title}{attach}  {flags.strip()}"
            )
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
    if p.file_data is not None:
        ctx.say(f"File:     {p.file_name} ({p.media_type}, {len(p.file_data)} bytes)")
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
        for line in status.lines:
            if line.rejected:
                what = f"REJECTED ({line.rejected})"
            else:
                what = (
                    f"received {fmt_time(line.received)}  "
                    f"acknowledged {fmt_time(line.acknowledged)}"
                )
            ctx.say(f"  {line.member:<16} {short(line.device)}  {what}")
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
        for item in items:
            answers = ", ".join(short(p) for p in item.parents) or "-"
            ctx.say(
                f"  v{item.version}  index {item.index:>5}  {fmt_time(item.time)}  "
                f"{item.sender:<14} {item.title or '(not readable here)'}  "
                f"leaf {short(item.leaf)}  answers {answers}"
            )
        return {"draft": b64e(draft_id), "versions": [i.to_json() for i in items]}


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


async def cmd_log(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket log``: the verified log, metadata only."""
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        log = client.log
        start = max(0, args.start)
        end = log.size if args.limit is None else min(log.size, start + args.limit)
        out: list[JSONValue] = []
        for index in range(start, end):
            summary = describe_entry(client, index)
            ctx.say(f"{index:>5}  {log.kinds[index]:<8} {summary}")
            out.append({"index": index, "kind": log.kinds[index], "summary": summary})
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
    receipt: Receipt = entry
    return f"{receipt.kind} by {_member_of(roster, receipt.device)} for draft {receipt.index}"


def _member_of(roster: Any, device: bytes) -> str:
    for member in roster.members.values():
        if device in member.devices:
            return str(member.id)
    return short(device)


async def cmd_talks_found(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket talks found``: sign and submit the genesis."""
    try:
        log_key = b64d(args.log_key, length=32, what="log key")
    except ProtocolError as exc:
        raise UsageError(f"--log-key: {exc.detail}") from exc
    if not keystore.keystore_path(ctx.home).exists():
        passphrase = keystore.read_passphrase(confirm=True)
        DocketClient.init_home(ctx.home, passphrase, server=ctx.server)
    async with ctx.client() as client:
        genesis = await client.found_talks(
            founding_token=args.token,
            title=args.title,
            mediator=args.member,
            mediator_name=args.name,
            log_key=log_key,
            origin=args.origin,
            quorum=args.quorum,
        )
        ctx.say(f"Founded {genesis.title!r}.")
        ctx.say(f"Talks fingerprint: {genesis.fingerprint}")
        ctx.say(f"Talks id:          {b64e(genesis.talks_id)}")
        ctx.say("Hand the fingerprint to every delegation out of band.")
        return {
            "fingerprint": genesis.fingerprint,
            "origin": genesis.origin,
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
        return inv.to_json()


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


async def cmd_audit(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket audit``: the auditor's report; exit 1 on any alarm."""
    if args.log is not None:
        return await _audit_export(ctx, args)
    async with ctx.client() as client:
        report = await client.audit(workers=args.workers, progress=_progress_bar(ctx))
        for line in report.render_text().splitlines():
            ctx.say(line)
        if client.last_audit_pending:
            ctx.say(
                f"({client.last_audit_pending} newer entries await witness cosignatures; "
                "they are audited once the witnesses have cosigned them)"
            )
        if not report.ok:
            first = report.alarms[0]
            ctx.pending_error = VerificationError(
                f"audit failed with {len(report.alarms)} alarm(s); first: {first.code}: "
                f"{first.reason}",
                code=first.code,
            )
        out = report.to_json()
        out["pending"] = client.last_audit_pending
        return out


def _progress_bar(ctx: Context) -> Callable[[int, int], None] | None:
    """A one-line progress bar on stderr, only when stderr is a terminal (never with
    ``--json`` or in a pipe)."""
    if ctx.json or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        if total:
            filled = done * 30 // max(total, 1)
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\raudit [{bar}] {done}/{total} entries")
        else:
            sys.stderr.write(f"\raudit {done} entries")
        if total and done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


async def _audit_export(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket audit --log FILE``: audit an exported log offline.  The talks come from
    ``--talks`` or, failing that, from the home's pinned genesis."""
    try:
        with open(args.log, "rb") as fh:
            exported = read_export(fh)
    except OSError as exc:
        raise UsageError(f"cannot read {args.log}: {exc.strerror}") from exc
    except ProtocolError as exc:
        raise VerificationError(f"{args.log} is not a Docket log export: {exc.detail}") from exc
    if args.talks is not None:
        # The pin is what the user gave: the export's entry 0 only supplies the candidate
        # id, which must match it (a fingerprint cannot be turned back into an id).
        candidate = leaf_hash(exported.entries[0]) if exported.entries else b""
        check_talks_matches(candidate, args.talks)
        pinned = candidate
    else:
        async with ctx.client() as client:
            pinned = client.genesis().talks_id
    report = audit_log(
        exported.entries,
        pinned_talks=pinned,
        checkpoints=exported.checkpoints,
        workers=args.workers,
        progress=_progress_bar(ctx),
    )
    pending = 0
    trusted = [c.size for c in report.checkpoints if c.trusted and c.matches]
    if [a.code for a in report.alarms] == ["no_quorum"] and trusted:
        # As online: entries after the newest checkpoint the witnesses cosigned are not
        # vouched for yet; audit up to it and report the rest as pending.
        size = max(trusted)
        pending = len(exported.entries) - size
        report = audit_log(
            exported.entries[:size],
            pinned_talks=pinned,
            checkpoints=[n for n in exported.checkpoints if _note_size(n) <= size],
            workers=args.workers,
        )
    report.alarms[:0] = exported.alarms
    for line in report.render_text().splitlines():
        ctx.say(line)
    if not report.ok:
        first = report.alarms[0]
        ctx.pending_error = VerificationError(
            f"audit failed with {len(report.alarms)} alarm(s); first: {first.code}: {first.reason}",
            code=first.code,
        )
    if pending:
        ctx.say(f"({pending} newer entries await witness cosignatures)")
    out = report.to_json()
    out["pending"] = pending
    return out


def _note_size(note: bytes) -> int:
    """The tree size a checkpoint note claims (unverified; -1 if unreadable)."""
    try:
        return Checkpoint.from_body(parse_note(note).text).size
    except ProtocolError:
        return -1


async def cmd_disclose(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket disclose MSG --out FILE``."""
    async with ctx.client() as client:
        bundle = await client.disclose(args.msg)
        data = bundle.to_bytes()
        out = Path(args.out)
        if out.exists() and not args.force:
            raise UsageError(f"{out} exists (use --force to replace it)")
        # The bundle discloses the draft's content: readable by this user only.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if args.force else os.O_EXCL)
        try:
            fd = os.open(out, flags, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise StateError(f"cannot write {out}: {exc.strerror}") from exc
        genesis = client.genesis()
        ctx.say(f"Wrote evidence for draft {args.msg} to {out} ({len(data)} bytes).")
        ctx.say("It discloses the draft's content to whoever receives it.")
        ctx.say(f"Verify with: docket verify-evidence {out} --talks '{genesis.fingerprint}'")
        return {"bytes": len(data), "index": args.msg, "out": str(out)}


async def cmd_verify_evidence(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket verify-evidence FILE --talks ...``."""
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
    report = verify_evidence_bytes(data, args.talks)
    show_report(ctx, report)
    return report_json(report)


def show_report(ctx: Context, report: EvidenceReport) -> None:
    """Human summary of what a verified evidence bundle proves."""
    p = report.payload
    ctx.say("VERIFIED evidence bundle")
    ctx.say(f"talks:      {report.talks_fingerprint} ({report.origin})")
    ctx.say(f"checkpoint: size {report.checkpoint_size}, cosigned by {', '.join(report.cosigners)}")
    ctx.say(
        f"draft:      log index {report.index}, sent by {report.sender_member} to "
        f"{report.channel} at {fmt_time(report.time)}"
    )
    ctx.say(f"recipients: {', '.join(report.recipients)}")
    ctx.say(f"title:      {p.title}")
    if p.file_data is not None:
        ctx.say(f"file:       {p.file_name} ({len(p.file_data)} bytes)")
    for fact in report.receipts:
        extra = f" ({fact.reason})" if fact.reason else ""
        ctx.say(f"receipt:    {fact.kind}{extra} by {fact.member} at {fmt_time(fact.time)}")


def report_json(report: EvidenceReport) -> dict[str, JSONValue]:
    """JSON form of an :class:`EvidenceReport`."""
    p = report.payload
    return {
        "body": p.body,
        "channel": report.channel,
        "checkpoint_size": report.checkpoint_size,
        "cosigners": list(report.cosigners),
        "file": None
        if p.file_data is None
        else {"name": p.file_name, "size": len(p.file_data), "type": p.media_type},
        "index": report.index,
        "origin": report.origin,
        "receipts": [
            {
                "index": f.index,
                "kind": f.kind,
                "member": f.member,
                "reason": f.reason,
                "time": f.time,
            }
            for f in report.receipts
        ],
        "recipients": list(report.recipients),
        "sender": report.sender_member,
        "talks_fingerprint": report.talks_fingerprint,
        "time": report.time,
        "title": p.title,
        "verified": True,
    }


async def cmd_demo(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket demo``."""
    from client import demo

    result = await demo.run_demo(Path(args.workdir) if args.workdir else None, echo=not ctx.json)
    if not result.get("audit_ok"):
        ctx.pending_error = VerificationError("the demo's audit did not pass", code="audit")
    return result


# --- parser ------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        """Raise a :class:`UsageError` (one line, exit 2) instead of printing usage."""
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--home``, ``--json`` and ``--server``."""
    unset: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--home",
        help="client home directory (default: $DOCKET_HOME, "
        "$XDG_DATA_HOME/docket or ~/.local/share/docket)",
        **unset,
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object for scripts", **unset
    )
    parser.add_argument(
        "--server", metavar="URL", help="server URL (stored by init and join)", **unset
    )


def build_parser() -> Parser:
    """The ``docket`` argument parser."""
    parser = Parser(
        prog="docket",
        description="Docket: end-to-end encrypted, signed and logged drafts for mediated talks.",
        epilog="Exit codes: 0 ok, 1 verification failure or alarm, 2 usage error, "
        "3 network or server error, 4 local state or key store error.",
    )
    _global_options(parser, top=True)
    # The same options are accepted after the subcommand too (``docket inbox --json``);
    # there they default to "not given" so they never override the ones before it.
    common = Parser(add_help=False)
    _global_options(common, top=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def add(name: str, handler: Handler, help_text: str, **kw: Any) -> Parser:
        """Add a subcommand with its handler and help text."""
        p: Parser = sub.add_parser(
            name, help=help_text, description=help_text, parents=[common], **kw
        )
        p.set_defaults(handler=handler)
        return p

    add("init", cmd_init, "create device keys in an encrypted key store")

    p = add("join", cmd_join, "accept an invitation: pin the talks and register this device")
    p.add_argument("code", help="the invitation code you were given")
    p.add_argument("--name", required=True, help="your display name")
    p.add_argument("--talks", help="the talks fingerprint or id, to check against the code")

    add("whoami", cmd_whoami, "show this device, member, role and talks")

    p = add("fingerprint", cmd_fingerprint, "show fingerprints to compare aloud")
    p.add_argument("member", nargs="?", help="a member whose device fingerprints to show")

    add("roster", cmd_roster, "show delegations and members from the verified log")
    add("channels", cmd_channels, "show channels and their members")

    p = add("send", cmd_send, "send a draft (a file or text) to a channel")
    p.add_argument("channel", help="channel id")
    p.add_argument("file", nargs="?", help="file to send")
    p.add_argument("--text", help="send this text instead of a file")
    p.add_argument("--title", help="title (default: file name or first line)")
    p.add_argument("--type", help="media type of FILE (default: guessed)")
    p.add_argument("--draft", help="draft id of the draft this version continues")
    p.add_argument(
        "--parent",
        action="append",
        metavar="HASH",
        help="leaf hash (or log index) of a version this one answers; repeatable",
    )

    add("inbox", cmd_inbox, "fetch, verify and list drafts addressed to you (sends receipts)")

    p = add("read", cmd_read, "show a verified draft")
    p.add_argument("msg", type=_positive, metavar="MSG", help="log index of the draft")
    p.add_argument("--save", metavar="DIR", help="save the attachment and text into DIR")

    p = add("ack", cmd_ack, "acknowledge a draft (a signed receipt)")
    p.add_argument("msg", type=_positive, metavar="MSG", help="log index of the draft")

    p = add("receipts", cmd_receipts, "who received and acknowledged a draft")
    p.add_argument("msg", type=_positive, metavar="MSG", help="log index of the draft")

    p = add("history", cmd_history, "the versions of a draft (its lineage)")
    p.add_argument(
        "draft",
        metavar="DRAFT",
        nargs="?",
        help="draft id, or the log index of any version",
    )
    p.add_argument("--draft", dest="draft_opt", metavar="ID", help=argparse.SUPPRESS)

    p = add("watch", cmd_watch, "wait for new drafts and show them as they arrive")
    p.add_argument("--count", type=_positive, help="stop after N drafts")
    p.add_argument("--timeout", type=float, help="stop after S seconds")

    p = add("log", cmd_log, "list the verified log (metadata only)")
    p.add_argument("--start", type=_positive, default=0, help="first index to show")
    p.add_argument("--limit", type=_positive, help="show at most N entries")

    p = add("checkpoint", cmd_checkpoint, "print the verified checkpoint, or check another's")
    p.add_argument(
        "--check", metavar="FILE", help="a checkpoint note someone else got from the server"
    )

    talks = add("talks", _group_handler, "found the talks (mediator)")
    tsub = talks.add_subparsers(dest="talks_command", metavar="ACTION", parser_class=Parser)
    p = tsub.add_parser(
        "found",
        parents=[common],
        help="sign and submit the genesis",
        description="sign and submit the genesis",
    )
    p.set_defaults(handler=cmd_talks_found)
    p.add_argument("--token", required=True, help="founding token from 'docket-server init'")
    p.add_argument("--log-key", required=True, help="the server's log key (base64url)")
    p.add_argument("--origin", required=True, help="the server's log origin")
    p.add_argument("--title", required=True, help="title of the talks")
    p.add_argument("--member", default="mediator", help="the mediator's member id")
    p.add_argument("--name", required=True, help="the mediator's display name")
    p.add_argument("--quorum", type=int, default=1, help="witness cosignatures required")

    dele = add("delegation", _group_handler, "manage delegations (mediator)")
    dsub = dele.add_subparsers(dest="delegation_command", metavar="ACTION", parser_class=Parser)
    p = dsub.add_parser(
        "create",
        parents=[common],
        help="create a delegation and name its head",
        description="create a delegation headed by a member who accepted a head invitation",
    )
    p.set_defaults(handler=cmd_delegation_create)
    p.add_argument("id", help="delegation id")
    p.add_argument("--name", required=True, help="delegation name")
    p.add_argument("--head", required=True, help="member id of the head (invited as head)")
    p.add_argument("--fingerprint", help="the head's device fingerprint, as read to you")

    chan = add("channel", _group_handler, "manage channels (mediator)")
    csub = chan.add_subparsers(dest="channel_command", metavar="ACTION", parser_class=Parser)
    p = csub.add_parser(
        "create", help="create a channel", description="create a channel", parents=[common]
    )
    p.set_defaults(handler=cmd_channel_create)
    p.add_argument("id", help="channel id")
    p.add_argument("--name", required=True, help="channel name")
    p.add_argument("--kind", required=True, choices=CHANNEL_KINDS, help="channel kind")
    p.add_argument("--delegation", action="append", help="member delegation; repeatable")
    p.add_argument("--member", action="append", help="individual member; repeatable")
    p = csub.add_parser(
        "members",
        parents=[common],
        help="set a channel's members",
        description="replace a channel's members",
    )
    p.set_defaults(handler=cmd_channel_members)
    p.add_argument("id", help="channel id")
    p.add_argument("--delegation", action="append", help="member delegation; repeatable")
    p.add_argument("--member", action="append", help="individual member; repeatable")

    p = add("invite", cmd_invite, "invite a person (mediator: any role; head: members)")
    p.add_argument("member", help="member id to give them")
    p.add_argument("--role", default="member", choices=ROLES, help="their role")
    p.add_argument("--delegation", help="their delegation (mediator inviting a head or member)")

    p = add("enrol", cmd_enrol, "enrol an invited person who has joined")
    p.add_argument("member", help="member id")
    p.add_argument("--fingerprint", help="their device fingerprint, as read to you")

    p = add("remove", cmd_remove, "remove a member of your delegation (or mediator staff)")
    p.add_argument("member", help="member id")

    p = add("audit", cmd_audit, "audit the whole log and report (never sees plaintext)")
    p.add_argument("--workers", type=int, help="verifying processes (default: automatic)")
    p.add_argument(
        "--log",
        metavar="FILE",
        help="audit a 'docket-server export' file offline instead of the server's log",
    )
    p.add_argument(
        "--talks",
        metavar="FINGERPRINT_OR_ID",
        help="with --log and no home: the talks to pin",
    )

    p = add("disclose", cmd_disclose, "write an evidence bundle for a draft you received")
    p.add_argument("msg", type=_positive, metavar="MSG", help="log index of the draft")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the bundle")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")

    p = add("verify-evidence", cmd_verify_evidence, "verify an evidence bundle offline")
    p.add_argument("file", metavar="FILE", help="the evidence bundle")
    p.add_argument("--talks", required=True, metavar="FINGERPRINT_OR_ID", help="the pinned talks")

    p = add("demo", cmd_demo, "run a whole mediated exchange against a local server")
    p.add_argument("--workdir", metavar="DIR", help="where to put everything (default: temp)")
    return parser


async def _group_handler(ctx: Context, args: argparse.Namespace) -> JSONValue:
    raise UsageError(f"'{args.command}' needs an action (see 'docket {args.command} --help')")


# --- entry point ---------------------------------------------------------------------------


def _error_line(exc: BaseException) -> tuple[int, str, str]:
    """(exit code, code, message) for any exception."""
    if isinstance(exc, Alarm):
        return exc.exit_code, exc.name, f"{exc.message} -- {exc.explanation}"
    if isinstance(exc, ClientError):
        code = getattr(exc, "code", type(exc).__name__)
        return exc.exit_code, str(code), exc.message
    if isinstance(exc, ProtocolError):
        return EXIT_VERIFY, exc.code, f"{exc.code}: {exc.detail}"
    if isinstance(exc, OSError):
        return EXIT_STATE, "os_error", f"{exc.strerror or exc}"
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_USAGE, "interrupted", "interrupted"
    return EXIT_VERIFY, "internal", f"internal error: {type(exc).__name__}: {exc}"


def _silence_stdout() -> None:
    """Point stdout at /dev/null (the reader of a pipe went away, as in ``| head``), so
    neither our output nor the interpreter's final flush fails."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (never raises, never prints a traceback)."""
    try:
        return _run(argv)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK


# Options whose values are base64url (ids, tokens, keys), which may begin with "-".
ID_OPTIONS = ("--talks", "--parent", "--draft", "--fingerprint", "--token", "--log-key")


def join_id_values(argv: Sequence[str], options: Iterable[str]) -> list[str]:
    """Write ``--talks -Xy...`` as ``--talks=-Xy...`` so that argparse does not take a
    base64url id beginning with ``-`` for an option.  A following token that is one of
    the parser's own ``options`` is left alone."""
    known = set(options)
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        nxt = items[i + 1] if i + 1 < len(items) else None
        if item in ID_OPTIONS and nxt is not None and nxt.startswith("-") and nxt not in known:
            out.append(f"{item}={nxt}")
            i += 2
            continue
        if item == "history" and nxt is not None and nxt.startswith("-") and nxt not in known:
            out.extend([item, f"--draft={nxt}"])  # a draft id as the positional DRAFT
            i += 2
            continue
        out.append(item)
        i += 1
    return out


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:  # argparse offers no public walk over subparsers
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub)
    return found


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    raw = list(argv if argv is not None else sys.argv[1:])
    want_json = "--json" in raw
    ctx: Context | None = None
    try:
        args = parser.parse_args(join_id_values(raw, _option_strings(parser)))
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        ctx = Context(args)
        handler: Handler = args.handler
        result: JSONValue = asyncio.run(handler(ctx, args))
        if ctx.json:
            print(json.dumps(result, sort_keys=True, ensure_ascii=False))
        else:
            for line in ctx.lines:
                print(terminal_safe(line))
        ctx.lines.clear()
        sys.stdout.flush()
        if ctx.pending_error is not None:
            code, _, message = _error_line(ctx.pending_error)
            print(f"docket: {terminal_safe(' '.join(message.split()))}", file=sys.stderr)
            return code
        return EXIT_OK
    except SystemExit as exc:  # --help exits through argparse
        return int(exc.code) if isinstance(exc.code, int) else EXIT_OK
    except BrokenPipeError:
        raise
    except BaseException as exc:
        code, name, message = _error_line(exc)
        if ctx is not None and ctx.lines and not ctx.json:
            # Output gathered before the failure is still true; show it.
            for line in ctx.lines:
                print(terminal_safe(line))
            ctx.lines.clear()
        one_line = terminal_safe(" ".join(message.split()))
        print(f"docket: {one_line}", file=sys.stderr)
        if want_json:
            print(json.dumps({"error": {"code": name, "exit": code, "message": one_line}}))
        return code


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console entry point (``docket``)."""
    sys.exit(run(argv))


if __name__ == "__main__":
    main()


__all__ = ["ALARMS", "build_parser", "main", "run", "safe_file_name", "save_new_file"]
