"""Agreed-text and round record bundles, verified offline.

Agreed text: "these delegations agreed exactly this text at log position N".  Round
record: "round N was closed over the log's size S and root R, and these delegations
countersigned it" (see the comment above :class:`RoundBundle`).

Bundle (canonical JSON, ``t = "agreed"``)::

    evidence   an evidence bundle (protocol.evidence) for the agreed version, whose
               roster changes run up to its checkpoint and whose checkpoint covers
               every initial
    initials   the ``initial`` acts (PROTOCOL.md §8c), one per delegation of the
               channel, each with its log index and inclusion proof

Verification (:func:`verify_agreed`), each step raising :class:`EvidenceError`:

1. the evidence bundle verifies (:func:`protocol.evidence.verify_evidence`): the text is
   exactly what its sender logged at its index, under a checkpoint with the quorum;
2. every initial is included in that checkpoint's tree at its index, after the draft;
3. each initial is an ``initial`` act of these talks on exactly that version (entry,
   index, channel and plaintext commitment), signed by a device of the head of a
   delegation of the channel, under the roster state at its index (the act names that
   state's head, which the bundle's chained roster changes must reproduce);
4. the initials cover every delegation of the channel (policy "all"), one each.

The agreement position N is the index of the last initial.  What the bundle cannot show
offline: that no delegation withdrew its initial between its initial and N (a
withdrawal is an act of its own; the ledger, and so every client and the auditor,
refuses such an agreed state, and an arbitrator who doubts it audits the log).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import checkpoint as cp
from protocol import crypto, merkle
from protocol.acts import Act
from protocol.encoding import Fields, JSONValue, b64e, bytes_list, canonical, parse
from protocol.envelope import DraftHeader
from protocol.errors import EvidenceError, ProtocolError
from protocol.evidence import (
    MAX_EVIDENCE,
    MAX_ITEMS,
    EvidenceBundle,
    EvidenceReport,
    Proven,
    require_trusted,
)
from protocol.evidence import verify_evidence as _verify_evidence
from protocol.genesis import Genesis
from protocol.negotiation import head_of
from protocol.records import verify_record_bytes
from protocol.roster import ROLE_MEDIATOR, Roster, RosterChange


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreedBundle:
    evidence: EvidenceBundle
    initials: tuple[Proven, ...]

    def to_bytes(self) -> bytes:
        return canonical(
            {
                "evidence": parse(self.evidence.to_bytes()),
                "initials": [p.to_json() for p in self.initials],
                "t": "agreed",
                "v": 1,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AgreedBundle:
        f = Fields(parse(data, max_size=MAX_EVIDENCE), "agreed")
        f.literal("t", "agreed")
        f.version(1)
        bundle = cls(
            evidence=EvidenceBundle.from_bytes(canonical(f.raw("evidence"))),
            initials=tuple(
                Proven.from_json(v, "agreed.initials")
                for v in f.list("initials", max_items=MAX_ITEMS)
            ),
        )
        f.done()
        return bundle


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreedReport:
    """What a verified agreed-text bundle proves."""

    text: EvidenceReport
    agreed_at: int
    initials: dict[str, tuple[str, int]]
    """Delegation id -> (its head, the log index of the head's initial)."""

    def to_json(self) -> dict[str, JSONValue]:
        p = self.text.payload
        return {
            "agreed_at": self.agreed_at,
            "body": p.body,
            "channel": self.text.channel,
            "index": self.text.index,
            "initials": {d: {"head": h, "index": i} for d, (h, i) in sorted(self.initials.items())},
            "sender": self.text.sender_member,
            "title": p.title,
        }


def _fail(step: str, exc: ProtocolError) -> EvidenceError:
    return EvidenceError(f"step {step}: {exc.code}: {exc.detail}")


def _roster_at(genesis: Genesis, changes: tuple[Proven, ...], index: int) -> Roster:
    roster = Roster(genesis)
    for item in changes:
        if item.index >= index:
            break
        roster.apply(RosterChange.from_bytes(item.entry))
    return roster


def verify_agreed(
    data: bytes | AgreedBundle, pinned_talks: bytes, *, now: int | None = None
) -> AgreedReport:
    """Verify an agreed-text bundle offline (steps 1-4 of the module docstring)."""
    try:
        bundle = data if isinstance(data, AgreedBundle) else AgreedBundle.from_bytes(data)
    except ProtocolError as exc:
        raise _fail("0 (shape)", exc) from exc
    ev = bundle.evidence
    text = _verify_evidence(ev, pinned_talks, now=now)  # 1 (raises EvidenceError)
    genesis = Genesis.from_bytes(ev.genesis.entry)
    tree, _ = cp.open_checkpoint(
        ev.checkpoint.encode("utf-8"),
        origin=genesis.origin,
        log_name=genesis.log_name,
        log_key=genesis.log_key,
    )
    header_leaf = merkle.leaf_hash(ev.draft.entry)
    header = DraftHeader.from_bytes(ev.draft.entry)  # as step 1 verified it
    seen: dict[str, tuple[str, int]] = {}
    last = ev.draft.index
    parties: tuple[str, ...] = ()
    for item in sorted(bundle.initials, key=lambda p: p.index):
        try:
            merkle.verify_inclusion(
                merkle.leaf_hash(item.entry), item.index, tree.size, item.proof, tree.root
            )
            if item.index <= ev.draft.index:
                raise EvidenceError("an initial precedes the text it initials")
        except ProtocolError as exc:
            raise _fail("2 (inclusion)", exc) from exc
        try:
            act = Act.from_bytes(item.entry)
            body = act.body
            if act.kind != "initial" or not crypto.equal(act.talks, genesis.talks_id):
                raise EvidenceError("not an initial of these talks")
            if (
                body.get("entry") != b64e(header_leaf)
                or body.get("index") != ev.draft.index
                or body.get("channel") != header.channel
                or body.get("commit") != b64e(header.commit)
            ):
                raise EvidenceError("the initial is not on exactly this version")
            roster = _roster_at(genesis, ev.roster, item.index)
            if not crypto.equal(act.roster, roster.head):
                raise EvidenceError("the initial names another roster state than the bundle's")
            member, device = roster.device(act.device)
            verify_record_bytes(device.sign_pk, crypto.CTX_ACT, act.raw, act.sig)
            delegation = head_of(roster, member)
            parties = tuple(roster.channel(header.channel).delegations)
            if delegation is None or delegation not in parties:
                raise EvidenceError("the initial is not by a head of a delegation of the channel")
            if delegation in seen:
                raise EvidenceError("two initials by one delegation")
            seen[delegation] = (member.id, item.index)
            last = item.index
        except ProtocolError as exc:
            raise _fail("3 (initial)", exc) from exc
    if not seen:
        parties = tuple(
            _roster_at(genesis, ev.roster, ev.draft.index).channel(header.channel).delegations
        )
    missing = sorted(set(parties) - set(seen)) if parties else ["any delegation"]
    if missing:
        raise EvidenceError(f"step 4 (agreement): no initial by {', '.join(missing)}")
    return AgreedReport(text=text, agreed_at=last, initials=seen)


# --- round record bundles ---------------------------------------------------------------
#
# Bundle (canonical JSON, ``t = "round"``): ``genesis``, ``roster`` (every roster and
# channel change up to the checkpoint), ``close`` (the ``round.close`` act), ``countersigns``
# (``round.countersign`` acts), each with index and inclusion proof; ``consistency`` (the
# proof that the checkpoint's tree extends the tree of the close's size and root) and
# ``checkpoint`` (a note with the witness quorum).  Verification: the genesis is the pinned
# talks; the roster changes replay, chained; the checkpoint carries the quorum of the
# latest roster state shown; every entry is included; the close is a ``round.close`` by
# the mediator under the roster state at its index, binding the log just before it
# (size = its index), and the consistency proof shows the log had exactly that root at
# that size; each countersignature restates the close's figures, by a head (of a
# delegation of the channel, for a channel's round), one per delegation.


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundBundle:
    genesis: Proven
    roster: tuple[Proven, ...]
    close: Proven
    countersigns: tuple[Proven, ...]
    consistency: tuple[bytes, ...]
    checkpoint: str

    def to_bytes(self) -> bytes:
        return canonical(
            {
                "checkpoint": self.checkpoint,
                "close": self.close.to_json(),
                "consistency": [b64e(h) for h in self.consistency],
                "countersigns": [p.to_json() for p in self.countersigns],
                "genesis": self.genesis.to_json(),
                "roster": [p.to_json() for p in self.roster],
                "t": "round",
                "v": 1,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RoundBundle:
        f = Fields(parse(data, max_size=MAX_EVIDENCE), "round")
        f.literal("t", "round")
        f.version(1)

        def proven_list(key: str) -> tuple[Proven, ...]:
            items = f.list(key, max_items=MAX_ITEMS)
            return tuple(Proven.from_json(v, f"round.{key}") for v in items)

        bundle = cls(
            genesis=Proven.from_json(f.raw("genesis"), "round.genesis"),
            roster=proven_list("roster"),
            close=Proven.from_json(f.raw("close"), "round.close"),
            countersigns=proven_list("countersigns"),
            consistency=tuple(
                bytes_list(f.list("consistency", max_items=64), "round.consistency", length=32)
            ),
            checkpoint=f.str("checkpoint", max_len=64 * 1024),
        )
        f.done()
        return bundle


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundReport:
    """What a verified round record bundle proves."""

    round: int
    channel: str | None
    size: int
    root: bytes
    closed_at: int
    checkpoint_size: int
    countersigns: dict[str, tuple[str, int]]
    """Delegation id -> (its head, the log index of the countersignature)."""
    parties: tuple[str, ...]
    """Every delegation of the round's scope (at the checkpoint's roster state)."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "channel": self.channel,
            "checkpoint_size": self.checkpoint_size,
            "closed_at": self.closed_at,
            "countersigns": {
                d: {"head": h, "index": i} for d, (h, i) in sorted(self.countersigns.items())
            },
            "not_countersigned": sorted(set(self.parties) - set(self.countersigns)),
            "root": b64e(self.root),
            "round": self.round,
            "size": self.size,
        }


def _signed_act(genesis: Genesis, changes: tuple[Proven, ...], item: Proven) -> tuple[Act, Roster]:
    act = Act.from_bytes(item.entry)
    if not crypto.equal(act.talks, genesis.talks_id):
        raise EvidenceError("an act of other talks")
    roster = _roster_at(genesis, changes, item.index)
    if not crypto.equal(act.roster, roster.head):
        raise EvidenceError("an act names another roster state than the bundle's")
    _, device = roster.device(act.device)
    verify_record_bytes(device.sign_pk, crypto.CTX_ACT, act.raw, act.sig)
    return act, roster


def verify_round(
    data: bytes | RoundBundle, pinned_talks: bytes, *, now: int | None = None
) -> RoundReport:
    """Verify a round record bundle offline (see the comment above :class:`RoundBundle`)."""
    try:
        bundle = data if isinstance(data, RoundBundle) else RoundBundle.from_bytes(data)
        genesis = Genesis.from_bytes(bundle.genesis.entry)
        if bundle.genesis.index != 0:
            raise EvidenceError("the genesis must be entry 0")
        genesis.check_talks(pinned_talks)
    except ProtocolError as exc:
        raise _fail("1 (genesis)", exc) from exc
    try:
        state = Roster(genesis)
        last = 0
        for item in bundle.roster:
            if item.index <= last:
                raise EvidenceError("roster entries out of order")
            state.apply(RosterChange.from_bytes(item.entry))
            last = item.index
    except ProtocolError as exc:
        raise _fail("2 (roster)", exc) from exc
    try:
        tree, note = cp.open_checkpoint(
            bundle.checkpoint.encode("utf-8"),
            origin=genesis.origin,
            log_name=genesis.log_name,
            log_key=genesis.log_key,
        )
        require_trusted(tree, note, state, now=now)
    except ProtocolError as exc:
        raise _fail("3 (checkpoint)", exc) from exc
    try:
        for item in (bundle.genesis, *bundle.roster, bundle.close, *bundle.countersigns):
            merkle.verify_inclusion(
                merkle.leaf_hash(item.entry), item.index, tree.size, item.proof, tree.root
            )
    except ProtocolError as exc:
        raise _fail("4 (inclusion)", exc) from exc
    try:
        close, roster = _signed_act(genesis, bundle.roster, bundle.close)
        member, _ = roster.device(close.device)
        if close.kind != "round.close" or member.role != ROLE_MEDIATOR:
            raise EvidenceError("the record is not a round.close by the mediator")
        f = Fields(dict(close.body), "round.close")
        channel = f.opt_str("channel", max_len=64)
        number = f.int("round", lo=1)
        size = f.int("size", lo=1)
        root = f.bytes("root", length=32)
        f.done()
        if size != bundle.close.index:
            raise EvidenceError("a round record binds the log just before it")
        merkle.verify_consistency(size, tree.size, root, tree.root, bundle.consistency)
    except ProtocolError as exc:
        raise _fail("5 (close)", exc) from exc
    signed: dict[str, tuple[str, int]] = {}
    try:
        for item in sorted(bundle.countersigns, key=lambda p: p.index):
            act, at = _signed_act(genesis, bundle.roster, item)
            if act.kind != "round.countersign" or dict(act.body) != dict(close.body):
                raise EvidenceError("a countersignature restates other figures")
            if item.index <= bundle.close.index:
                raise EvidenceError("a countersignature precedes the close")
            who, _ = at.device(act.device)
            delegation = head_of(at, who)
            if delegation is None or (
                channel is not None and delegation not in at.channel(channel).delegations
            ):
                raise EvidenceError("a countersignature not by a head of the round's parties")
            if delegation in signed:
                raise EvidenceError("two countersignatures by one delegation")
            signed[delegation] = (who.id, item.index)
    except ProtocolError as exc:
        raise _fail("6 (countersignatures)", exc) from exc
    parties = tuple(
        sorted(state.delegations if channel is None else state.channel(channel).delegations)
    )
    return RoundReport(
        round=number,
        channel=channel,
        size=size,
        root=root,
        closed_at=bundle.close.index,
        checkpoint_size=tree.size,
        countersigns=signed,
        parties=parties,
    )
