"""The ledger: the meaning of the log, entry by entry.  One machine for everyone.

Theory of operation
-------------------
The log is a sequence of canonical JSON entries.  Entry 0 is the genesis; every later
entry is a roster change, a channel change, a draft header or a receipt.  The server
(before it accepts a write), every client (as it catches up) and the auditor (over the
whole log) run this same :class:`Ledger`, so they can never disagree on what is valid.

:meth:`Ledger.apply` takes the next entry's bytes and either applies it or raises a
:class:`ProtocolError` without changing anything.  Beyond each record's own signature:

Drafts
  1. the channel exists and the sender device's member is a channel member;
  2. the header names the roster state in force at its log position (``roster`` equals
     the roster head) and its recipient set is exactly the channel's devices there;
  3. the per-sender counter is exactly one more than that device's previous draft
     (a gap or repeat means something was dropped or replayed);
  4. the message id is new for that sender;
  5. lineage: version 1 starts a new draft id; version N > 1 names parents that are
     logged versions of the same draft in the same channel, and N is one more than the
     highest parent version.

Receipts
  1. the receipt's device is a current device and a recipient of the draft at
     ``index``, whose leaf hash, ciphertext hash and commitment it binds;
  2. per device and draft: at most one ``received`` or ``rejected``, and at most one
     ``acknowledged``, only after ``received``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from protocol import crypto
from protocol.encoding import JSONValue, parse
from protocol.envelope import DraftHeader, verify_header
from protocol.errors import (
    CounterError,
    DuplicateError,
    LineageError,
    MalformedError,
    NotAMemberError,
    ReceiptMismatchError,
    SequenceError,
    StaleRosterError,
    WrongTalksError,
)
from protocol.genesis import Genesis
from protocol.keys import DeviceId
from protocol.merkle import LeafHash, leaf_hash
from protocol.receipt import ACKNOWLEDGED, RECEIVED, REJECTED, Receipt, verify_receipt
from protocol.roster import Roster, RosterChange

Entry = Genesis | RosterChange | DraftHeader | Receipt
MAX_ENTRY = 2 * 1024 * 1024


def parse_entry(data: bytes) -> Entry:
    """Parse one log entry by its type tag (signatures are checked by :class:`Ledger`)."""
    obj = parse(data, max_size=MAX_ENTRY)
    t = obj.get("t") if isinstance(obj, dict) else None
    if t == "genesis":
        return Genesis.from_json(obj)
    if t in ("roster", "channel"):
        return RosterChange.from_json(obj)
    if t == "draft":
        return DraftHeader.from_json(obj)
    if t == "receipt":
        return Receipt.from_json(obj)
    raise MalformedError("unknown entry type")


def entry_kind(entry: Entry) -> str:
    if isinstance(entry, Genesis):
        return "genesis"
    if isinstance(entry, RosterChange):
        return entry.record_type
    if isinstance(entry, DraftHeader):
        return "draft"
    return "receipt"


@dataclass(slots=True, kw_only=True)
class DraftState:
    """A logged draft and the receipts logged for it so far."""

    index: int
    header: DraftHeader
    sender_member: str
    received: dict[DeviceId, Receipt] = field(default_factory=dict)
    acknowledged: dict[DeviceId, Receipt] = field(default_factory=dict)
    rejected: dict[DeviceId, Receipt] = field(default_factory=dict)
    receipt_indices: list[int] = field(default_factory=list)

    def missing(self, kind: str) -> list[DeviceId]:
        """Recipients other than the sending device without a receipt of ``kind``
        (for ``received``, a rejection counts as an answer)."""
        have = self.acknowledged if kind == ACKNOWLEDGED else {**self.received, **self.rejected}
        return [d for d in self.header.recipients if d not in have and d != self.header.sender]


class Ledger:
    """Applies log entries in order, verifying everything (see module docstring)."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.talks = genesis.talks_id
        self.roster = Roster(genesis)
        self.size = 1
        self.leaves: list[LeafHash] | None = None
        self.drafts: dict[LeafHash, DraftState] = {}
        self.draft_at: dict[int, LeafHash] = {}
        self.versions: dict[bytes, dict[LeafHash, int]] = {}
        self.draft_channel: dict[bytes, str] = {}
        self.counters: dict[DeviceId, int] = {}
        self.msg_ids: dict[tuple[DeviceId, bytes], LeafHash] = {}

    @classmethod
    def from_genesis_bytes(cls, data: bytes) -> Ledger:
        entry = parse_entry(data)
        if not isinstance(entry, Genesis):
            raise SequenceError("entry 0 must be the genesis")
        return cls(entry)

    # -- checks (no mutation) ------------------------------------------------------

    def check(self, entry: Entry) -> None:
        """Raise if ``entry`` cannot be the next entry; change nothing."""
        if isinstance(entry, Genesis):
            raise SequenceError("only entry 0 may be a genesis")
        if isinstance(entry, RosterChange):
            self.roster.check(entry)
        elif isinstance(entry, DraftHeader):
            self._check_draft(entry)
        else:
            self._check_receipt(entry)

    def _check_draft(self, h: DraftHeader) -> None:
        if not crypto.equal(h.talks, self.talks):
            raise WrongTalksError("draft belongs to other talks")
        sender_member, sender_key = self.roster.device(h.sender)
        channel = self.roster.channel(h.channel)
        if not self.roster.is_channel_member(channel.id, sender_member.id):
            raise NotAMemberError("sender is not a member of the channel")
        if not crypto.equal(h.roster, self.roster.head):
            raise StaleRosterError("draft was sealed for an older roster state")
        verify_header(
            h,
            talks=self.talks,
            sender=sender_key,
            recipients=self.roster.channel_devices(channel.id),
        )
        expected = self.counters.get(h.sender, 0) + 1
        if (h.sender, h.msg) in self.msg_ids:
            raise DuplicateError("message id already used by this sender")
        if h.counter != expected:
            raise CounterError(f"sender counter is {h.counter}, expected {expected}")
        versions = self.versions.get(h.draft)
        if h.version == 1:
            if versions is not None:
                raise LineageError("draft id already in use")
            return
        if versions is None or self.draft_channel[h.draft] != h.channel:
            raise LineageError("parents are not versions of this draft in this channel")
        parent_versions = []
        for parent in h.parents:
            if parent not in versions:
                raise LineageError("a parent is not a logged version of this draft")
            parent_versions.append(versions[parent])
        if h.version != max(parent_versions) + 1:
            raise LineageError("version must be one more than its newest parent")

    def _check_receipt(self, r: Receipt) -> DraftState:
        if not crypto.equal(r.talks, self.talks):
            raise WrongTalksError("receipt belongs to other talks")
        _, device_key = self.roster.device(r.device)
        leaf = self.draft_at.get(r.index)
        if leaf is None or not crypto.equal(leaf, r.entry):
            raise ReceiptMismatchError("receipt names no draft at that index")
        draft = self.drafts[leaf]
        verify_receipt(r, signer=device_key, header=draft.header, index=draft.index)
        if r.kind in (RECEIVED, REJECTED):
            if r.device in draft.received or r.device in draft.rejected:
                raise DuplicateError("this device already receipted the draft")
        elif r.device in draft.acknowledged:
            raise DuplicateError("this device already acknowledged the draft")
        elif r.device not in draft.received:
            raise ReceiptMismatchError("acknowledged before received")
        return draft

    # -- apply ------------------------------------------------------------------------

    def apply(self, data: bytes) -> Entry:
        """Verify and apply the entry at index :attr:`size`.  Atomic: all or nothing."""
        entry = parse_entry(data)
        self.apply_entry(entry)
        return entry

    def apply_entry(self, entry: Entry) -> None:
        index = self.size
        if isinstance(entry, Genesis):
            raise SequenceError("only entry 0 may be a genesis")
        if isinstance(entry, RosterChange):
            self.roster.apply(entry)
        elif isinstance(entry, DraftHeader):
            self._check_draft(entry)
            member, _ = self.roster.device(entry.sender)
            leaf = entry.leaf
            self.drafts[leaf] = DraftState(index=index, header=entry, sender_member=member.id)
            self.draft_at[index] = leaf
            self.versions.setdefault(entry.draft, {})[leaf] = entry.version
            self.draft_channel.setdefault(entry.draft, entry.channel)
            self.counters[entry.sender] = entry.counter
            self.msg_ids[(entry.sender, entry.msg)] = leaf
        else:
            draft = self._check_receipt(entry)
            target = {
                RECEIVED: draft.received,
                ACKNOWLEDGED: draft.acknowledged,
                REJECTED: draft.rejected,
            }[entry.kind]
            target[entry.device] = entry
            draft.receipt_indices.append(index)
        self.size += 1

    # -- queries ----------------------------------------------------------------------

    def find_message(self, sender: DeviceId, msg: bytes) -> LeafHash | None:
        return self.msg_ids.get((sender, msg))

    def drafts_in(self, channel: str) -> Iterator[DraftState]:
        for state in self.drafts.values():
            if state.header.channel == channel:
                yield state

    def lineage(self, draft_id: bytes) -> list[DraftState]:
        versions = self.versions.get(draft_id, {})
        return sorted((self.drafts[leaf] for leaf in versions), key=lambda s: s.index)


def entry_leaf(data: bytes) -> LeafHash:
    return leaf_hash(data)


def entry_json(entry: Entry) -> dict[str, JSONValue]:
    return entry.to_json()
