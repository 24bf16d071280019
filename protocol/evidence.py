"""Evidence bundles: "X sent exactly this text at log position N, and Y received it".

A recipient who chooses to disclose a draft builds a self-contained bundle; an arbitrator
verifies it offline with nothing but the pinned talks id.

Bundle (canonical JSON, ``t = "evidence"``)::

    genesis      the genesis record (entry 0) with its inclusion proof
    roster       every roster/channel change from the genesis up to (at least) the
                 draft, and optionally on up to the checkpoint, each with its log index
                 and inclusion proof
    draft        the draft header, its index and inclusion proof
    ciphertext   the draft ciphertext
    content_key  the disclosed content key
    receipts     receipts for the draft, each with index and inclusion proof
    checkpoint   a C2SP checkpoint note, signed by the log and cosigned by witnesses

Verification (:func:`verify_evidence`), each step raising :class:`EvidenceError` with the
underlying code:

1. the genesis verifies and its leaf hash equals the pinned talks id;
2. the roster changes replay through :class:`~protocol.roster.Roster` from the genesis
   (signatures, authority and ``prev`` chaining: because each change names its
   predecessor, the chain cannot omit a change); indices strictly increase; the state
   in force at the draft's index is kept for steps 5 and 7;
3. the checkpoint carries a valid log signature and the witness quorum of the latest
   roster state shown (so a head that rotated its key after the draft still counts);
4. every entry (genesis at 0, roster changes, draft, receipts) is included in the
   checkpoint's tree at its stated index;
5. the draft header names the roster head in force at its index, is signed by a member of its
   channel, and its recipients are the channel's devices;
6. the ciphertext matches the header, the content key decrypts it, and the commitment
   binds key and plaintext: the text is exactly what the sender signed;
7. each receipt is signed by a recipient device and bound to the draft.

Steps 1-5 (:func:`verify_logged_draft`) prove a logged draft header and nothing about its
content; misbehaviour bundles (:mod:`protocol.misbehaviour`) build on them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from protocol import checkpoint as cp
from protocol import crypto, merkle
from protocol.encoding import Fields, JSONValue, b64e, bytes_list, canonical, parse
from protocol.envelope import DraftHeader, Payload, open_with_key, verify_header
from protocol.errors import EvidenceError, NonPaperError, ProtocolError, QuorumError
from protocol.genesis import Genesis
from protocol.keys import DeviceId
from protocol.quorum import MAX_FUTURE, describe_rule, evaluate, quorum_cosigners, rule_met
from protocol.receipt import Receipt, verify_receipt
from protocol.roster import Roster, RosterChange

MAX_EVIDENCE = 200 * 1024 * 1024
MAX_ITEMS = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Proven:
    """A log entry with its index and inclusion proof."""

    index: int
    entry: bytes
    proof: tuple[bytes, ...]

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "entry": parse(self.entry),
            "index": self.index,
            "proof": [b64e(p) for p in self.proof],
        }

    @classmethod
    def from_json(cls, value: JSONValue, what: str) -> Proven:
        f = Fields(value, what)
        index = f.int("index")
        entry = canonical(f.obj("entry"))
        proof = bytes_list(f.list("proof", max_items=64), f"{what}.proof", length=32)
        f.done()
        return cls(index=index, entry=entry, proof=tuple(proof))


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceBundle:
    genesis: Proven
    roster: tuple[Proven, ...]
    draft: Proven
    ciphertext: bytes = field(repr=False)
    content_key: bytes = field(repr=False)
    receipts: tuple[Proven, ...]
    checkpoint: str

    def to_bytes(self) -> bytes:
        return canonical(
            {
                "checkpoint": self.checkpoint,
                "ciphertext": b64e(self.ciphertext),
                "content_key": b64e(self.content_key),
                "draft": self.draft.to_json(),
                "genesis": self.genesis.to_json(),
                "receipts": [r.to_json() for r in self.receipts],
                "roster": [r.to_json() for r in self.roster],
                "t": "evidence",
                "v": 1,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> EvidenceBundle:
        f = Fields(parse(data, max_size=MAX_EVIDENCE), "evidence")
        f.literal("t", "evidence")
        f.version(1)
        bundle = cls(
            genesis=Proven.from_json(f.raw("genesis"), "evidence.genesis"),
            roster=tuple(
                Proven.from_json(v, "evidence.roster")
                for v in f.list("roster", max_items=MAX_ITEMS)
            ),
            draft=Proven.from_json(f.raw("draft"), "evidence.draft"),
            ciphertext=f.bytes("ciphertext", max_len=MAX_EVIDENCE),
            content_key=f.bytes("content_key", length=crypto.CONTENT_KEY_LEN),
            receipts=tuple(
                Proven.from_json(v, "evidence.receipts")
                for v in f.list("receipts", max_items=MAX_ITEMS)
            ),
            checkpoint=f.str("checkpoint", max_len=64 * 1024),
        )
        f.done()
        return bundle


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptFact:
    index: int
    device: DeviceId
    member: str
    kind: str
    reason: str | None
    time: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceReport:
    """What a verified bundle proves."""

    talks_fingerprint: str
    origin: str
    checkpoint_size: int
    cosigners: tuple[str, ...]
    index: int
    channel: str
    sender_member: str
    sender_device: DeviceId
    time: int
    payload: Payload
    recipients: tuple[str, ...]
    receipts: tuple[ReceiptFact, ...]
    compromised: tuple[int, ...] = ()
    """Indices of the bundle's draft and receipts signed after their device's declared
    compromise, by the revocations the bundle's roster shows (docs/PROTOCOL.md 5a)."""


def require_trusted(
    checkpoint: cp.Checkpoint,
    note: cp.SignedNote,
    roster: Roster,
    *,
    now: int | None = None,
    not_before: int | None = None,
) -> tuple[str, ...]:
    """Require the roster's witness quorum on ``checkpoint``; return the cosigners.

    With ``now`` (the verifier's clock, seconds) cosignatures dated in its future do not
    count; with ``not_before`` neither do those dated before it (protocol.quorum)."""
    if now is not None or not_before is not None:
        view = evaluate(checkpoint, note, roster, now=now, not_before=not_before)
        names = set(view.cosigners)
    else:
        names = quorum_cosigners(checkpoint, note, roster.witnesses())
    if not rule_met(names, roster):
        raise QuorumError(
            f"checkpoint has {len(names)} cosignatures, not the quorum ({describe_rule(roster)})"
        )
    return tuple(sorted(names))


def _wrap(step: str, exc: ProtocolError) -> EvidenceError:
    return EvidenceError(f"step {step}: {exc.code}: {exc.detail}")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedDraft:
    """What steps 1-5 establish: a draft header logged under the pinned talks, signed by
    a member of its channel, addressed to exactly the channel's devices."""

    genesis: Genesis
    roster: Roster
    """The roster state in force at the draft's index."""
    checkpoint: cp.Checkpoint
    cosigners: tuple[str, ...]
    header: DraftHeader
    sender_member: str
    latest: Roster | None = None
    """The latest roster state the bundle shows (its revocations flag compromises)."""


def verify_logged_draft(
    *,
    genesis: Proven,
    roster: Sequence[Proven],
    draft: Proven,
    checkpoint: str,
    pinned_talks: bytes,
    included: Sequence[Proven] = (),
    now: int | None = None,
) -> LoggedDraft:
    """Steps 1-5 of the module docstring, shared by every bundle that proves a logged
    draft; ``included`` are further entries (receipts) whose inclusion step 4 checks.
    Raises :class:`EvidenceError` naming the step."""
    # 1. genesis and pin
    try:
        if genesis.index != 0:
            raise EvidenceError("the genesis must be entry 0")
        origin = Genesis.from_bytes(genesis.entry)
        origin.check_talks(pinned_talks)
    except ProtocolError as exc:
        raise _wrap("1 (genesis)", exc) from exc
    # 2. roster replay; ``at_draft`` is the state in force at the draft's index, ``state``
    #    the latest state the bundle shows (its witnesses judge the checkpoint).
    state = Roster(origin)
    at_draft: Roster | None = None
    last = 0
    try:
        for item in roster:
            if item.index <= last or item.index == draft.index:
                raise EvidenceError("roster entries out of order")
            if at_draft is None and item.index > draft.index:
                at_draft = state.copy()
            state.apply(RosterChange.from_bytes(item.entry), index=item.index)
            last = item.index
    except ProtocolError as exc:
        raise _wrap("2 (roster)", exc) from exc
    if at_draft is None:
        at_draft = state
    # 3. checkpoint
    try:
        tree, note = cp.open_checkpoint(
            checkpoint.encode("utf-8"),
            origin=origin.origin,
            log_name=origin.log_name,
            log_key=origin.log_key,
        )
        # Cosignature times: none from the verifier's future, none from before the
        # draft existed (its signed time, ms, less the allowed clock difference).
        not_before = None
        if now is not None:
            header_time = parse(draft.entry).get("time")
            if isinstance(header_time, int) and not isinstance(header_time, bool):
                not_before = header_time // 1000 - MAX_FUTURE
        cosigners = require_trusted(tree, note, state, now=now, not_before=not_before)
    except ProtocolError as exc:
        raise _wrap("3 (checkpoint)", exc) from exc
    # 4. inclusion of everything
    try:
        for item in (genesis, *roster, draft, *included):
            merkle.verify_inclusion(
                merkle.leaf_hash(item.entry), item.index, tree.size, item.proof, tree.root
            )
    except ProtocolError as exc:
        raise _wrap("4 (inclusion)", exc) from exc
    # 5. draft header
    try:
        header = DraftHeader.from_bytes(draft.entry)
        if not crypto.equal(header.roster, at_draft.head):
            raise EvidenceError("draft does not name the roster state at its index")
        sender_member, sender_key = at_draft.device(header.sender)
        if not at_draft.is_channel_member(header.channel, sender_member.id):
            raise EvidenceError("sender is not a member of the channel")
        verify_header(
            header,
            talks=origin.talks_id,
            sender=sender_key,
            recipients=at_draft.channel_devices(header.channel),
        )
    except ProtocolError as exc:
        raise _wrap("5 (draft)", exc) from exc
    return LoggedDraft(
        genesis=origin,
        roster=at_draft,
        checkpoint=tree,
        cosigners=cosigners,
        header=header,
        sender_member=sender_member.id,
        latest=state,
    )


def verify_evidence(
    data: bytes | EvidenceBundle, pinned_talks: bytes, *, now: int | None = None
) -> EvidenceReport:
    """Verify a bundle offline (steps 1-7 of the module docstring); ``now`` (seconds)
    enables the cosignature time checks of step 3."""
    try:
        bundle = data if isinstance(data, EvidenceBundle) else EvidenceBundle.from_bytes(data)
    except ProtocolError as exc:
        raise _wrap("0 (parse)", exc) from exc
    logged = verify_logged_draft(
        genesis=bundle.genesis,
        roster=bundle.roster,
        draft=bundle.draft,
        checkpoint=bundle.checkpoint,
        pinned_talks=pinned_talks,
        included=bundle.receipts,
        now=now,
    )
    header, at_draft = logged.header, logged.roster
    # 6. content; a non-paper proves its content to its recipients only, never here
    if header.mode is not None:
        raise NonPaperError("the draft is a non-paper: its content is attributable to nobody")
    try:
        payload = open_with_key(header, bundle.ciphertext, bundle.content_key)
    except ProtocolError as exc:
        raise _wrap("6 (content)", exc) from exc
    # 7. receipts
    facts = []
    try:
        for item in bundle.receipts:
            receipt = Receipt.from_bytes(item.entry)
            if item.index <= bundle.draft.index:
                raise EvidenceError("receipt precedes its draft")
            member, key = at_draft.device(receipt.device)
            verify_receipt(receipt, signer=key, header=header, index=bundle.draft.index)
            facts.append(
                ReceiptFact(
                    index=item.index,
                    device=receipt.device,
                    member=member.id,
                    kind=receipt.kind,
                    reason=receipt.reason,
                    time=receipt.time,
                )
            )
    except ProtocolError as exc:
        raise _wrap("7 (receipts)", exc) from exc
    return EvidenceReport(
        talks_fingerprint=logged.genesis.fingerprint,
        origin=logged.genesis.origin,
        checkpoint_size=logged.checkpoint.size,
        cosigners=logged.cosigners,
        index=bundle.draft.index,
        channel=header.channel,
        sender_member=logged.sender_member,
        sender_device=header.sender,
        time=header.time,
        payload=payload,
        recipients=tuple(m.id for m in at_draft.channel_members(header.channel)),
        receipts=tuple(facts),
        compromised=_compromised(logged, bundle.draft.index, facts),
    )


def _compromised(logged: LoggedDraft, index: int, facts: Sequence[ReceiptFact]) -> tuple[int, ...]:
    """Step 8: entries signed at or after their device's declared compromise."""
    latest = logged.latest
    if latest is None:
        return ()
    out = [index] if latest.compromised(logged.header.sender, index) is not None else []
    out += [f.index for f in facts if latest.compromised(f.device, f.index) is not None]
    return tuple(out)
