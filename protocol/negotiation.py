"""The negotiation: rounds, initials and calls for sealed proposals, as act families.

Theory of operation
-------------------
Three families of :mod:`protocol.acts` give the talks their procedure.  Every rule here
is pure and decided from the log alone, so the server (before it logs an act), every
client (as it syncs) and the auditor (over the whole log) agree on it.

Rounds (family ``rounds``)
  ``round.open {round, channel}`` and ``round.close {round, channel, size, root}`` are
  the mediator's; ``channel`` is a channel id or ``null`` for the whole talks (a
  *scope*).  Rounds of a scope are numbered 1, 2, ... and one is open at a time.  The
  close binds round N to the log just before it: ``size`` is the close's own log index
  and ``root`` the Merkle root of the log at that size.  The ledger checks the size; the
  root is checked by whoever holds the tree (:func:`check_tree_claim`: the server
  before it sequences, from its frontier; every client as it appends; the auditor as it
  replays), since an act family sees the draft index but not the tree.  ``round.countersign {round,
  channel, size, root}`` is a head's "we accept the log up to size S as the record of
  round N": once per delegation (of the channel, for a channel's round), restating
  exactly the closed size and root.

Initials (family ``initials``)
  ``initial {channel, draft, entry, index, commit}`` is a head's initialling, ad
  referendum, of exactly one version: the leaf hash ``entry`` at log ``index`` of draft
  ``draft`` in ``channel``, with that version's plaintext commitment ``commit`` (so an
  arbitrator given the disclosed text and content key checks it).  Only a head of a
  delegation of the channel may initial, only the newest version of the draft (a later
  version resets the state: its predecessors can no longer be initialled), once per
  delegation.  The text is *agreed* when every delegation of the channel has initialled
  the same version (the policy is "all"); agreed is final.  ``initial.withdraw
  {channel, draft, entry}`` takes a delegation's initial back until the text is agreed.

Calls for proposals (family ``calls``: simultaneous exchange, commit then reveal)
  ``call.open {call, channel, delegations, deadline}`` (mediator) names delegations of
  the channel and a deadline (ms).  A delegation tables its proposal as an ordinary
  draft to the channel whose payload is the real proposal sealed again under a key
  ``K`` only the sender holds (see :mod:`client.negotiation`), then logs
  ``proposal.commit {call, entry, index, commit}`` with ``commit`` =
  ``commitment(K, proposal plaintext)``, at or before the deadline and before the
  release (else ``late_proposal``), one per named delegation, sent by the proposal's
  own sender.  ``call.release {call}`` (mediator only) is accepted once every named
  delegation has committed or the deadline has passed (by the act's time).  Only then
  ``proposal.reveal {call, entry, keys}`` (the proposal's sender) wraps ``K`` to every
  recipient device of the proposal draft (``not_released`` before).  Recipients open
  the inner proposal with ``K`` and check ``commit``.  A committed proposal never
  revealed is listed by :meth:`CallsState.unrevealed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from protocol import acts, crypto
from protocol.acts import Act, ActContext
from protocol.encoding import Fields, JSONValue, b64e
from protocol.envelope import DraftHeader, keys_from_json
from protocol.errors import (
    BadValueError,
    CallError,
    CommitmentMismatchError,
    InitialError,
    LateProposalError,
    NotEntitledError,
    NotReleasedError,
    ProtocolError,
    RoundError,
    UnknownCheckpointError,
)
from protocol.keys import DeviceId
from protocol.merkle import LeafHash
from protocol.records import ID_RE
from protocol.roster import ROLE_MEDIATOR, Member, Roster

MAX_DELEGATIONS = 64


# --- shared helpers ---------------------------------------------------------------------


def _scope(value: str | None) -> str:
    return "*" if value is None else value


def _channel_opt(f: Fields, roster: Roster) -> str | None:
    channel = f.opt_str("channel", max_len=64)
    if channel is not None:
        if not ID_RE.fullmatch(channel):
            raise BadValueError("channel is not a valid id")
        roster.channel(channel)
    return channel


def _mediator(member: Member, what: str) -> None:
    if member.role != ROLE_MEDIATOR:
        raise NotEntitledError(f"only the mediator may {what}")


def head_of(roster: Roster, member: Member) -> str | None:
    """The delegation ``member`` heads, if any."""
    d = member.delegation
    if d is not None and d in roster.delegations and roster.delegations[d].head == member.id:
        return d
    return None


def headed_by(roster: Roster, member: Member, what: str) -> str:
    """The delegation ``member`` heads; :class:`NotEntitledError` if none (apply steps
    rely on it as their checks did, without an ``assert`` that ``-O`` would drop)."""
    d = head_of(roster, member)
    if d is None:
        raise NotEntitledError(f"only a delegation's head may {what}")
    return d


def _draft(ctx: ActContext, entry: LeafHash, index: int) -> DraftHeader:
    """The draft logged at ``index`` with leaf ``entry``, before this act."""
    leaf = ctx.drafts.leaf_at(index)
    state = None if leaf is None else ctx.drafts.draft(leaf)
    if state is None or leaf != entry or state.index >= ctx.index:
        raise InitialError("no such draft version at that index")
    return state.header


# --- rounds -----------------------------------------------------------------------------


@dataclass
class Round:
    """One round of a scope (``channel`` None: the whole talks)."""

    number: int
    channel: str | None
    opened_at: int
    closed_at: int | None = None
    size: int | None = None
    root: bytes | None = None
    countersigns: dict[str, int] = field(default_factory=dict)
    """Delegation id -> log index of its countersignature."""

    def contains(self, index: int) -> bool:
        """Whether the entry at ``index`` was logged during this round."""
        end = self.closed_at if self.closed_at is not None else 1 << 62
        return self.opened_at < index < end

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "channel": self.channel,
            "closed_at": self.closed_at,
            "countersigns": dict(sorted(self.countersigns.items())),
            "opened_at": self.opened_at,
            "root": None if self.root is None else b64e(self.root),
            "round": self.number,
            "size": self.size,
        }


@dataclass
class RoundsState:
    rounds: dict[str, list[Round]] = field(default_factory=dict)

    def all(self) -> list[Round]:
        return sorted((r for rs in self.rounds.values() for r in rs), key=lambda r: r.opened_at)

    def round_of(self, index: int, channel: str | None) -> Round | None:
        """The round the entry at ``index`` (in ``channel``) belongs to: the channel's
        own round if one was open, else the talks-wide one."""
        for scope in ((channel,) if channel is not None else ()) + (None,):
            for r in self.rounds.get(_scope(scope), ()):
                if r.contains(index):
                    return r
        return None


def _round_body(act: Act, ctx: ActContext, *, closing: bool) -> tuple[str | None, int, int, bytes]:
    f = Fields(dict(act.body), act.kind)
    channel = _channel_opt(f, ctx.roster)
    number = f.int("round", lo=1)
    size, root = 0, b""
    if closing:
        size = f.int("size", lo=1)
        root = f.bytes("root", length=32)
    f.done()
    return channel, number, size, root


class Rounds:
    name = "rounds"
    kinds = frozenset({"round.open", "round.close", "round.countersign"})

    def new_state(self) -> RoundsState:
        return RoundsState()

    def check(self, ctx: ActContext, act: Act) -> None:
        state: RoundsState = ctx.state
        closing = act.kind != "round.open"
        channel, number, size, root = _round_body(act, ctx, closing=closing)
        rounds = state.rounds.get(_scope(channel), [])
        last = rounds[-1] if rounds else None
        if act.kind == "round.open":
            _mediator(ctx.member, "open a round")
            if last is not None and last.closed_at is None:
                raise RoundError(f"round {last.number} of this scope is still open")
            if number != len(rounds) + 1:
                raise RoundError(f"the next round of this scope is {len(rounds) + 1}")
            return
        if not 1 <= number <= len(rounds):
            raise RoundError(f"no round {number} in this scope")
        r = rounds[number - 1]
        if act.kind == "round.close":
            _mediator(ctx.member, "close a round")
            if r.closed_at is not None:
                raise RoundError(f"round {number} is already closed")
            if size != ctx.index:
                raise UnknownCheckpointError(
                    "a round record binds the log just before it: size must be its index"
                )
            return
        delegation = head_of(ctx.roster, ctx.member)
        if delegation is None:
            raise NotEntitledError("only a delegation's head may countersign a round")
        if channel is not None and delegation not in ctx.roster.channel(channel).delegations:
            raise NotEntitledError("the delegation is not a party to this channel")
        closed = r.closed_at is not None and r.size == size and r.root is not None
        if not closed or r.root is None or not crypto.equal(r.root, root):
            raise RoundError("a countersignature must restate the closed round's size and root")
        if delegation in r.countersigns:
            raise RoundError("this delegation already countersigned the round")

    def apply(self, ctx: ActContext, act: Act) -> None:
        state: RoundsState = ctx.state
        closing = act.kind != "round.open"
        channel, number, size, root = _round_body(act, ctx, closing=closing)
        rounds = state.rounds.setdefault(_scope(channel), [])
        if act.kind == "round.open":
            rounds.append(Round(number=number, channel=channel, opened_at=ctx.index))
            return
        r = rounds[number - 1]
        if act.kind == "round.close":
            r.closed_at, r.size, r.root = ctx.index, size, root
        else:
            delegation = headed_by(ctx.roster, ctx.member, "countersign a round")
            r.countersigns[delegation] = ctx.index

    def check_draft(self, ctx: ActContext, header: DraftHeader) -> None:
        return None


def tree_claim(entry: object) -> tuple[int, bytes] | None:
    """For a ``round.close`` act, the (size, root) it claims the log had; ``None`` for
    anything else (a countersignature restates a close, which the ledger compares)."""
    if not isinstance(entry, Act) or entry.kind != "round.close":
        return None
    size, root = entry.body.get("size"), entry.body.get("root")
    if not isinstance(size, int) or not isinstance(root, str):
        return None
    try:
        return size, Fields({"root": root}, entry.kind).bytes("root", length=32)
    except ProtocolError:
        return None


def check_tree_claim(entry: object, size_now: int, root_at: Callable[[int], bytes]) -> None:
    """Raise :class:`UnknownCheckpointError` if ``entry``, about to be logged at index
    ``size_now``, is a round record whose root is not the log's root at ``size_now``.
    ``root_at(size_now)`` is the holder's own Merkle root of the log so far.  Any other
    size is the ledger's to refuse (it must equal the record's index)."""
    claim = tree_claim(entry)
    if claim is None or claim[0] != size_now:
        return
    if not crypto.equal(root_at(size_now), claim[1]):
        raise UnknownCheckpointError(f"the log's root at size {size_now} is not the one claimed")


# --- initials ---------------------------------------------------------------------------


@dataclass
class AgreedText:
    """A version every delegation of its channel initialled."""

    channel: str
    draft: bytes
    entry: LeafHash
    index: int
    agreed_at: int
    initials: dict[str, int]
    """Delegation id -> log index of its initial."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "agreed_at": self.agreed_at,
            "channel": self.channel,
            "draft": b64e(self.draft),
            "entry": b64e(self.entry),
            "index": self.index,
            "initials": dict(sorted(self.initials.items())),
        }


@dataclass
class InitialsState:
    initials: dict[LeafHash, dict[str, int]] = field(default_factory=dict)
    """Version leaf hash -> delegation id -> log index of its standing initial."""
    agreed: dict[LeafHash, AgreedText] = field(default_factory=dict)


def _initial_body(act: Act, ctx: ActContext) -> tuple[str, bytes, LeafHash, int, bytes]:
    f = Fields(dict(act.body), act.kind)
    channel = f.str("channel", max_len=64, pattern=ID_RE)
    draft = f.bytes("draft", length=16)
    entry = LeafHash(f.bytes("entry", length=32))
    index, commit = 0, b""
    if act.kind == "initial":
        index = f.int("index", lo=1)
        commit = f.bytes("commit", length=32)
    f.done()
    ctx.roster.channel(channel)
    return channel, draft, entry, index, commit


class Initials:
    name = "initials"
    kinds = frozenset({"initial", "initial.withdraw"})

    def new_state(self) -> InitialsState:
        return InitialsState()

    def check(self, ctx: ActContext, act: Act) -> None:
        state: InitialsState = ctx.state
        channel, draft, entry, index, commit = _initial_body(act, ctx)
        delegation = head_of(ctx.roster, ctx.member)
        if delegation is None or delegation not in ctx.roster.channel(channel).delegations:
            raise NotEntitledError("only the head of a delegation of the channel may initial")
        if entry in state.agreed:
            raise InitialError("this text is already agreed")
        standing = state.initials.get(entry, {})
        if act.kind == "initial.withdraw":
            if delegation not in standing:
                raise InitialError("this delegation has no initial on that version to withdraw")
            return
        header = _draft(ctx, entry, index)
        if header.channel != channel or header.draft != draft:
            raise InitialError("the version is not of that draft in that channel")
        if not crypto.equal(header.commit, commit):
            raise InitialError("the commitment is not the version's")
        versions = ctx.drafts.versions(draft) or {}
        newest = 0
        for leaf, version in versions.items():
            other = ctx.drafts.draft(leaf)
            if other is not None and other.index < ctx.index:
                newest = max(newest, version)
        if header.version != newest:
            raise InitialError("a later version of this draft exists; initial that one")
        if delegation in standing:
            raise InitialError("this delegation already initialled that version")

    def apply(self, ctx: ActContext, act: Act) -> None:
        state: InitialsState = ctx.state
        channel, draft, entry, index, _ = _initial_body(act, ctx)
        delegation = headed_by(ctx.roster, ctx.member, "initial a text")
        standing = state.initials.setdefault(entry, {})
        if act.kind == "initial.withdraw":
            del standing[delegation]
            return
        standing[delegation] = ctx.index
        parties = set(ctx.roster.channel(channel).delegations)
        if parties and parties <= standing.keys():
            state.agreed[entry] = AgreedText(
                channel=channel,
                draft=draft,
                entry=entry,
                index=index,
                agreed_at=ctx.index,
                initials={d: standing[d] for d in sorted(parties)},
            )

    def check_draft(self, ctx: ActContext, header: DraftHeader) -> None:
        return None


# --- calls for proposals ----------------------------------------------------------------


@dataclass
class Proposal:
    delegation: str
    member: str
    entry: LeafHash
    index: int
    commit: bytes
    committed_at: int
    revealed_at: int | None = None
    keys: dict[DeviceId, bytes] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "commit": b64e(self.commit),
            "committed_at": self.committed_at,
            "delegation": self.delegation,
            "entry": b64e(self.entry),
            "index": self.index,
            "member": self.member,
            "revealed_at": self.revealed_at,
        }


@dataclass
class Call:
    number: int
    channel: str
    delegations: tuple[str, ...]
    deadline: int
    opened_at: int
    released_at: int | None = None
    proposals: dict[str, Proposal] = field(default_factory=dict)
    """Delegation id -> its committed proposal."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "call": self.number,
            "channel": self.channel,
            "deadline": self.deadline,
            "delegations": list(self.delegations),
            "opened_at": self.opened_at,
            "proposals": [self.proposals[d].to_json() for d in sorted(self.proposals)],
            "released_at": self.released_at,
            "unrevealed": [p.delegation for p in self.unrevealed()],
        }

    def unrevealed(self) -> list[Proposal]:
        """Committed proposals not revealed although the call is released."""
        if self.released_at is None:
            return []
        return [p for _, p in sorted(self.proposals.items()) if p.revealed_at is None]


@dataclass
class CallsState:
    calls: list[Call] = field(default_factory=list)

    def unrevealed(self) -> list[tuple[Call, Proposal]]:
        return [(c, p) for c in self.calls for p in c.unrevealed()]

    def proposal_at(self, index: int) -> tuple[Call, Proposal] | None:
        """The call and proposal whose draft is at log ``index``."""
        for c in self.calls:
            for p in c.proposals.values():
                if p.index == index:
                    return c, p
        return None


def _call(state: CallsState, body: Fields) -> Call:
    number = body.int("call", lo=1)
    if number > len(state.calls):
        raise CallError(f"no call {number}")
    return state.calls[number - 1]


class Calls:
    name = "calls"
    kinds = frozenset({"call.open", "call.release", "proposal.commit", "proposal.reveal"})

    def new_state(self) -> CallsState:
        return CallsState()

    def check(self, ctx: ActContext, act: Act) -> None:
        state: CallsState = ctx.state
        f = Fields(dict(act.body), act.kind)
        if act.kind == "call.open":
            _mediator(ctx.member, "open a call for proposals")
            number = f.int("call", lo=1)
            channel = f.str("channel", max_len=64, pattern=ID_RE)
            names = f.list("delegations", max_items=MAX_DELEGATIONS)
            f.int("deadline", lo=1)
            f.done()
            if number != len(state.calls) + 1:
                raise CallError(f"the next call is {len(state.calls) + 1}")
            parties = ctx.roster.channel(channel).delegations
            if (
                not names
                or not all(isinstance(n, str) for n in names)
                or sorted(set(names)) != names
                or not set(names) <= set(parties)
            ):
                raise CallError("delegations must be sorted, distinct parties to the channel")
            return
        call = _call(state, f)
        if act.kind == "call.release":
            f.done()
            _mediator(ctx.member, "release a call")
            if call.released_at is not None:
                raise CallError("the call is already released")
            if act.time < call.deadline and set(call.proposals) != set(call.delegations):
                raise CallError("not every delegation has committed and the deadline is ahead")
            return
        entry = LeafHash(f.bytes("entry", length=32))
        if act.kind == "proposal.commit":
            index = f.int("index", lo=1)
            f.bytes("commit", length=32)
            f.done()
            if call.released_at is not None or act.time > call.deadline:
                raise LateProposalError("the call is released or its deadline has passed")
            delegation = ctx.member.delegation
            if delegation not in call.delegations:
                raise NotEntitledError("the signer's delegation is not named in the call")
            if delegation in call.proposals:
                raise CallError("this delegation already committed a proposal")
            leaf = ctx.drafts.leaf_at(index)
            draft = None if leaf is None else ctx.drafts.draft(leaf)
            if (
                draft is None
                or leaf != entry
                or draft.index >= ctx.index
                or draft.header.channel != call.channel
                or draft.sender_member != ctx.member.id
            ):
                raise CallError("the proposal is not the signer's own draft in the call's channel")
            return
        keys = keys_from_json(f.raw("keys"))
        f.done()
        found = [p for p in call.proposals.values() if p.entry == entry]
        if not found:
            raise CallError("no such committed proposal")
        proposal = found[0]
        if call.released_at is None:
            raise NotReleasedError("the call is not released yet")
        if proposal.member != ctx.member.id:
            raise NotEntitledError("only the proposal's sender may reveal it")
        if proposal.revealed_at is not None:
            raise CallError("the proposal is already revealed")
        draft = ctx.drafts.draft(proposal.entry)
        if draft is None or tuple(sorted(keys)) != draft.header.recipients:
            raise CallError("the reveal must wrap the key to every recipient of the proposal")

    def apply(self, ctx: ActContext, act: Act) -> None:
        state: CallsState = ctx.state
        body = act.body
        if act.kind == "call.open":
            names = body["delegations"]
            if not isinstance(names, list):
                raise CallError("delegations must be a list")
            state.calls.append(
                Call(
                    number=len(state.calls) + 1,
                    channel=str(body["channel"]),
                    delegations=tuple(str(n) for n in names),
                    deadline=int(body["deadline"]),
                    opened_at=ctx.index,
                )
            )
            return
        f = Fields(dict(body), act.kind)
        call = _call(state, f)
        if act.kind == "call.release":
            call.released_at = ctx.index
            return
        entry = LeafHash(f.bytes("entry", length=32))
        if act.kind == "proposal.commit":
            delegation = ctx.member.delegation
            if delegation is None:
                raise NotEntitledError("only a delegation's member may commit a proposal")
            call.proposals[delegation] = Proposal(
                delegation=delegation,
                member=ctx.member.id,
                entry=entry,
                index=f.int("index", lo=1),
                commit=f.bytes("commit", length=32),
                committed_at=ctx.index,
            )
            return
        keys = keys_from_json(f.raw("keys"))
        for p in call.proposals.values():
            if p.entry == entry:
                p.revealed_at = ctx.index
                p.keys = keys

    def check_draft(self, ctx: ActContext, header: DraftHeader) -> None:
        return None


# --- the sealed proposal itself ---------------------------------------------------------

SEALED_TYPE = "application/vnd.docket.sealed-proposal"
"""The media type of a sealed proposal's one file."""
_PROPOSAL_AD = b"docket/v1/proposal\x00"


def proposal_associated(talks: bytes, call: int) -> bytes:
    """The associated data sealing a proposal to call ``call`` of ``talks``."""
    return _PROPOSAL_AD + talks + call.to_bytes(8, "big")


def seal_proposal(
    key: bytes, plaintext: bytes, *, talks: bytes, call: int, rng: crypto.Rng
) -> bytes:
    """The sealed file of a proposal: ``plaintext`` under ``key`` (see the docstring)."""
    return crypto.seal_payload(key, plaintext, proposal_associated(talks, call), rng)


def open_proposal(key: bytes, sealed: bytes, *, talks: bytes, call: int, commit: bytes) -> bytes:
    """Open a revealed proposal and check it against the commitment logged for it
    (``decryption_failed`` or ``commitment_mismatch``)."""
    plaintext = crypto.open_payload(key, sealed, proposal_associated(talks, call))
    if not crypto.equal(crypto.commitment(key, plaintext), commit):
        raise CommitmentMismatchError("the revealed proposal is not what was committed")
    return plaintext


ROUNDS = Rounds()
INITIALS = Initials()
CALLS = Calls()
for _family in (ROUNDS, INITIALS, CALLS):
    acts.register(_family)
