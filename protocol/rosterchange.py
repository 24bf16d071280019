"""Roster and channel change records: the operation table and the signed wire form.

Which operations exist, which fields each carries, who may author it (the
:data:`AUTHORITY` table, enforced by :class:`protocol.roster.Roster`) and the one
``from_json``/``to_json`` pair of :class:`RosterChange`.  The state machine that applies
changes is :mod:`protocol.roster`; this module only knows records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from protocol import crypto
from protocol.encoding import Fields, JSONValue, b64e, canonical, parse, str_list, strictly_sorted
from protocol.errors import BadValueError
from protocol.genesis import WITNESS_NAME_RE, WitnessPolicy
from protocol.keys import DEVICE_ID_LEN, DeviceId, DeviceKeys, DevicePublic
from protocol.merkle import LeafHash, leaf_hash
from protocol.names import check_name
from protocol.records import ID_RE, NAME_MAX, VERSION, TalksId, sign_record


class RosterHead(Protocol):
    """What a new change is chained to: a roster state's head, seq and talks."""

    @property
    def head(self) -> LeafHash: ...
    @property
    def seq(self) -> int: ...
    @property
    def talks(self) -> TalksId: ...


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
    "witness.set": ("roster", ("witness", "key", "party")),
    "witness.remove": ("roster", ("witness",)),
    "policy.set": ("roster", ("policy",)),
    # Device and people lifecycle (docs/PROTOCOL.md section 5a).
    "device.propose": ("roster", ("member", "devices")),
    "device.rotate": ("roster", ("member", "device", "devices")),
    "device.revoke": ("roster", ("member", "device", "since")),
    "delegation.head": ("roster", ("delegation", "member")),
    "member.leave": ("roster", ("member",)),
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
    "witness.set": "witness_party",
    "witness.remove": "witness_party",
    "policy.set": "mediator",
    "device.propose": "self",
    "device.rotate": "owner_of_target",
    "device.revoke": "owner_of_target",
    "delegation.head": "mediator",
    "member.leave": "self",
}
# "self": an enrolled device of the target member itself (a member's own devices propose
# a new device for the head to approve; a member leaves on their own authority).
# A witness party: the mediator's side, a delegation (by id), or an outside observer.
PARTY_MEDIATOR = "mediator"
PARTY_OUTSIDE = "outside"

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
    witness: str | None = None
    key: bytes | None = None
    party: str | None = None
    policy: WitnessPolicy | None = None
    since: int | None = None
    """``device.revoke``: the first log index the device is declared compromised from."""

    def to_json(self, op: str) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {}
        for key in OPS[op][1]:
            value: Any = getattr(self, key)
            if key == "devices":
                out[key] = [d.to_json() for d in value]
            elif key in ("device", "key"):
                out[key] = b64e(value)
            elif key == "policy":
                out[key] = value.to_json()
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
                kw[key] = check_name(f.str(key, max_len=NAME_MAX), f"{op}.args.{key}")
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
            elif key == "witness":
                kw[key] = f.str(key, max_len=200, pattern=WITNESS_NAME_RE)
            elif key == "key":
                kw[key] = f.bytes(key, length=32)
                crypto.check_signing_key(kw[key])
            elif key == "party":
                kw[key] = f.str(key, max_len=64)
                if kw[key] not in (PARTY_MEDIATOR, PARTY_OUTSIDE) and not ID_RE.fullmatch(kw[key]):
                    raise BadValueError(f"{op}.args.party must be mediator, outside or an id")
            elif key == "policy":
                kw[key] = WitnessPolicy.from_json(f.raw(key), f"{op}.args.policy")
            elif key == "since":
                kw[key] = f.int(key, lo=1)
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
        f.version(VERSION)
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
    roster: RosterHead,
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
