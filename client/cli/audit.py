"""Auditing and evidence: ``audit`` (online or of an exported log), ``disclose`` (an
evidence bundle, or with ``--misbehaviour`` a misbehaviour bundle) and
``verify-evidence`` (either kind, told apart by the bundle's ``t``).  None of them needs
the server's honesty; the audit never sees plaintext."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from client import keystore
from client.api import (
    bundle_kind,
    check_talks_matches,
    verify_agreed_bytes,
    verify_broken_promise_bytes,
    verify_evidence_bytes,
    verify_misbehaviour_bytes,
    verify_round_bytes,
)
from client.auditor import audit_log, read_export
from client.auditor.lifecycle import SIGNED_AFTER_COMPROMISE
from client.cli.context import Context
from client.cli.files import safe_file_name, save_new_file
from client.cli.output import _progress_bar, fmt_time
from client.cli.parsing import Commands, positive
from client.errors import StateError, UsageError, VerificationError
from protocol.agreement import AgreedReport
from protocol.brokenpromise import BrokenPromiseReport, verify_broken_promise
from protocol.checkpoint import Checkpoint, parse_note
from protocol.encoding import JSONValue, b64e
from protocol.errors import ProtocolError
from protocol.evidence import EvidenceReport
from protocol.merkle import leaf_hash
from protocol.misbehaviour import MisbehaviourReport, verify_misbehaviour


def register(commands: Commands) -> None:
    """Add ``audit``, ``disclose`` and ``verify-evidence``."""
    p = commands.add("audit", cmd_audit, "audit the whole log and report (never sees plaintext)")
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
    p.add_argument(
        "--promise",
        action="append",
        default=[],
        metavar="FILE",
        help="a broken-promise bundle ('docket disclose INDEX --broken-promise') to verify "
        "and report (repeatable)",
    )

    p = commands.add("disclose", cmd_disclose, "write an evidence bundle for a draft you received")
    p.add_argument("msg", type=positive, metavar="MSG", help="log index of the draft")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the bundle")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument(
        "--misbehaviour",
        action="store_true",
        help="for a draft you rejected as the sender's fault: write a misbehaviour bundle "
        "(discloses your key for that one box, never a text)",
    )
    p.add_argument(
        "--broken-promise",
        action="store_true",
        help="MSG is a log index the server promised for your write and did not honour: "
        "write its signed promise and the log that contradicts it (discloses no content)",
    )

    p = commands.add(
        "verify-evidence", cmd_verify_evidence, "verify an evidence or misbehaviour bundle offline"
    )
    p.add_argument("file", metavar="FILE", help="the evidence or misbehaviour bundle")
    p.add_argument("--talks", required=True, metavar="FINGERPRINT_OR_ID", help="the pinned talks")
    p.add_argument(
        "--show", action="store_true", help="also print the disclosed text (made terminal-safe)"
    )
    p.add_argument(
        "--extract",
        metavar="DIR",
        help="write the disclosed text and file into DIR (sanitised names, never overwriting)",
    )


async def cmd_audit(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket audit``: the auditor's report; exit 1 on any alarm."""
    if args.log is not None:
        return await _audit_export(ctx, args)
    bundles = _read_promises(args.promise)
    async with ctx.client() as client:
        report = await client.audit(
            workers=args.workers, progress=_progress_bar(ctx), broken_promises=bundles
        )
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
        pinned = await _pinned_talks_for_export(ctx)
    report = audit_log(
        exported.entries,
        pinned_talks=pinned,
        checkpoints=exported.checkpoints,
        workers=args.workers,
        progress=_progress_bar(ctx),
        broken_promises=_read_promises(args.promise),
        now=int(time.time()),
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
            broken_promises=_read_promises(args.promise),
            now=int(time.time()),
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


_NEEDS_TALKS = (
    "audit --log needs the talks to check the export against: give --talks with the talks "
    "fingerprint the mediator handed out (or run it with --home of a member of those talks)"
)


async def _pinned_talks_for_export(ctx: Context) -> bytes:
    """The talks id pinned in the home, for ``audit --log`` without ``--talks``.  Without
    a home that has talks, the thing missing is ``--talks``, not a ``join``."""
    if not keystore.keystore_path(ctx.home).exists():
        raise UsageError(_NEEDS_TALKS)
    async with ctx.client() as client:
        genesis = client.state.genesis()
        if genesis is None:
            raise UsageError(_NEEDS_TALKS)
        return genesis.talks_id


def _read_promises(paths: list[str]) -> list[bytes]:
    """The broken-promise bundles named with ``--promise``."""
    out = []
    for name in paths:
        try:
            out.append(Path(name).read_bytes())
        except OSError as exc:
            raise UsageError(f"cannot read {name}: {exc.strerror}") from exc
    return out


def _note_size(note: bytes) -> int:
    """The tree size a checkpoint note claims (unverified; -1 if unreadable)."""
    try:
        return Checkpoint.from_body(parse_note(note).text).size
    except ProtocolError:
        return -1


async def cmd_disclose(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket disclose MSG --out FILE [--misbehaviour]``."""
    async with ctx.client() as client:
        out = Path(args.out)
        genesis = client.genesis()
        verify = f"Verify with: docket verify-evidence {out} --talks '{genesis.fingerprint}'"
        if args.broken_promise:
            broken = await client.disclose_broken_promise(args.msg)
            proved = verify_broken_promise(broken, genesis.talks_id)
            data = broken.to_bytes()
            _write_private(out, data, force=args.force)
            ctx.say(
                f"Wrote a broken-promise bundle for log index {args.msg} to {out} "
                f"({len(data)} bytes)."
            )
            show_broken_promise(ctx, proved)
            ctx.say(verify)
            return {**broken_promise_json(proved), "bytes": len(data), "out": str(out)}
        if args.misbehaviour:
            bundle = await client.disclose_misbehaviour(args.msg)
            report = verify_misbehaviour(bundle, genesis.talks_id)
            data = bundle.to_bytes()
            _write_private(out, data, force=args.force)
            ctx.say(
                f"Wrote a misbehaviour bundle for draft {args.msg} to {out} ({len(data)} bytes)."
            )
            ctx.say(
                f"It proves that {report.sender_member} wrapped for this device a key that does "
                f"not open the committed text ({report.failure})."
            )
            ctx.say("It discloses this device's key for that one box, never a text.")
            ctx.say(verify)
            return {
                "bytes": len(data),
                "failure": report.failure,
                "index": args.msg,
                "out": str(out),
                "recipient": report.recipient_member,
                "sender": report.sender_member,
                "t": "misbehaviour",
            }
        evidence = await client.disclose(args.msg)
        data = evidence.to_bytes()
        # The bundle discloses the draft's content: readable by this user only.
        _write_private(out, data, force=args.force)
        ctx.say(f"Wrote evidence for draft {args.msg} to {out} ({len(data)} bytes).")
        ctx.say("It discloses the draft's content to whoever receives it.")
        ctx.say(verify)
        return {"bytes": len(data), "index": args.msg, "out": str(out)}


def _write_private(out: Path, data: bytes, *, force: bool) -> None:
    """Write ``data`` to ``out``, readable by this user only; never replace a file
    unless ``force``."""
    if out.exists() and not force:
        raise UsageError(f"{out} exists (use --force to replace it)")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if force else os.O_EXCL)
    try:
        fd = os.open(out, flags, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise StateError(f"cannot write {out}: {exc.strerror}") from exc


async def cmd_verify_evidence(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket verify-evidence FILE --talks ...``: an evidence bundle, or a misbehaviour
    bundle (told apart by its ``t``)."""
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
    if bundle_kind(data) == "broken_promise":
        broken = verify_broken_promise_bytes(data, args.talks)
        show_broken_promise(ctx, broken)
        return broken_promise_json(broken)
    if bundle_kind(data) == "round":
        record = verify_round_bytes(data, args.talks)
        signed = ", ".join(f"{d} ({h})" for d, (h, _) in sorted(record.countersigns.items()))
        ctx.say(
            f"VERIFIED: round {record.round} ({record.channel or 'whole talks'}) closed over "
            f"the log's size {record.size}, root {b64e(record.root)}"
        )
        ctx.say(f"countersigned by: {signed or 'nobody'}")
        return {"t": "round", **record.to_json()}
    if bundle_kind(data) == "agreed":
        agreed = verify_agreed_bytes(data, args.talks)
        show_agreed(ctx, agreed)
        return {"t": "agreed", **agreed.to_json()}
    if bundle_kind(data) == "misbehaviour":
        misbehaviour = verify_misbehaviour_bytes(data, args.talks)
        show_misbehaviour(ctx, misbehaviour)
        return misbehaviour_json(misbehaviour)
    report = verify_evidence_bytes(data, args.talks)
    show_report(ctx, report)
    out = report_json(report)
    p = report.payload
    if args.show:
        ctx.say("")
        if p.body is None:
            ctx.say("(the draft has no text; --extract DIR writes its file)")
        for line in (p.body or "").splitlines():
            ctx.say(line)
    if args.extract is not None:
        # Only what was verified above is written; the names come from the sender, so
        # they are sanitised and can never leave DIR or replace a file.
        directory = Path(args.extract)
        written: list[JSONValue] = []
        if p.file_data is not None:
            written.append(str(save_new_file(directory, safe_file_name(p.file_name), p.file_data)))
        if p.body is not None:
            name = safe_file_name(f"{p.title or 'draft'}-{report.index}.txt")
            written.append(str(save_new_file(directory, name, p.body.encode("utf-8"))))
        for path_text in written:
            ctx.say(f"extracted: {path_text}")
        out["extracted"] = written
    return out


def show_broken_promise(ctx: Context, report: BrokenPromiseReport) -> None:
    """Human summary of what a verified broken-promise bundle proves."""
    if report.logged_leaf is not None:
        ctx.say(
            f"PROVEN: the log promised an entry at index {report.index} and signed a "
            f"checkpoint of {report.checkpoint_size} entries holding another entry there"
        )
    else:
        ctx.say(
            f"PROVEN: the log promised an entry at index {report.index} and, past the bound, "
            f"the witnesses ({', '.join(report.cosigners)}) cosigned its checkpoint of "
            f"{report.checkpoint_size} entries"
        )
    ctx.say(f"talks:      {report.talks_fingerprint} ({report.origin})")
    ctx.say(f"promised:   at {fmt_time(report.promise_time)} (the server's own time)")


def broken_promise_json(report: BrokenPromiseReport) -> dict[str, JSONValue]:
    """JSON form of a :class:`BrokenPromiseReport`."""
    return {
        "checkpoint_size": report.checkpoint_size,
        "cosigners": list(report.cosigners),
        "index": report.index,
        "kind": report.kind,
        "logged_leaf": None if report.logged_leaf is None else b64e(report.logged_leaf),
        "origin": report.origin,
        "promise_time": report.promise_time,
        "promised_leaf": b64e(report.promised_leaf),
        "proven": True,
        "t": "broken_promise",
        "talks_fingerprint": report.talks_fingerprint,
    }


def show_agreed(ctx: Context, report: AgreedReport) -> None:
    """Human summary of what a verified agreed-text bundle proves."""
    heads = ", ".join(f"{d} ({h}, index {i})" for d, (h, i) in sorted(report.initials.items()))
    ctx.say(
        f"VERIFIED: every delegation of {report.text.channel} agreed exactly this text "
        f"(log index {report.text.index}) at log position {report.agreed_at}"
    )
    ctx.say(f"initialled by: {heads}")
    show_report(ctx, report.text)


def show_misbehaviour(ctx: Context, report: MisbehaviourReport) -> None:
    """Human summary of what a verified misbehaviour bundle proves."""
    ctx.say(
        f"PROVEN: sender {report.sender_member} signed draft at index {report.index}; the key "
        f"wrapped for {report.recipient_member} does not open to the committed text "
        f"({report.failure})"
    )
    ctx.say(f"talks:      {report.talks_fingerprint} ({report.origin})")
    ctx.say(f"checkpoint: size {report.checkpoint_size}, cosigned by {', '.join(report.cosigners)}")
    ctx.say(
        f"draft:      log index {report.index}, signed by {report.sender_member} for "
        f"{report.channel} at {fmt_time(report.time)}"
    )


def misbehaviour_json(report: MisbehaviourReport) -> dict[str, JSONValue]:
    """JSON form of a :class:`MisbehaviourReport`."""
    return {
        "channel": report.channel,
        "checkpoint_size": report.checkpoint_size,
        "cosigners": list(report.cosigners),
        "failure": report.failure,
        "index": report.index,
        "origin": report.origin,
        "proven": True,
        "recipient": report.recipient_member,
        "recipient_device": b64e(report.recipient_device),
        "sender": report.sender_member,
        "sender_device": b64e(report.sender_device),
        "t": "misbehaviour",
        "talks_fingerprint": report.talks_fingerprint,
        "time": report.time,
    }


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
        if fact.index in report.compromised:
            extra += f" [{SIGNED_AFTER_COMPROMISE}]"
        ctx.say(f"receipt:    {fact.kind}{extra} by {fact.member} at {fmt_time(fact.time)}")
    if report.index in report.compromised:
        ctx.say(f"WARNING:    the draft was {SIGNED_AFTER_COMPROMISE} of its device")


def report_json(report: EvidenceReport) -> dict[str, JSONValue]:
    """JSON form of an :class:`EvidenceReport`."""
    p = report.payload
    return {
        "body": p.body,
        "channel": report.channel,
        "checkpoint_size": report.checkpoint_size,
        "compromised": list(report.compromised),
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
