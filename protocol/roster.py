"""Roster and channels: signed change records and the pure state machine that applies them.

Theory of operation
-------------------
The roster (delegations, members, their devices, mediator staff, channels) exists only as
the result of applying signed change records, in log order, starting from the genesis.
Server, client and auditor all run this same :class:`Roster` machine, so they cannot
disagree about who may do what.

Each change names the roster state it was computed from: ``prev`` is the leaf hash of the
previous roster or channel change (the genesis for the first) and ``seq`` its number.
A change is accepted only on top of exactly that state, so an old change cannot be
replayed as current, two concurrent changes cannot both apply, and following ``prev``
links from any state back to the genesis yields its complete history (the evidence
bundle's roster proof relies on this).

:meth:`Roster.apply` checks, in order:

1. the change names these talks;
2. ``prev``/``seq`` equal the current head (else :class:`StaleRosterError`);
3. the author device is a current device (else :class:`UnknownDeviceError`);
4. the signature verifies under the author's key and the record type's context;
5. the author holds the authority the :data:`AUTHORITY` table gives for the operation
   (else :class:`UnauthorisedChangeError`);
6. the operation is consistent with the state (new ids are new, targets exist, removed
   device keys are never re-admitted; else :class:`RosterConflictError`), and a new
   member, delegation or channel name does not look like one of the same kind already
   in the roster, removed members' included (UTS #39 skeletons,
   :mod:`protocol.names`; else :class:`~protocol.errors.ConfusableNameError`).

Lifecycle (docs/PROTOCOL.md section 5a).  A signing or encryption key once enrolled is
never enrolled again, under any device or member: removed, rotated and revoked devices
stay out for good, so a replayed (re-signed) enrolment of one is refused.  A revoked
device is remembered with the log index it was declared compromised from
(:class:`Revocation`); its later signatures are refused as ``revoked_device``, and its
earlier ones stay valid but are flagged by :meth:`Roster.compromised` when they come
at or after that index.  Departures (removal, leaving) are remembered with who made
them and where, so a client can say "removed at index N by X".  Rotation replaces a
device's keys with new ones (a new device id: an id commits to its keys); the old id is
kept in :attr:`Roster.former_devices` so what it signed stays attributable.  These
rules live in :mod:`protocol.rosterlife`, which :class:`Roster` inherits.

Only then does it mutate the state.  A failed ``apply`` leaves the roster unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from protocol import crypto
from protocol.errors import (
    RevokedDeviceError,
    RosterConflictError,
    StaleRosterError,
    UnauthorisedChangeError,
    UnknownDeviceError,
    WrongTalksError,
)
from protocol.genesis import Genesis, WitnessPolicy, witness_name
from protocol.keys import DeviceId, DevicePublic
from protocol.merkle import LeafHash
from protocol.names import check_distinct, skeleton
from protocol.records import TalksId, verify_record
from protocol.rosterchange import (
    AUTHORITY,
    CHANNEL_KINDS,
    CONTEXTS,
    MAX_DEVICES_PER_MEMBER,
    MAX_LIST,
    OPS,
    PARTY_MEDIATOR,
    PARTY_OUTSIDE,
    ROLE_HEAD,
    ROLE_MEDIATOR,
    ROLE_MEMBER,
    STAFF_ROLES,
    ChangeArgs,
    RosterChange,
    make_change,
)
from protocol.rosterlife import Delegation, Departure, Lifecycle, Member, Revocation

__all__ = [
    "AUTHORITY",
    "CHANNEL_KINDS",
    "CONTEXTS",
    "MAX_DEVICES_PER_MEMBER",
    "MAX_LIST",
    "OPS",
    "PARTY_MEDIATOR",
    "PARTY_OUTSIDE",
    "ROLE_HEAD",
    "ROLE_MEDIATOR",
    "ROLE_MEMBER",
    "STAFF_ROLES",
    "ChangeArgs",
    "Channel",
    "Delegation",
    "Departure",
    "Member",
    "Revocation",
    "Roster",
    "RosterChange",
    "make_change",
]

# --- state -------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Channel:
    id: str
    name: str
    kind: str
    delegations: tuple[str, ...]
    members: tuple[str, ...]


class Roster(Lifecycle):
    """The roster at one point of the log.  Mutated only by :meth:`apply`."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.talks: TalksId = genesis.talks_id
        self.head: LeafHash = genesis.leaf
        self.seq = 0
        self.members: dict[str, Member] = {}
        self.delegations: dict[str, Delegation] = {}
        self.channels: dict[str, Channel] = {}
        self.devices: dict[DeviceId, str] = {}
        self.retired: set[DeviceId] = set()
        self.history: list[LeafHash] = [genesis.leaf]
        # Witness keys registered by ``witness.set`` (name -> (party, key)); keys once
        # retired by a removal or a rotation are never admitted again.
        self.witness_keys: dict[str, tuple[str, bytes]] = {}
        self.retired_witness_keys: set[bytes] = set()
        self.policy: WitnessPolicy = genesis.witness
        # Outside witnesses of earlier policies: they may still cosign the checkpoints
        # past a policy change, which only count once the old quorum has (quorum step 7).
        self.former_witnesses: dict[str, list[bytes]] = {}
        # The UTS #39 skeletons of every member (removed ones too), delegation and
        # channel name, so a look-alike is found without comparing with each name.
        self.skeletons: dict[str, set[str]] = {
            "member": set(),
            "delegation": set(),
            "channel": set(),
        }
        # Lifecycle state (module docstring): every key ever enrolled, devices no longer
        # current (id -> (member, keys)), revocations, rotations (old id -> new id),
        # proposed devices awaiting the owner (id -> (member, keys, proposing device)),
        # departures (member id -> how).
        self.used_keys: set[bytes] = set()
        self.former_devices: dict[DeviceId, tuple[str, DevicePublic]] = {}
        self.revoked: dict[DeviceId, Revocation] = {}
        self.rotations: dict[DeviceId, DeviceId] = {}
        self.proposals: dict[DeviceId, tuple[str, DevicePublic, DeviceId]] = {}
        self.departures: dict[str, Departure] = {}
        # device id -> how it stopped being current (remove, rotate, revoke, member gone)
        self.device_ends: dict[DeviceId, Departure] = {}
        self._at = 0
        self._author = DeviceId(b"")
        mediator = Member(
            id=genesis.mediator,
            name=genesis.mediator_name,
            role=ROLE_MEDIATOR,
            delegation=None,
            devices={genesis.mediator_device.device_id: genesis.mediator_device},
        )
        self.members[mediator.id] = mediator
        self.devices[genesis.mediator_device.device_id] = mediator.id
        self.skeletons["member"].add(skeleton(mediator.name))
        self.used_keys.update((genesis.mediator_device.sign_pk, genesis.mediator_device.enc_pk))

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> Roster:
        return cls(genesis)

    def copy(self) -> Roster:
        """An independent copy (public keys and the genesis are immutable and shared)."""
        new = Roster.__new__(Roster)
        new.genesis = self.genesis
        new.talks = self.talks
        new.head = self.head
        new.seq = self.seq
        new.members = {
            k: Member(
                id=m.id,
                name=m.name,
                role=m.role,
                delegation=m.delegation,
                devices=dict(m.devices),
                active=m.active,
            )
            for k, m in self.members.items()
        }
        new.delegations = {
            k: Delegation(id=d.id, name=d.name, head=d.head) for k, d in self.delegations.items()
        }
        new.channels = {
            k: Channel(
                id=c.id, name=c.name, kind=c.kind, delegations=c.delegations, members=c.members
            )
            for k, c in self.channels.items()
        }
        new.devices = dict(self.devices)
        new.retired = set(self.retired)
        new.history = list(self.history)
        new.witness_keys = dict(self.witness_keys)
        new.retired_witness_keys = set(self.retired_witness_keys)
        new.policy = self.policy
        new.former_witnesses = {k: list(v) for k, v in self.former_witnesses.items()}
        new.skeletons = {k: set(v) for k, v in self.skeletons.items()}
        new.used_keys = set(self.used_keys)
        new.former_devices = dict(self.former_devices)
        new.revoked = dict(self.revoked)
        new.rotations = dict(self.rotations)
        new.proposals = dict(self.proposals)
        new.departures = dict(self.departures)
        new.device_ends = dict(self.device_ends)
        new._at = self._at
        return new

    # -- queries ------------------------------------------------------------------------

    def device(self, device_id: bytes) -> tuple[Member, DevicePublic]:
        """The current member and public keys of a device, or :class:`UnknownDeviceError`."""
        member_id = self.devices.get(DeviceId(device_id))
        if member_id is None:
            if DeviceId(device_id) in self.revoked:
                raise RevokedDeviceError("device was revoked after a declared compromise")
            raise UnknownDeviceError("device is not in the roster")
        member = self.members[member_id]
        return member, member.devices[DeviceId(device_id)]

    def member(self, member_id: str) -> Member:
        member = self.members.get(member_id)
        if member is None or not member.active:
            raise UnknownDeviceError(f"no current member {member_id!r}")
        return member

    def channel(self, channel_id: str) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise RosterConflictError(f"no channel {channel_id!r}")
        return channel

    def channel_members(self, channel_id: str) -> list[Member]:
        """Current members of a channel: listed delegations' members plus listed members."""
        channel = self.channel(channel_id)
        out: dict[str, Member] = {}
        for member in self.members.values():
            if not member.active:
                continue
            if member.delegation in channel.delegations or member.id in channel.members:
                out[member.id] = member
        return [out[k] for k in sorted(out)]

    def channel_devices(self, channel_id: str) -> dict[DeviceId, DevicePublic]:
        """Every current device of every current member of a channel."""
        devices: dict[DeviceId, DevicePublic] = {}
        for member in self.channel_members(channel_id):
            devices.update(member.devices)
        return dict(sorted(devices.items()))

    def is_channel_member(self, channel_id: str, member_id: str) -> bool:
        return any(m.id == member_id for m in self.channel_members(channel_id))

    def channels_of(self, member_id: str) -> list[str]:
        return [c for c in sorted(self.channels) if self.is_channel_member(c, member_id)]

    def witnesses(self) -> dict[str, list[bytes]]:
        """Witness name -> signing keys that may cosign for it.

        The mediator (``<origin>/witness/mediator``: the mediator's devices), every
        delegation (``<origin>/witness/<id>``: its head's devices), the policy's
        ``external`` witnesses, and every key registered with ``witness.set`` (added to
        the keys of a name above when it reuses one, its own name otherwise).
        """
        origin = self.genesis.origin
        out: dict[str, list[bytes]] = {
            witness_name(origin, PARTY_MEDIATOR): [
                d.sign_pk for d in self.members[self.genesis.mediator].devices.values()
            ]
        }
        for delegation in self.delegations.values():
            head = self.members[delegation.head]
            out[witness_name(origin, delegation.id)] = [d.sign_pk for d in head.devices.values()]
        for ext in self.policy.external:
            out[ext.name] = [ext.key]
        for name, (_party, key) in sorted(self.witness_keys.items()):
            out.setdefault(name, []).append(key)
        return out

    def witness_parties(self) -> dict[str, str]:
        """Witness name -> the party it speaks for (``mediator``, a delegation id or
        ``outside``), the basis of the ``parties`` quorum rule."""
        origin = self.genesis.origin
        out = {witness_name(origin, PARTY_MEDIATOR): PARTY_MEDIATOR}
        for delegation in self.delegations:
            out[witness_name(origin, delegation)] = delegation
        for ext in self.policy.external:
            out[ext.name] = PARTY_OUTSIDE
        for name, (party, _key) in self.witness_keys.items():
            out.setdefault(name, party)
        return out

    def quorum(self) -> int:
        """Witnesses needed for a checkpoint to be trusted at this roster state (for the
        ``parties`` rule: the mediator plus a strict majority of the delegations)."""
        known = len(self.witnesses())
        if self.policy.rule == "parties":
            parties = 1 + (len(self.delegations) // 2 + 1 if self.delegations else 0)
            return min(known, max(self.policy.quorum, parties))
        return min(self.policy.quorum, known)

    # -- transitions --------------------------------------------------------------------

    def apply(self, change: RosterChange, *, index: int | None = None) -> None:
        """Verify ``change`` against this state and apply it (see module docstring).

        ``index`` is the change's log index (the :class:`~protocol.ledger.Ledger` passes
        it): revocations and departures remember it.  Without it the roster's own
        count of changes so far stands in (enough for local pre-checks)."""
        author = self.check(change, index=index)
        self._at = index if index is not None else self._at + 1
        self._author = change.author
        self._handlers[change.op](self, change.args, author)
        self.head = change.leaf
        self.seq = change.seq
        self.history.append(change.leaf)

    def check(self, change: RosterChange, *, index: int | None = None) -> Member:
        """Run steps 1-6 without changing anything; return the author member.

        With the change's log ``index``, a revocation declaring a compromise from a later
        index than its own is refused (a compromise is declared in the past)."""
        # 1. talks
        if not crypto.equal(change.talks, self.talks):
            raise WrongTalksError("change belongs to other talks")
        # 2. chaining
        if change.seq != self.seq + 1 or not crypto.equal(change.prev, self.head):
            raise StaleRosterError("change was not made on the current roster state")
        # 3. author
        author, device = self.device(change.author)
        # 4. signature
        verify_record(device.sign_pk, CONTEXTS[change.record_type], change.to_json())
        # 5. authority
        _RULES[AUTHORITY[change.op]](self, author, change.args)
        # 6. consistency
        self._validators[change.op](self, change.args)
        if change.op == "device.revoke" and index is not None and (change.args.since or 0) > index:
            raise RosterConflictError("a compromise cannot be declared from a future index")
        return author

    # authority rules ---------------------------------------------------------------

    def _rule_mediator(self, author: Member, args: ChangeArgs) -> None:
        if author.role != ROLE_MEDIATOR:
            raise UnauthorisedChangeError("only the mediator may do this")

    def _rule_head_of_target(self, author: Member, args: ChangeArgs) -> None:
        delegation = self.delegations.get(args.delegation or "")
        if delegation is None:
            raise RosterConflictError("no such delegation")
        if author.id != delegation.head:
            raise UnauthorisedChangeError("only the delegation's head may change its roster")

    def _rule_owner_of_target(self, author: Member, args: ChangeArgs) -> None:
        target = self.member(args.member or "")
        if target.delegation is None:
            if author.role != ROLE_MEDIATOR:
                raise UnauthorisedChangeError("only the mediator manages mediator-side members")
            return
        if author.id != self.delegations[target.delegation].head:
            raise UnauthorisedChangeError("only the delegation's head may change its roster")

    def _rule_self(self, author: Member, args: ChangeArgs) -> None:
        if author.id != args.member:
            raise UnauthorisedChangeError("only the member's own devices may do this")

    def _rule_witness_party(self, author: Member, args: ChangeArgs) -> None:
        party = args.party
        if party is None:  # witness.remove: the party that registered the name
            entry = self.witness_keys.get(args.witness or "")
            if entry is None:
                raise RosterConflictError("no such registered witness")
            party = entry[0]
        if party in (PARTY_MEDIATOR, PARTY_OUTSIDE):
            if author.role != ROLE_MEDIATOR:
                raise UnauthorisedChangeError("only the mediator registers this witness")
            return
        delegation = self.delegations.get(party)
        if delegation is None:
            raise RosterConflictError("no such delegation")
        if author.id != delegation.head:
            raise UnauthorisedChangeError("only the delegation's head registers its witness")

    # validators and effects --------------------------------------------------------------

    def _new_member_ok(
        self, member_id: str, devices: Iterable[DevicePublic], name: str | None = None
    ) -> None:
        if member_id in self.members:
            raise RosterConflictError(f"member id {member_id!r} already used")
        if name is not None:
            # Removed members' names too: a newcomer must not pass for someone who was.
            check_distinct(name, self.skeletons["member"], "member name")
        self._new_devices_ok(devices)

    def _new_devices_ok(self, devices: Iterable[DevicePublic]) -> None:
        for dev in devices:
            if dev.device_id in self.devices or dev.device_id in self.retired:
                raise RosterConflictError("device key already enrolled or retired")
            # A key never comes back, not even paired with another key (a new id).
            if dev.sign_pk in self.used_keys or dev.enc_pk in self.used_keys:
                raise RosterConflictError("device key already enrolled or retired")

    def _v_delegation_create(self, a: ChangeArgs) -> None:
        if a.delegation in self.delegations:
            raise RosterConflictError("delegation already exists")
        # Each witness name is one party's slot.  A delegation whose name is already taken
        # (``mediator``, or an external witness named after it in the genesis) would have
        # its cosignatures counted under another party's keys, or the reverse.
        if witness_name(self.genesis.origin, a.delegation or "") in self.witnesses():
            raise RosterConflictError("delegation id collides with an existing witness name")
        check_distinct(a.name or "", self.skeletons["delegation"], "delegation name")
        self._new_member_ok(a.member or "", a.devices, a.member_name)

    def _v_member_enrol(self, a: ChangeArgs) -> None:
        self._new_member_ok(a.member or "", a.devices, a.member_name)

    def _v_staff_enrol(self, a: ChangeArgs) -> None:
        self._new_member_ok(a.member or "", a.devices, a.member_name)

    def _v_member_remove(self, a: ChangeArgs) -> None:
        target = self.member(a.member or "")
        if target.role in (ROLE_MEDIATOR, ROLE_HEAD):
            raise RosterConflictError("the mediator and delegation heads cannot be removed")

    def _v_device_add(self, a: ChangeArgs) -> None:
        target = self.member(a.member or "")
        if len(target.devices) + len(a.devices) > MAX_DEVICES_PER_MEMBER:
            raise RosterConflictError("too many devices")
        self._new_devices_ok(a.devices)

    def _v_device_remove(self, a: ChangeArgs) -> None:
        target = self.member(a.member or "")
        if a.device not in target.devices:
            raise RosterConflictError("member has no such device")
        if len(target.devices) == 1:
            raise RosterConflictError("cannot remove a member's last device")

    def _v_witness_set(self, a: ChangeArgs) -> None:
        name, key, party = a.witness or "", a.key or b"", a.party or ""
        if key in self.retired_witness_keys:
            raise RosterConflictError("witness key was retired and cannot come back")
        # Each witness name is one party's slot: a name another party already speaks
        # under (implicitly or by registration) would let one party's cosignatures count
        # for another.
        current = self.witness_parties().get(name)
        if current is not None and current != party:
            raise RosterConflictError("witness name belongs to another party")
        for other, keys in self.witnesses().items():
            if key in keys and other != name:
                raise RosterConflictError("witness key is already used by another witness")
        if name not in self.witness_keys and len(self.witness_keys) >= MAX_LIST:
            raise RosterConflictError("too many witnesses")

    def _v_witness_remove(self, a: ChangeArgs) -> None:
        if (a.witness or "") not in self.witness_keys:
            raise RosterConflictError("no such registered witness")

    def _v_policy_set(self, a: ChangeArgs) -> None:
        policy = a.policy
        if policy is None:  # (from_json always sets it)
            raise RosterConflictError("policy.set needs a policy")
        implicit = set(self.witnesses()) - {w.name for w in self.policy.external}
        if any(w.name in implicit for w in policy.external):
            raise RosterConflictError("an outside witness name collides with a party's name")

    def _e_witness_set(self, a: ChangeArgs, author: Member) -> None:
        name = a.witness or ""
        old = self.witness_keys.get(name)
        if old is not None and old[1] != a.key:
            self.retired_witness_keys.add(old[1])  # rotation: the old key is retired
        self.witness_keys[name] = (a.party or "", a.key or b"")

    def _e_witness_remove(self, a: ChangeArgs, author: Member) -> None:
        _party, key = self.witness_keys.pop(a.witness or "")
        self.retired_witness_keys.add(key)

    def _e_policy_set(self, a: ChangeArgs, author: Member) -> None:
        if a.policy is not None:
            for w in self.policy.external:
                self.former_witnesses.setdefault(w.name, []).append(w.key)
            self.policy = a.policy

    def _v_channel_create(self, a: ChangeArgs) -> None:
        if a.channel in self.channels:
            raise RosterConflictError("channel already exists")
        check_distinct(a.name or "", self.skeletons["channel"], "channel name")
        self._v_channel_lists(a)

    def _v_channel_members(self, a: ChangeArgs) -> None:
        self.channel(a.channel or "")
        self._v_channel_lists(a)

    def _v_channel_lists(self, a: ChangeArgs) -> None:
        for d in a.delegations:
            if d not in self.delegations:
                raise RosterConflictError(f"no delegation {d!r}")
        for m in a.members:
            self.member(m)
        if not a.delegations and not a.members:
            raise RosterConflictError("a channel needs members")

    def _add_member(self, a: ChangeArgs, role: str, delegation: str | None) -> None:
        member = Member(
            id=a.member or "",
            name=a.member_name or "",
            role=role,
            delegation=delegation,
            devices={d.device_id: d for d in a.devices},
        )
        self.members[member.id] = member
        self.skeletons["member"].add(skeleton(member.name))
        for dev_id, dev in member.devices.items():
            self.devices[dev_id] = member.id
            self.used_keys.update((dev.sign_pk, dev.enc_pk))

    def _e_delegation_create(self, a: ChangeArgs, author: Member) -> None:
        self.delegations[a.delegation or ""] = Delegation(
            id=a.delegation or "", name=a.name or "", head=a.member or ""
        )
        self.skeletons["delegation"].add(skeleton(a.name or ""))
        self._add_member(a, ROLE_HEAD, a.delegation)

    def _e_member_enrol(self, a: ChangeArgs, author: Member) -> None:
        self._add_member(a, ROLE_MEMBER, a.delegation)

    def _e_staff_enrol(self, a: ChangeArgs, author: Member) -> None:
        self._add_member(a, a.role or "", None)

    def _e_member_remove(self, a: ChangeArgs, author: Member) -> None:
        target = self.members[a.member or ""]
        target.active = False
        for dev_id, dev in target.devices.items():
            self.devices.pop(dev_id, None)
            self.retired.add(dev_id)
            self.former_devices[dev_id] = (target.id, dev)
            self.device_ends[dev_id] = Departure(op="member.remove", by=author.id, at=self._at)
        for dev_id in [d for d, p in self.proposals.items() if p[0] == target.id]:
            del self.proposals[dev_id]
        self.departures[target.id] = Departure(op="member.remove", by=author.id, at=self._at)

    def _e_device_add(self, a: ChangeArgs, author: Member) -> None:
        target = self.members[a.member or ""]
        for dev in a.devices:
            target.devices[dev.device_id] = dev
            self.devices[dev.device_id] = target.id
            self.used_keys.update((dev.sign_pk, dev.enc_pk))
            self.proposals.pop(dev.device_id, None)

    def _e_device_remove(self, a: ChangeArgs, author: Member) -> None:
        self._retire(
            self.members[a.member or ""], DeviceId(a.device or b""), "device.remove", author.id
        )

    def _e_channel_create(self, a: ChangeArgs, author: Member) -> None:
        self.skeletons["channel"].add(skeleton(a.name or ""))
        self.channels[a.channel or ""] = Channel(
            id=a.channel or "",
            name=a.name or "",
            kind=a.kind or "",
            delegations=a.delegations,
            members=a.members,
        )

    def _e_channel_members(self, a: ChangeArgs, author: Member) -> None:
        channel = self.channels[a.channel or ""]
        channel.delegations = a.delegations
        channel.members = a.members

    _validators: dict[str, Callable[[Roster, ChangeArgs], None]] = {
        "delegation.create": _v_delegation_create,
        "member.enrol": _v_member_enrol,
        "staff.enrol": _v_staff_enrol,
        "member.remove": _v_member_remove,
        "device.add": _v_device_add,
        "device.remove": _v_device_remove,
        "channel.create": _v_channel_create,
        "channel.members": _v_channel_members,
        "witness.set": _v_witness_set,
        "witness.remove": _v_witness_remove,
        "policy.set": _v_policy_set,
        "device.propose": Lifecycle._v_device_propose,
        "device.rotate": Lifecycle._v_device_rotate,
        "device.revoke": Lifecycle._v_device_revoke,
        "delegation.head": Lifecycle._v_delegation_head,
        "member.leave": _v_member_remove,
    }

    _handlers: dict[str, Callable[[Roster, ChangeArgs, Member], None]] = {
        "delegation.create": _e_delegation_create,
        "member.enrol": _e_member_enrol,
        "staff.enrol": _e_staff_enrol,
        "member.remove": _e_member_remove,
        "device.add": _e_device_add,
        "device.remove": _e_device_remove,
        "channel.create": _e_channel_create,
        "channel.members": _e_channel_members,
        "witness.set": _e_witness_set,
        "witness.remove": _e_witness_remove,
        "policy.set": _e_policy_set,
        "device.propose": Lifecycle._e_device_propose,
        "device.rotate": Lifecycle._e_device_rotate,
        "device.revoke": Lifecycle._e_device_revoke,
        "delegation.head": Lifecycle._e_delegation_head,
        "member.leave": Lifecycle._e_member_leave,
    }


_RULES: dict[str, Callable[[Roster, Member, ChangeArgs], None]] = {
    "mediator": Roster._rule_mediator,
    "head_of_target": Roster._rule_head_of_target,
    "owner_of_target": Roster._rule_owner_of_target,
    "witness_party": Roster._rule_witness_party,
    "self": Roster._rule_self,
}
