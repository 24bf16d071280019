"""A small in-memory talks builder for protocol tests (no server, no I/O).

:class:`Talks` plays every part at once, the way h11's tests drive two connections
against each other: the mediator founds the talks, heads enrol their delegations, members
seal drafts, recipients open them and sign receipts, and every entry goes through the
one :class:`~protocol.ledger.Ledger` (the server's and auditor's rules) into a
:class:`~protocol.merkle.MemoryTree`.  A log key signs checkpoints and the witnesses the
roster names (mediator, every delegation head, external witnesses) cosign them.

Everything is deterministic: keys, nonces and ephemeral keys come from
:func:`tests.helpers.make_rng` with the seed given to :class:`Talks`, and time is a counter
advanced by :meth:`Talks.tick`.  The known-answer generator ``tests/vectors/gen_records.py``
builds on this, so changing the order of ``rng`` calls here changes ``records.json``
(``test_vectors_records`` says so, and the generator rewrites it).

The builder deliberately stays thin: every record is made by the protocol's own
``make_*``/``seal``/``found`` functions and accepted only if the ledger accepts it, so a
test that wants a *bad* record asks for it unapplied (``apply=False``) or edits the JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from protocol import checkpoint as cp
from protocol import crypto
from protocol.acts import Act, make_act
from protocol.encoding import JSONValue, b64d, b64e, parse
from protocol.envelope import (
    OpenedDraft,
    Payload,
    SealedDraft,
    open_draft,
    seal,
)
from protocol.errors import ProtocolError
from protocol.evidence import EvidenceBundle, Proven
from protocol.genesis import ExternalWitness, Genesis, WitnessPolicy, found
from protocol.keys import DeviceId, DeviceKeys, DevicePublic
from protocol.ledger import Ledger
from protocol.merkle import LeafHash, MemoryTree
from protocol.receipt import RECEIVED, Promise, Receipt, make_promise, make_receipt
from protocol.records import DraftId, MessageId, TalksId, sign_record
from protocol.roster import ROLE_MEDIATOR, ChangeArgs, Roster, RosterChange, make_change
from tests.helpers import make_rng

ORIGIN = "docket.test/talks"
START_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z


@dataclass(slots=True)
class Person:
    """A member as the builder knows them: id, role, delegation and private device keys."""

    id: str
    role: str
    delegation: str | None
    devices: list[DeviceKeys] = field(default_factory=list)

    @property
    def device(self) -> DeviceKeys:
        """The member's first current device (the one that signs by default)."""
        return self.devices[0]


@dataclass(frozen=True, slots=True)
class Sent:
    """A draft the builder sealed and logged."""

    index: int
    sealed: SealedDraft
    payload: Payload
    sender: DeviceKeys

    @property
    def leaf(self) -> LeafHash:
        return self.sealed.header.leaf


class Talks:
    """Founded talks with an in-memory log; see the module docstring."""

    def __init__(
        self,
        seed: str = "talks",
        *,
        quorum: int = 64,
        external_witnesses: int = 0,
        mediator: str = "med",
        origin: str = ORIGIN,
        title: str = "Talks on the northern corridor",
    ) -> None:
        self.seed = seed
        self.rng = make_rng(seed)
        self.time = START_TIME
        self.log_key = crypto.SigningKey.generate(self.rng)
        self.signers: dict[bytes, crypto.SigningKey] = {}
        self.keys: dict[DeviceId, DeviceKeys] = {}
        med_keys = self.new_device()
        self.external: list[tuple[str, crypto.SigningKey]] = []
        for i in range(external_witnesses):
            key = crypto.SigningKey.generate(self.rng)
            self.signers[key.public_bytes()] = key
            self.external.append((f"witness.example/{i}", key))
        policy = WitnessPolicy(
            quorum=quorum,
            external=tuple(ExternalWitness(name=n, key=k.public_bytes()) for n, k in self.external),
        )
        self.genesis: Genesis = found(
            mediator_keys=med_keys,
            mediator=mediator,
            mediator_name="The Mediator",
            origin=origin,
            title=title,
            log_key=self.log_key.public_bytes(),
            witness=policy,
            time=self.time,
        )
        self.ledger = Ledger(self.genesis)
        self.tree = MemoryTree()
        self.entries: list[bytes] = []
        self.promises: list[Promise] = []
        self._log(self.genesis.to_bytes())
        self.people: dict[str, Person] = {
            mediator: Person(mediator, ROLE_MEDIATOR, None, [med_keys]),
        }
        self.sent: dict[int, Sent] = {}
        self.counters: dict[DeviceId, int] = {}

    # -- basics ---------------------------------------------------------------------

    @property
    def roster(self) -> Roster:
        return self.ledger.roster

    @property
    def talks_id(self) -> bytes:
        return self.genesis.talks_id

    @property
    def mediator(self) -> Person:
        return self.people[self.genesis.mediator]

    def tick(self) -> int:
        """Advance the clock by one second and return it."""
        self.time += 1
        return self.time

    def new_device(self) -> DeviceKeys:
        """Fresh device keys from the builder's rng, remembered for signing later."""
        keys = DeviceKeys.generate(self.rng)
        self.keys[keys.device_id] = keys
        self.signers[keys.public.sign_pk] = keys.signing
        return keys

    def _log(self, data: bytes) -> int:
        index = self.tree.append(data)
        self.entries.append(data)
        self.promises.append(
            make_promise(
                key=self.log_key,
                origin=self.genesis.origin,
                index=index,
                leaf=self.tree.leaf(index),
                time=self.time,
            )
        )
        return index

    def append(self, data: bytes) -> int:
        """Apply ``data`` through the ledger (raising if it refuses) and log it."""
        self.ledger.apply(data)
        return self._log(data)

    def fresh_ledger(self, upto: int | None = None) -> Ledger:
        """A new ledger replaying the first ``upto`` log entries (default: all)."""
        entries = self.entries if upto is None else self.entries[:upto]
        ledger = Ledger.from_genesis_bytes(entries[0])
        for data in entries[1:]:
            ledger.apply(data)
        return ledger

    # -- roster -----------------------------------------------------------------------

    def change(
        self,
        author: DeviceKeys,
        op: str,
        args: ChangeArgs,
        *,
        apply: bool = True,
        roster: Roster | None = None,
    ) -> RosterChange:
        """Sign a change on the current roster (or ``roster``) and, if asked, log it."""
        change = make_change(
            author=author, roster=roster or self.roster, op=op, args=args, time=self.tick()
        )
        if apply:
            self.append(change.to_bytes())
        return change

    # -- acts -------------------------------------------------------------------------

    def act(
        self,
        by: DeviceKeys,
        kind: str,
        body: dict[str, JSONValue],
        *,
        apply: bool = True,
        roster: Roster | None = None,
    ) -> Act:
        """Sign an act on the current roster head (or ``roster``'s) and, if asked, log it."""
        act = make_act(
            kind=kind,
            body=body,
            device=by,
            talks=TalksId(self.talks_id),
            roster=(roster or self.roster).head,
            time=self.tick(),
        )
        if apply:
            self.append(act.to_bytes())
        return act

    def _devices(self, n: int) -> list[DeviceKeys]:
        return [self.new_device() for _ in range(n)]

    def create_delegation(self, delegation: str, head: str, *, devices: int = 1) -> Person:
        keys = self._devices(devices)
        self.change(
            self.mediator.device,
            "delegation.create",
            ChangeArgs(
                delegation=delegation,
                name=f"Delegation {delegation}",
                member=head,
                member_name=f"Head of {delegation}",
                devices=tuple(k.public for k in keys),
            ),
        )
        person = Person(head, "head", delegation, keys)
        self.people[head] = person
        return person

    def head_of(self, delegation: str) -> Person:
        return self.people[self.roster.delegations[delegation].head]

    def enrol(
        self, delegation: str, member: str, *, devices: int = 1, by: DeviceKeys | None = None
    ) -> Person:
        keys = self._devices(devices)
        self.change(
            by or self.head_of(delegation).device,
            "member.enrol",
            ChangeArgs(
                delegation=delegation,
                member=member,
                member_name=f"Member {member}",
                devices=tuple(k.public for k in keys),
            ),
        )
        person = Person(member, "member", delegation, keys)
        self.people[member] = person
        return person

    def enrol_staff(self, member: str, role: str = "staff", *, devices: int = 1) -> Person:
        keys = self._devices(devices)
        self.change(
            self.mediator.device,
            "staff.enrol",
            ChangeArgs(
                member=member,
                member_name=f"Staff {member}",
                role=role,
                devices=tuple(k.public for k in keys),
            ),
        )
        person = Person(member, role, None, keys)
        self.people[member] = person
        return person

    def owner(self, member: str) -> DeviceKeys:
        """A device with authority over ``member``'s roster entry."""
        person = self.people[member]
        if person.delegation is None:
            return self.mediator.device
        return self.head_of(person.delegation).device

    def remove_member(self, member: str, *, by: DeviceKeys | None = None) -> RosterChange:
        return self.change(by or self.owner(member), "member.remove", ChangeArgs(member=member))

    def add_device(self, member: str, *, by: DeviceKeys | None = None) -> DeviceKeys:
        keys = self.new_device()
        self.change(
            by or self.owner(member),
            "device.add",
            ChangeArgs(member=member, devices=(keys.public,)),
        )
        self.people[member].devices.append(keys)
        return keys

    def remove_device(
        self, member: str, device: DeviceKeys, *, by: DeviceKeys | None = None
    ) -> RosterChange:
        change = self.change(
            by or self.owner(member),
            "device.remove",
            ChangeArgs(member=member, device=device.device_id),
        )
        self.people[member].devices.remove(device)
        return change

    def create_channel(
        self,
        channel: str,
        *,
        delegations: Iterable[str] = (),
        members: Iterable[str] = (),
        kind: str = "plenary",
    ) -> RosterChange:
        return self.change(
            self.mediator.device,
            "channel.create",
            ChangeArgs(
                channel=channel,
                name=f"Channel {channel}",
                kind=kind,
                delegations=tuple(sorted(delegations)),
                members=tuple(sorted(members)),
            ),
        )

    def set_channel(
        self, channel: str, *, delegations: Iterable[str] = (), members: Iterable[str] = ()
    ) -> RosterChange:
        return self.change(
            self.mediator.device,
            "channel.members",
            ChangeArgs(
                channel=channel,
                delegations=tuple(sorted(delegations)),
                members=tuple(sorted(members)),
            ),
        )

    # -- drafts -------------------------------------------------------------------------

    def payload(self, text: str = "", *, title: str | None = None) -> Payload:
        return Payload(title=title or "Draft", body=text or f"Draft text {self.time}")

    def seal(
        self,
        sender: DeviceKeys,
        channel: str,
        payload: Payload | None = None,
        *,
        draft: bytes | None = None,
        version: int = 1,
        parents: Sequence[LeafHash] = (),
        counter: int | None = None,
        msg: bytes | None = None,
        roster: LeafHash | None = None,
        recipients: dict[DeviceId, DevicePublic] | None = None,
        talks: bytes | None = None,
    ) -> SealedDraft:
        """Seal a draft as ``sender`` for ``channel`` on the current roster (not logged)."""
        return seal(
            sender=sender,
            talks=self.genesis.talks_id if talks is None else TalksId(talks),
            channel=channel,
            counter=self.counters.get(sender.device_id, 0) + 1 if counter is None else counter,
            msg=MessageId(self.rng(16) if msg is None else msg),
            draft=DraftId(self.rng(16) if draft is None else draft),
            version=version,
            parents=parents,
            roster=self.roster.head if roster is None else roster,
            recipients=(self.roster.channel_devices(channel) if recipients is None else recipients),
            payload=payload or self.payload(),
            time=self.tick(),
            rng=self.rng,
        )

    def log_draft(self, sealed: SealedDraft, payload: Payload, sender: DeviceKeys) -> Sent:
        index = self.append(sealed.header.to_bytes())
        self.counters[sender.device_id] = sealed.header.counter
        sent = Sent(index=index, sealed=sealed, payload=payload, sender=sender)
        self.sent[index] = sent
        return sent

    def send(
        self,
        sender: DeviceKeys,
        channel: str,
        text: str = "",
        *,
        payload: Payload | None = None,
        reply_to: Sent | None = None,
    ) -> Sent:
        """Seal, log and remember a draft (a new version of ``reply_to`` if given)."""
        payload = payload or self.payload(text)
        if reply_to is None:
            sealed = self.seal(sender, channel, payload)
        else:
            sealed = self.seal(
                sender,
                channel,
                payload,
                draft=reply_to.sealed.header.draft,
                version=reply_to.sealed.header.version + 1,
                parents=[reply_to.leaf],
            )
        return self.log_draft(sealed, payload, sender)

    def open_as(self, device: DeviceKeys, sent: Sent) -> OpenedDraft:
        """Open a logged draft as ``device``, with sender and recipients from the roster
        state the draft names (here: the ledger's view at the draft's log position)."""
        header = sent.sealed.header
        roster = self.roster_at(sent.index)
        _, sender = roster.device(header.sender)
        return open_draft(
            header,
            sent.sealed.keys,
            sent.sealed.ciphertext,
            me=device,
            talks=self.talks_id,
            sender=sender,
            recipients=roster.channel_devices(header.channel),
        )

    def roster_at(self, index: int) -> Roster:
        """The roster in force for the entry at ``index`` (all changes before it)."""
        return self.fresh_ledger(index).roster

    def receipt(
        self,
        device: DeviceKeys,
        sent: Sent,
        kind: str = RECEIVED,
        *,
        reason: str | None = None,
        apply: bool = True,
    ) -> tuple[int, Receipt]:
        """Sign (and by default log) a receipt; returns its log index (or -1)."""
        receipt = make_receipt(
            device=device,
            header=sent.sealed.header,
            index=sent.index,
            kind=kind,
            time=self.tick(),
            reason=reason,
        )
        if not apply:
            return -1, receipt
        return self.append(receipt.to_bytes()), receipt

    # -- checkpoints and evidence -------------------------------------------------------------

    def witness_signers(self, roster: Roster | None = None) -> dict[str, crypto.SigningKey]:
        """One signing key per witness the roster names (its first known key)."""
        out: dict[str, crypto.SigningKey] = {}
        for name, keys in (roster or self.roster).witnesses().items():
            for pk in keys:
                if pk in self.signers:
                    out[name] = self.signers[pk]
                    break
        return out

    def checkpoint(
        self,
        size: int | None = None,
        *,
        witnesses: Iterable[str] | None = None,
        roster: Roster | None = None,
    ) -> str:
        """A checkpoint note for the first ``size`` entries, signed by the log and cosigned
        by ``witnesses`` (default: every witness of ``roster``, default the current one)."""
        size = self.tree.size if size is None else size
        checkpoint = cp.Checkpoint(origin=self.genesis.origin, size=size, root=self.tree.root(size))
        signers = self.witness_signers(roster)
        names = sorted(signers) if witnesses is None else list(witnesses)
        lines = [cp.sign_checkpoint(checkpoint, self.genesis.log_name, self.log_key)]
        lines += [cp.cosign(checkpoint, n, signers[n], timestamp=self.time) for n in names]
        return cp.format_note(checkpoint.body(), lines).decode("utf-8")

    def proven(self, index: int, size: int) -> Proven:
        return Proven(
            index=index,
            entry=self.entries[index],
            proof=tuple(self.tree.inclusion_proof(index, size)),
        )

    def evidence(
        self,
        sent: Sent,
        receipts: Iterable[int] = (),
        *,
        size: int | None = None,
        note: str | None = None,
    ) -> EvidenceBundle:
        """A bundle for a logged draft: genesis, every roster/channel change up to the
        checkpoint, the draft, the receipts at ``receipts``, and a checkpoint covering all
        of them (cosigned by the witnesses of the roster at that size)."""
        size = self.tree.size if size is None else size
        roster_indices = [
            i for i in range(1, size) if parse(self.entries[i]).get("t") in ("roster", "channel")
        ]
        if note is None:
            note = self.checkpoint(size, roster=self.roster_at(size))
        return EvidenceBundle(
            genesis=self.proven(0, size),
            roster=tuple(self.proven(i, size) for i in roster_indices),
            draft=self.proven(sent.index, size),
            ciphertext=sent.sealed.ciphertext,
            content_key=sent.sealed.content_key,
            receipts=tuple(self.proven(i, size) for i in receipts),
            checkpoint=note,
        )


def standard(seed: str = "standard", *, quorum: int = 64) -> tuple[Talks, Sent, list[int]]:
    """The scenario most tests start from.

    Mediator ``med`` with staff ``sam``; delegations ``north`` (head ``nh``, members
    ``na`` with two devices and ``nb``) and ``south`` (head ``sh``, member ``sa``); a
    plenary channel ``plenary`` over both delegations plus the mediator; ``na`` sends one
    draft; every other recipient device signs ``received``, the mediator also
    ``acknowledged``.  Returns the talks, the draft and the receipt indices.
    """
    t = Talks(seed, quorum=quorum)
    t.enrol_staff("sam", "staff")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol("north", "na", devices=2)
    t.enrol("north", "nb")
    t.enrol("south", "sa")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    sent = t.send(t.people["na"].device, "plenary", "Article 1. The parties agree to talk.")
    receipts = []
    for dev_id in sent.sealed.header.recipients:
        if dev_id == sent.sender.device_id:
            continue
        receipts.append(t.receipt(t.keys[dev_id], sent)[0])
    receipts.append(t.receipt(t.mediator.device, sent, "acknowledged")[0])
    return t, sent, receipts


def roster_state(roster: Roster) -> tuple[Any, ...]:
    """Everything a roster holds, as comparable values (a snapshot for atomicity checks)."""
    return (
        roster.talks,
        roster.head,
        roster.seq,
        {
            k: (m.id, m.name, m.role, m.delegation, dict(m.devices), m.active)
            for k, m in roster.members.items()
        },
        {k: (d.id, d.name, d.head) for k, d in roster.delegations.items()},
        {k: (c.id, c.name, c.kind, c.delegations, c.members) for k, c in roster.channels.items()},
        dict(roster.devices),
        set(roster.retired),
        list(roster.history),
        # the lifecycle (docs/PROTOCOL.md section 5a)
        set(roster.used_keys),
        dict(roster.former_devices),
        dict(roster.revoked),
        dict(roster.rotations),
        dict(roster.proposals),
        dict(roster.departures),
        dict(roster.device_ends),
    )


def resign(
    obj: dict[str, JSONValue], key: crypto.SigningKey, context: bytes
) -> dict[str, JSONValue]:
    """Re-sign an edited record (for building records a *malicious* author signs)."""
    return sign_record(key, context, obj)


# --- mutation helpers ---------------------------------------------------------------------

JSONPath = tuple[str | int, ...]
"""Where a value sits in a JSON tree: object keys and list indices from the root."""


def _flip_b64(text: str) -> str | None:
    """``text`` with its first decoded byte changed, if it is (strict) base64url of 16+
    bytes; ``None`` otherwise.  The result is again canonical base64url of equal length."""
    try:
        raw = b64d(text)
    except ProtocolError:
        return None
    if len(raw) < 16:
        return None
    return b64e(bytes([raw[0] ^ 0x01]) + raw[1:])


def _other_char(text: str) -> str:
    """``text`` with its last character replaced by another id-safe character."""
    if not text:
        return "a"
    last = text[-1]
    repl = "b" if last == "a" else ("1" if last == "0" else ("0" if last.isdigit() else "a"))
    return text[:-1] + repl


def leaf_mutations(value: JSONValue) -> list[tuple[str, JSONValue]]:
    """Well-formed replacements for one scalar: a flipped byte for base64 fields, +1 for
    integers, another character for strings, the other boolean, a string for null."""
    if isinstance(value, bool):
        return [("negated", not value)]
    if isinstance(value, int):
        return [("plus-one", value + 1)]
    if value is None:
        return [("null-to-string", "x")]
    if isinstance(value, str):
        flipped = _flip_b64(value)
        if flipped is not None:
            return [("flipped-byte", flipped)]
        return [("changed-char", _other_char(value))]
    raise TypeError(f"not a JSON scalar: {value!r}")


def mutations(value: JSONValue, path: JSONPath = ()) -> Iterator[tuple[JSONPath, str, JSONValue]]:
    """Every single well-formed mutation of a JSON tree, as ``(path, what, new tree)``.

    Scalars get :func:`leaf_mutations`; lists are also reversed (if that changes them),
    extended by a copy of their last item (or a string) and shortened; objects also get an
    extra field.  The tree itself is never modified.
    """
    if isinstance(value, dict):
        yield path, "extra-field", {**value, "zz_extra": 1}
        for key in value:
            for sub_path, what, new in mutations(value[key], (*path, key)):
                yield sub_path, what, {**value, key: new}
        return
    if isinstance(value, list):
        if len(value) >= 2 and value[::-1] != value:
            yield path, "reordered", value[::-1]
        yield path, "appended", [*value, value[-1] if value else "a"]
        if value:
            yield path, "dropped-last", value[:-1]
        for i, item in enumerate(value):
            for sub_path, what, new in mutations(item, (*path, i)):
                yield sub_path, what, [*value[:i], new, *value[i + 1 :]]
        return
    for what, new in leaf_mutations(value):
        yield path, what, new


def leaf_paths(value: JSONValue, path: JSONPath = ()) -> Iterator[JSONPath]:
    """The path of every scalar in a JSON tree (what a mutation sweep must reach)."""
    if isinstance(value, dict):
        for key in value:
            yield from leaf_paths(value[key], (*path, key))
    elif isinstance(value, list):
        yield path
        for i, item in enumerate(value):
            yield from leaf_paths(item, (*path, i))
    else:
        yield path


def set_path(value: JSONValue, path: JSONPath, new: JSONValue) -> JSONValue:
    """A copy of ``value`` with the subtree at ``path`` replaced by ``new``."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: set_path(value[head], rest, new)}
    items = list(value)
    items[head] = set_path(items[head], rest, new)  # type: ignore[index]
    return items
