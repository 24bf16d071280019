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

Pre-verified signatures (auditors)
  Ed25519 verification dominates the cost of replaying a long log, so the auditor
  verifies draft and receipt signatures in worker processes (:func:`signature_claim` and
  :func:`signature_verifies`, or :func:`preverify` from the bytes) and passes the key
  each one verified under to :meth:`Ledger.apply_entry` as ``verified_key``.  The
  ledger then skips only its own Ed25519 check, and only when that key is byte for byte
  the key the roster holds for the signing device at this point of the log; any other
  key, or none (the default, what the server and clients use), means the signature is
  verified here as always.  Every other rule is checked regardless, and roster and
  channel changes are always verified by :meth:`Roster.apply`.

  An auditor that reports an entry as invalid and carries on calls
  :meth:`Ledger.skip_entry` so later entries keep their log indices.

Indexes (what grows with the log)
  Everything the ledger keeps per draft or receipt (the :class:`DraftState` of every
  draft, which draft sits at which index, message ids, lineage versions) lives behind a
  :class:`LedgerIndex`.  Clients and the auditor use :class:`MemoryLedgerIndex` (plain
  dicts, the default); the server plugs in one that answers from the tables it already
  writes, so its memory does not grow with the log.  An index only stores and answers:
  every rule above is decided here, identically, whichever index is plugged in.  The
  roster and the per-sender counters are small and stay in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from protocol import crypto
from protocol.acts import Act, ActContext, ActFamily, families, family_of
from protocol.draftindex import (
    DraftState,
    LedgerIndex,
    MemoryLedgerIndex,
    record_receipt,
)
from protocol.encoding import JSONValue, b64e, parse
from protocol.envelope import DraftHeader, verify_header
from protocol.errors import (
    CounterError,
    DuplicateError,
    LineageError,
    MalformedError,
    NotAMemberError,
    ProtocolError,
    ReceiptMismatchError,
    SequenceError,
    StaleRosterError,
    WrongTalksError,
)
from protocol.genesis import Genesis
from protocol.grants import FAMILY as _GRANTS  # noqa: F401 - registers history grants
from protocol.keys import DeviceId, DevicePublic
from protocol.merkle import LeafHash, leaf_hash
from protocol.negotiation import CALLS as _CALLS  # noqa: F401 - registers its families
from protocol.receipt import RECEIVED, REJECTED, Receipt, verify_receipt
from protocol.records import signing_bytes, verify_record, verify_record_bytes
from protocol.roster import Member, Roster, RosterChange

__all__ = [
    "Act",
    "DraftState",
    "Entry",
    "Ledger",
    "LedgerIndex",
    "MemoryLedgerIndex",
    "entry_kind",
    "parse_entry",
    "record_receipt",
]

Entry = Genesis | RosterChange | DraftHeader | Receipt | Act
MAX_ENTRY = 2 * 1024 * 1024


def parse_entry(data: bytes) -> Entry:
    """Parse one log entry by its type tag (signatures are checked by :class:`Ledger`)."""
    return _entry_from_parsed(parse(data, max_size=MAX_ENTRY), bytes(data))


def entry_from_json(obj: JSONValue) -> Entry:
    """Build the entry for an already parsed log entry object (see :func:`parse_entry`)."""
    return _entry_from_parsed(obj, None)


def _entry_from_parsed(obj: JSONValue, raw: bytes | None) -> Entry:
    """``raw`` is None or the bytes ``obj`` was parsed from (so its canonical encoding):
    drafts and receipts, most of any log, then skip encoding ``obj`` again."""
    t = obj.get("t") if isinstance(obj, dict) else None
    if t == "genesis":
        return Genesis.from_json(obj)
    if t in ("roster", "channel"):
        return RosterChange.from_json(obj)
    if t == "draft":
        return DraftHeader._from_parsed(obj, raw)
    if t == "receipt":
        return Receipt._from_parsed(obj, raw)
    if t == "act":
        return Act.from_json(obj)
    raise MalformedError("unknown entry type")


def parse_entry_object(data: bytes) -> tuple[Entry, dict[str, JSONValue]]:
    """:func:`parse_entry`, also returning the parsed JSON object, on which
    :func:`signature_verifies` can check the entry's signature without parsing the bytes
    a second time (``entry.to_json()`` would)."""
    obj = parse(data, max_size=MAX_ENTRY)
    entry = _entry_from_parsed(obj, bytes(data))
    return entry, obj


def signature_claim(entry: Entry) -> tuple[DeviceId, bytes] | None:
    """For a draft, a receipt or an act, the device whose key must have signed it and
    the signature context; ``None`` for other entries (the roster machine verifies
    those)."""
    if isinstance(entry, DraftHeader):
        return entry.sender, crypto.CTX_DRAFT
    if isinstance(entry, Receipt):
        return entry.device, crypto.CTX_RECEIPT
    if isinstance(entry, Act):
        return entry.device, crypto.CTX_ACT
    return None


def signature_verifies(key: bytes, context: bytes, obj: dict[str, JSONValue]) -> bool:
    """Whether the parsed record ``obj`` carries a valid signature by ``key`` under
    ``context``: the check :func:`~protocol.envelope.verify_header` and
    :func:`~protocol.receipt.verify_receipt` make.  Pure: auditor workers run it, and a
    ``True`` lets the key be passed to :meth:`Ledger.apply_entry` as ``verified_key``.
    """
    try:
        verify_record(key, context, obj)
    except ProtocolError:
        return False
    return True


def raw_signature_verifies(key: bytes, context: bytes, raw: bytes, sig: bytes) -> bool:
    """:func:`signature_verifies` for a record given as the bytes it was parsed from
    (``raw``, which :func:`~protocol.encoding.parse` accepted, so canonical) and its
    decoded ``sig``, without the parsed object.

    The signed bytes, ``canonical(record minus "sig")``, are ``raw`` with its top-level
    member ``,"sig":"<base64url>"`` cut out: canonical JSON joins an object's members,
    sorted, with commas, and base64url needs no escaping.  That member text is found
    exactly once or not used: in canonical JSON every unescaped quote is structural, so
    the text can only be a member of some object, and a record whose ``sig`` is not
    preceded by another member, or whose bytes hold the text twice, falls back to
    re-parsing.  (This spares the auditor's workers a JSON encoding per entry.)
    """
    member = b',"sig":"' + b64e(sig).encode("ascii") + b'"'
    try:
        if raw.count(member) == 1:
            message = raw.replace(member, b"", 1)
        else:
            message = signing_bytes(parse(raw, max_size=MAX_ENTRY))
        crypto.verify(key, context, message, sig)
    except ProtocolError:
        return False
    return True


def preverify(data: bytes, keys: Mapping[DeviceId, bytes]) -> tuple[Entry, LeafHash, bytes | None]:
    """Parse one entry and, if it is a draft or receipt, verify its signature in advance.

    ``keys`` maps device ids to Ed25519 public keys (any superset of the roster's: a
    device id commits to its keys, so the key for an id never changes).  Returns the
    entry, its leaf hash and the key its signature verified under, or ``None`` when the
    device is not in ``keys``, the signature does not verify or the entry is of another
    type; :meth:`Ledger.apply_entry` then verifies it itself and reports the failure in
    its usual order.  Raises :class:`ProtocolError` only when the bytes do not parse.
    """
    entry, obj = parse_entry_object(data)
    leaf = leaf_hash(data)
    claim = signature_claim(entry)
    if claim is None:
        return entry, leaf, None
    key = keys.get(claim[0])
    if key is None or not signature_verifies(key, claim[1], obj):
        return entry, leaf, None
    return entry, leaf, key


def entry_kind(entry: Entry) -> str:
    if isinstance(entry, Genesis):
        return "genesis"
    if isinstance(entry, RosterChange):
        return entry.record_type
    if isinstance(entry, DraftHeader):
        return "draft"
    if isinstance(entry, Act):
        return "act"
    return "receipt"


class Ledger:
    """Applies log entries in order, verifying everything (see module docstring)."""

    def __init__(self, genesis: Genesis, *, index: LedgerIndex | None = None) -> None:
        self.genesis = genesis
        self.talks = genesis.talks_id
        self.roster = Roster(genesis)
        self.size = 1
        self.index: LedgerIndex = MemoryLedgerIndex() if index is None else index
        self.counters: dict[DeviceId, int] = {}
        # channel id -> (member ids, sorted device ids), valid for one roster head
        self._views: dict[str, tuple[frozenset[str], tuple[DeviceId, ...]]] = {}
        self._views_head: LeafHash = self.roster.head
        # device id -> (member, keys), for the same roster head
        self._devices: dict[DeviceId, tuple[Member, DevicePublic]] = {}
        # act family name -> its state (see protocol.acts), created on first use
        self.act_states: dict[str, Any] = {}

    @classmethod
    def resume(
        cls,
        genesis: Genesis,
        *,
        changes: Iterable[tuple[int, RosterChange | Act]],
        size: int,
        counters: Mapping[DeviceId, int],
        index: LedgerIndex,
    ) -> Ledger:
        """A ledger at ``size`` entries rebuilt from a trusted store without replaying
        drafts and receipts: the roster and channel changes and the acts are re-applied
        (and so re-verified) at their indices, in log order; the per-sender counters and
        ``index`` come from the store.  For a server restarting on its own disk (see
        :mod:`server.services.recovery` for why that is sound there)."""
        ledger = cls(genesis, index=index)
        for at, change in changes:
            if not ledger.size <= at < size:
                raise SequenceError("roster changes and acts out of order")
            ledger.size = at
            ledger.apply_entry(change)
        ledger.size = size
        ledger.counters.update(counters)
        return ledger

    # -- the default index's maps (tests and tools that look inside) -----------------

    @property
    def drafts(self) -> Mapping[LeafHash, DraftState]:
        """Every logged draft by leaf hash."""
        return self.index.drafts_map()

    def _memory(self) -> MemoryLedgerIndex:
        if not isinstance(self.index, MemoryLedgerIndex):
            raise TypeError("only the in-memory index exposes its maps")
        return self.index

    @property
    def draft_at(self) -> Mapping[int, LeafHash]:
        return self._memory().draft_at

    @property
    def versions(self) -> Mapping[bytes, Mapping[LeafHash, int]]:
        return self._memory().versions_of

    @property
    def draft_channel(self) -> Mapping[bytes, str]:
        return self._memory().draft_channel

    @property
    def msg_ids(self) -> Mapping[tuple[DeviceId, bytes], LeafHash]:
        return self._memory().msg_ids

    @classmethod
    def from_genesis_bytes(cls, data: bytes) -> Ledger:
        entry = parse_entry(data)
        if not isinstance(entry, Genesis):
            raise SequenceError("entry 0 must be the genesis")
        return cls(entry)

    # -- checks (no mutation) ------------------------------------------------------

    def _fresh(self) -> None:
        """Drop what is cached for one roster state once the roster head has moved
        (every roster or channel change moves it)."""
        if self._views_head != self.roster.head:
            self._views.clear()
            self._devices.clear()
            self._views_head = self.roster.head

    def _device(self, device_id: DeviceId) -> tuple[Member, DevicePublic]:
        """:meth:`Roster.device` (raising as it does), cached until the roster head moves."""
        if self._views_head != self.roster.head:  # self._fresh(), inline
            self._fresh()
        known = self._devices.get(device_id)
        if known is None:
            known = self._devices[device_id] = self.roster.device(device_id)
        return known

    def check(self, entry: Entry) -> None:
        """Raise if ``entry`` cannot be the next entry; change nothing."""
        if isinstance(entry, Genesis):
            raise SequenceError("only entry 0 may be a genesis")
        if isinstance(entry, RosterChange):
            self.roster.check(entry, index=self.size)
        elif isinstance(entry, DraftHeader):
            self._check_draft(entry)
        elif isinstance(entry, Act):
            self._check_act(entry)
        else:
            self._check_receipt(entry)

    def _channel_view(self, channel_id: str) -> tuple[frozenset[str], tuple[DeviceId, ...]]:
        """Members and sorted devices of a channel at the current roster state (cached
        until the roster head moves: every roster or channel change moves it)."""
        self._fresh()
        view = self._views.get(channel_id)
        if view is None:
            members = frozenset(m.id for m in self.roster.channel_members(channel_id))
            devices = tuple(self.roster.channel_devices(channel_id))
            view = self._views[channel_id] = (members, devices)
        return view

    def _check_draft(self, h: DraftHeader, verified_key: bytes | None = None) -> None:
        self._check_draft_rules(h, verified_key)
        for family in families():
            member, device = self._device(h.sender)
            family.check_draft(self._act_context(family, member, device), h)

    def _check_draft_rules(self, h: DraftHeader, verified_key: bytes | None) -> None:
        if not crypto.equal(h.talks, self.talks):
            raise WrongTalksError("draft belongs to other talks")
        sender_member, sender_key = self._device(h.sender)
        channel = self.roster.channel(h.channel)
        members, devices = self._channel_view(channel.id)
        if sender_member.id not in members:
            raise NotAMemberError("sender is not a member of the channel")
        if not crypto.equal(h.roster, self.roster.head):
            raise StaleRosterError("draft was sealed for an older roster state")
        verify_header(
            h,
            talks=self.talks,
            sender=sender_key,
            recipients=devices,
            check_signature=verified_key != sender_key.sign_pk,
        )
        expected = self.counters.get(h.sender, 0) + 1
        if self.index.message(h.sender, h.msg) is not None:
            raise DuplicateError("message id already used by this sender")
        if h.counter != expected:
            raise CounterError(f"sender counter is {h.counter}, expected {expected}")
        versions = self.index.versions(h.draft)
        if h.version == 1:
            if versions is not None:
                raise LineageError("draft id already in use")
            return
        if versions is None or self.index.channel_of(h.draft) != h.channel:
            raise LineageError("parents are not versions of this draft in this channel")
        parent_versions = []
        for parent in h.parents:
            if parent not in versions:
                raise LineageError("a parent is not a logged version of this draft")
            parent_versions.append(versions[parent])
        if h.version != max(parent_versions) + 1:
            raise LineageError("version must be one more than its newest parent")

    def _check_receipt(self, r: Receipt, verified_key: bytes | None = None) -> DraftState:
        if not crypto.equal(r.talks, self.talks):
            raise WrongTalksError("receipt belongs to other talks")
        _, device_key = self._device(r.device)
        leaf = self.index.leaf_at(r.index)
        draft = None if leaf is None else self.index.draft(leaf)
        if leaf is None or draft is None or not crypto.equal(leaf, r.entry):
            raise ReceiptMismatchError("receipt names no draft at that index")
        verify_receipt(
            r,
            signer=device_key,
            header=draft.header,
            index=draft.index,
            check_signature=verified_key != device_key.sign_pk,
        )
        if r.kind in (RECEIVED, REJECTED):
            if r.device in draft.received or r.device in draft.rejected:
                raise DuplicateError("this device already receipted the draft")
        elif r.device in draft.acknowledged:
            raise DuplicateError("this device already acknowledged the draft")
        elif r.device not in draft.received:
            raise ReceiptMismatchError("acknowledged before received")
        return draft

    def _act_context(self, family: ActFamily, member: Member, device: DevicePublic) -> ActContext:
        return ActContext(
            index=self.size,
            talks=self.talks,
            roster=self.roster,
            member=member,
            device=device,
            drafts=self.index,
            state=self.act_state(family.name),
        )

    def _check_act(
        self, act: Act, verified_key: bytes | None = None
    ) -> tuple[ActFamily, ActContext]:
        """The rules every act follows, then its family's (see :mod:`protocol.acts`)."""
        if not crypto.equal(act.talks, self.talks):
            raise WrongTalksError("act belongs to other talks")
        member, device = self._device(act.device)
        if not crypto.equal(act.roster, self.roster.head):
            raise StaleRosterError("act was signed for an older roster state")
        if verified_key != device.sign_pk:
            verify_record_bytes(device.sign_pk, crypto.CTX_ACT, act.raw, act.sig)
        family = family_of(act.kind)
        ctx = self._act_context(family, member, device)
        family.check(ctx, act)
        return family, ctx

    def act_state(self, name: str) -> Any:
        """The state of the act family ``name`` (its :meth:`~ActFamily.new_state` until
        its first act)."""
        state = self.act_states.get(name)
        if state is None:
            for family in families():
                if family.name == name:
                    state = self.act_states[name] = family.new_state()
                    break
            else:
                raise KeyError(name)
        return state

    # -- apply ------------------------------------------------------------------------

    def apply(self, data: bytes) -> Entry:
        """Verify and apply the entry at index :attr:`size`.  Atomic: all or nothing."""
        entry = parse_entry(data)
        self.apply_entry(entry)
        return entry

    def apply_entry(self, entry: Entry, *, verified_key: bytes | None = None) -> None:
        """Verify and apply a parsed entry at index :attr:`size`.  Atomic.

        ``verified_key`` is for auditors only (see the module docstring): the Ed25519 key
        under which the caller has already verified this draft's or receipt's signature
        (:func:`signature_verifies`).  The signature check is skipped only if it is exactly the
        roster's key for the signing device; leave it ``None`` to verify everything.
        """
        index = self.size
        if type(entry) is Receipt:  # most of a log: straight to it (same branch as below)
            self.index.add_receipt(self._check_receipt(entry, verified_key), entry, index)
            self.size += 1
            return
        if isinstance(entry, Genesis):
            raise SequenceError("only entry 0 may be a genesis")
        if isinstance(entry, RosterChange):
            self.roster.apply(entry, index=index)
        elif isinstance(entry, DraftHeader):
            self._check_draft(entry, verified_key)
            member, _ = self._device(entry.sender)
            self.index.add_draft(DraftState(index=index, header=entry, sender_member=member.id))
            self.counters[entry.sender] = entry.counter
        elif isinstance(entry, Act):
            family, ctx = self._check_act(entry, verified_key)
            family.apply(ctx, entry)
        else:
            draft = self._check_receipt(entry, verified_key)
            self.index.add_receipt(draft, entry, index)
        self.size += 1

    def skip_entry(self) -> None:
        """Step past the entry at index :attr:`size` without applying it.

        For auditors, who report an invalid entry and go on checking the rest of the log
        (later entries keep their indices).  A server never logs an entry the ledger
        refused, so it never calls this.
        """
        self.size += 1

    # -- queries ----------------------------------------------------------------------

    def find_message(self, sender: DeviceId, msg: bytes) -> LeafHash | None:
        return self.index.message(sender, msg)

    def drafts_in(self, channel: str) -> Iterator[DraftState]:
        for state in self.drafts.values():
            if state.header.channel == channel:
                yield state

    def lineage(self, draft_id: bytes) -> list[DraftState]:
        versions = self.index.versions(draft_id) or {}
        states = (self.index.draft(leaf) for leaf in versions)
        return sorted((s for s in states if s is not None), key=lambda s: s.index)


def entry_leaf(data: bytes) -> LeafHash:
    return leaf_hash(data)


def entry_json(entry: Entry) -> dict[str, JSONValue]:
    return entry.to_json()
