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
   device keys are never re-admitted; else :class:`RosterConflictError`).

Only then does it mutate the state.  A failed ``apply`` leaves the roster unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from protocol import crypto
from protocol.encoding import (
    Fields,
    JSONValue,
    b64e,
    canonical,
    parse,
    str_list,
    strictly_sorted,
)
from protocol.errors import (
    BadValueError,
    RosterConflictError,
    StaleRosterError,
    UnauthorisedChangeError,
    UnknownDeviceError,
    WrongTalksError,
)
from protocol.genesis import Genesis, witness_name
from protocol.keys import DEVICE_ID_LEN, DeviceId, DeviceKeys, DevicePublic
from protocol.merkle import LeafHash, leaf_hash
from protocol.records import (
    ID_RE,
    NAME_MAX,
    VERSION,
    TalksId,
    sign_record,
    verify_record,
)

MAX_DEVICES_PER_MEMBER = 16
MAX_LIST = 1024

ROLE_MEDIATOR = "mediator"
ROLE_HEAD = "head"
ROLE_MEMBER = "member"
STAFF_ROLES = ("staff", "observer", "auditor")
CHANNEL_KINDS = ("plenary", "working_group", "bilateral")

# --- the operation table -------------------------------------------------------------
# op -> (record type, the argument fields it carries)
OPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "delegation.create": ("roster", ("delegation", "name", "member", "member_name", "devices")),
    "member.enrol": ("roster", ("delegation", "member", "member_name", "devices")),
    "staff.enrol": ("roster", ("member", "member_name", "role", "devices")),
    "member.remove": ("roster", ("member",)),
    "device.add": ("roster", ("member", "devices")),
    "device.remove": ("roster", ("member", "device")),
    "channel.create": ("channel", ("channel", "name", "kind", "delegations", "members")),
    "channel.members": ("channel", ("channel", "delegations", "members")),
}

# op -> who may author it.  "mediator": the genesis mediator's devices.
# "head_of_target": the head of the delegation the target member belongs to (or will).
# "mediator_side": the mediator, for members outside every delegation.
AUTHORITY: dict[str, str] = {
    "delegation.create": "mediator",
    "member.enrol": "head_of_target",
    "staff.enrol": "mediator",
    "member.remove": "owner_of_target",
    "device.add": "owner_of_target",
    "device.remove": "owner_of_target",
    "channel.create": "mediator",
    "channel.members": "mediator",
}

CONTEXTS = {"roster": crypto.CTX_ROSTER, "channel": crypto.CTX_CHANNEL}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeArgs:
    """The arguments of a roster or channel operation (which are set depends on ``op``)."""

    delegation: str | None = None
    name: str | None = None
    member: str | None = None
    member_name: str | None = None
    role: str | None = None
    devices: tuple[DevicePublic, ...] = ()
    device: DeviceId | None = None
    channel: str | None = None
    kind: str | None = None
    delegations: tuple[str, ...] = ()
    members: tuple[str, ...] = ()

    def to_json(self, op: str) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {}
        for key in OPS[op][1]:
            value: Any = getattr(self, key)
            if key == "devices":
                out[key] = [d.to_json() for d in value]
            elif key == "device":
                out[key] = b64e(value)
            elif key in ("delegations", "members"):
                out[key] = list(value)
            else:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, op: str, value: JSONValue) -> ChangeArgs:
        f = Fields(value, f"{op}.args")
        kw: dict[str, Any] = {}
        for key in OPS[op][1]:
            if key in ("delegation", "member", "channel"):
                kw[key] = f.str(key, max_len=64, pattern=ID_RE)
            elif key in ("name", "member_name"):
                kw[key] = f.str(key, max_len=NAME_MAX)
            elif key == "role":
                kw[key] = f.str(key, max_len=16)
                if kw[key] not in STAFF_ROLES:
                    raise BadValueError(f"{op}.args.role must be one of {STAFF_ROLES}")
            elif key == "kind":
                kw[key] = f.str(key, max_len=16)
                if kw[key] not in CHANNEL_KINDS:
                    raise BadValueError(f"{op}.args.kind must be one of {CHANNEL_KINDS}")
            elif key == "devices":
                items = f.list(key, max_items=MAX_DEVICES_PER_MEMBER)
                devs = tuple(DevicePublic.from_json(d, f"{op}.args.devices") for d in items)
                if not devs:
                    raise BadValueError(f"{op}.args.devices must not be empty")
                ids = [d.device_id for d in devs]
                if len(set(ids)) != len(ids):
                    raise BadValueError(f"{op}.args.devices has duplicates")
                kw[key] = devs
            elif key == "device":
                kw[key] = DeviceId(f.bytes(key, length=DEVICE_ID_LEN))
            elif key in ("delegations", "members"):
                items = str_list(f.list(key, max_items=MAX_LIST), f"{op}.args.{key}", pattern=ID_RE)
                strictly_sorted(items, f"{op}.args.{key}")
                kw[key] = tuple(items)
        f.done()
        return cls(**kw)


@dataclass(frozen=True, slots=True, kw_only=True)
class RosterChange:
    """A signed roster (``t == "roster"``) or channel (``t == "channel"``) change."""

    talks: TalksId
    prev: LeafHash
    seq: int
    author: DeviceId
    op: str
    args: ChangeArgs
    time: int
    sig: bytes = field(repr=False)
    raw: bytes = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise BadValueError("unknown roster operation")
        if self.seq < 1:
            raise BadValueError("roster seq must be >= 1")

    @property
    def record_type(self) -> str:
        return OPS[self.op][0]

    @property
    def leaf(self) -> LeafHash:
        return leaf_hash(self.raw)

    def to_bytes(self) -> bytes:
        return self.raw

    def to_json(self) -> dict[str, JSONValue]:
        return cast(dict[str, JSONValue], parse(self.raw))

    @classmethod
    def from_json(cls, obj: JSONValue) -> RosterChange:
        """Parse a change (shape only: :meth:`Roster.apply` verifies the signature)."""
        f = Fields(obj, "roster")
        t = f.str("t", max_len=16)
        f.literal("v", VERSION)
        op = f.str("op", max_len=32)
        if op not in OPS or OPS[op][0] != t:
            raise BadValueError(f"unknown {t} operation")
        change = cls(
            talks=TalksId(f.bytes("talks", length=32)),
            prev=LeafHash(f.bytes("prev", length=32)),
            seq=f.int("seq", lo=1),
            author=DeviceId(f.bytes("author", length=DEVICE_ID_LEN)),
            op=op,
            args=ChangeArgs.from_json(op, f.raw("args")),
            time=f.int("time"),
            sig=f.bytes("sig", length=64),
            raw=canonical(obj),
        )
        f.done()
        return change

    @classmethod
    def from_bytes(cls, data: bytes) -> RosterChange:
        return cls.from_json(parse(data))


def make_change(
    *,
    author: DeviceKeys,
    roster: Roster,
    op: str,
    args: ChangeArgs,
    time: int,
) -> RosterChange:
    """Create and sign a change on top of ``roster``'s current state."""
    if op not in OPS:
        raise BadValueError("unknown roster operation")
    record_type = OPS[op][0]
    body: dict[str, JSONValue] = {
        "args": args.to_json(op),
        "author": b64e(author.device_id),
        "op": op,
        "prev": b64e(roster.head),
        "seq": roster.seq + 1,
        "t": record_type,
        "talks": b64e(roster.talks),
        "time": time,
        "v": VERSION,
    }
    signed = sign_record(author.signing, CONTEXTS[record_type], body)
    return RosterChange.from_json(signed)


# --- state -------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Member:
    id: str
    name: str
    role: str
    delegation: str | None
    devices: dict[DeviceId, DevicePublic]
    active: bool = True


@dataclass(slots=True, kw_only=True)
class Delegation:
    id: str
    name: str
    head: str


@dataclass(slots=True, kw_only=True)
class Channel:
    id: str
    name: str
    kind: str
    delegations: tuple[str, ...]
    members: tuple[str, ...]


class Roster:
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
        mediator = Member(
            id=genesis.mediator,
            name=genesis.mediator_name,
            role=ROLE_MEDIATOR,
            delegation=None,
            devices={genesis.mediator_device.device_id: genesis.mediator_device},
        )
        self.members[mediator.id] = mediator
        self.devices[genesis.mediator_device.device_id] = mediator.id

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
        return new

    # -- queries ------------------------------------------------------------------------

    def device(self, device_id: bytes) -> tuple[Member, DevicePublic]:
        """The current member and public keys of a device, or :class:`UnknownDeviceError`."""
        member_id = self.devices.get(DeviceId(device_id))
        if member_id is None:
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
        """Witness name -> signing keys that may cosign for it (mediator, delegations)."""
        origin = self.genesis.origin
        out: dict[str, list[bytes]] = {
            witness_name(origin, "mediator"): [
                d.sign_pk for d in self.members[self.genesis.mediator].devices.values()
            ]
        }
        for delegation in self.delegations.values():
            head = self.members[delegation.head]
            out[witness_name(origin, delegation.id)] = [d.sign_pk for d in head.devices.values()]
        for ext in self.genesis.witness.external:
            out[ext.name] = [ext.key]
        return out

    def quorum(self) -> int:
        """Cosignatures needed for a checkpoint to be trusted at this roster state."""
        return min(self.genesis.witness.quorum, len(self.witnesses()))

    # -- transitions --------------------------------------------------------------------

    def apply(self, change: RosterChange) -> None:
        """Verify ``change`` against this state and apply it (see module docstring)."""
        author = self.check(change)
        self._handlers[change.op](self, change.args, author)
        self.head = change.leaf
        self.seq = change.seq
        self.history.append(change.leaf)

    def check(self, change: RosterChange) -> Member:
        """Run steps 1-6 without changing anything; return the author member."""
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

    # validators and effects --------------------------------------------------------------

    def _new_member_ok(self, member_id: str, devices: Iterable[DevicePublic]) -> None:
        if member_id in self.members:
            raise RosterConflictError(f"member id {member_id!r} already used")
        self._new_devices_ok(devices)

    def _new_devices_ok(self, devices: Iterable[DevicePublic]) -> None:
        for dev in devices:
            if dev.device_id in self.devices or dev.device_id in self.retired:
                raise RosterConflictError("device key already enrolled or retired")

    def _v_delegation_create(self, a: ChangeArgs) -> None:
        if a.delegation in self.delegations:
            raise RosterConflictError("delegation already exists")
        # Each witness name is one party's slot.  A delegation whose name is already taken
        # (``mediator``, or an external witness named after it in the genesis) would have
        # its cosignatures counted under another party's keys, or the reverse.
        if witness_name(self.genesis.origin, a.delegation or "") in self.witnesses():
            raise RosterConflictError("delegation id collides with an existing witness name")
        self._new_member_ok(a.member or "", a.devices)

    def _v_member_enrol(self, a: ChangeArgs) -> None:
        self._new_member_ok(a.member or "", a.devices)

    def _v_staff_enrol(self, a: ChangeArgs) -> None:
        self._new_member_ok(a.member or "", a.devices)

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

    def _v_channel_create(self, a: ChangeArgs) -> None:
        if a.channel in self.channels:
            raise RosterConflictError("channel already exists")
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
        for dev_id in member.devices:
            self.devices[dev_id] = member.id

    def _e_delegation_create(self, a: ChangeArgs, author: Member) -> None:
        self.delegations[a.delegation or ""] = Delegation(
            id=a.delegation or "", name=a.name or "", head=a.member or ""
        )
        self._add_member(a, ROLE_HEAD, a.delegation)

    def _e_member_enrol(self, a: ChangeArgs, author: Member) -> None:
        self._add_member(a, ROLE_MEMBER, a.delegation)

    def _e_staff_enrol(self, a: ChangeArgs, author: Member) -> None:
        self._add_member(a, a.role or "", None)

    def _e_member_remove(self, a: ChangeArgs, author: Member) -> None:
        target = self.members[a.member or ""]
        target.active = False
        for dev_id in target.devices:
            self.devices.pop(dev_id, None)
            self.retired.add(dev_id)

    def _e_device_add(self, a: ChangeArgs, author: Member) -> None:
        target = self.members[a.member or ""]
        for dev in a.devices:
            target.devices[dev.device_id] = dev
            self.devices[dev.device_id] = target.id

    def _e_device_remove(self, a: ChangeArgs, author: Member) -> None:
        target = self.members[a.member or ""]
        dev_id = DeviceId(a.device or b"")
        del target.devices[dev_id]
        self.devices.pop(dev_id, None)
        self.retired.add(dev_id)

    def _e_channel_create(self, a: ChangeArgs, author: Member) -> None:
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
    }


_RULES: dict[str, Callable[[Roster, Member, ChangeArgs], None]] = {
    "mediator": Roster._rule_mediator,
    "head_of_target": Roster._rule_head_of_target,
    "owner_of_target": Roster._rule_owner_of_target,
}
