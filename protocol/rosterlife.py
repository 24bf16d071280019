"""The roster's state records and its lifecycle rules (docs/PROTOCOL.md section 5a).

:class:`protocol.roster.Roster` is the one state machine; this module holds the records
its state is made of (:class:`Member`, :class:`Delegation`, :class:`Revocation`,
:class:`Departure`) and, as the :class:`Lifecycle` base it inherits, the validators
and effects of the device and people lifecycle: proposals, rotation, revocation, head
replacement, leaving, and the records kept of devices no longer current.  The rules of
:mod:`protocol.roster`'s docstring apply unchanged (every validator runs before any
effect; a refused change changes nothing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocol.errors import RosterConflictError
from protocol.keys import DeviceId, DevicePublic
from protocol.rosterchange import MAX_DEVICES_PER_MEMBER, ROLE_HEAD, ROLE_MEMBER, ChangeArgs


@dataclass(slots=True, kw_only=True)
class Member:
    id: str
    name: str
    role: str
    delegation: str | None
    devices: dict[DeviceId, DevicePublic]
    active: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Revocation:
    """A device declared compromised from log index ``since``, revoked at index ``at``."""

    member: str
    device: DeviceId
    since: int
    at: int
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Departure:
    """How a member left the roster: ``op`` (``member.remove`` or ``member.leave``),
    the member who signed it and the log index."""

    op: str
    by: str
    at: int


@dataclass(slots=True, kw_only=True)
class Delegation:
    id: str
    name: str
    head: str


class Lifecycle:
    """The lifecycle part of :class:`protocol.roster.Roster` (its state is declared
    and kept there; the methods below only read and change it)."""

    members: dict[str, Member]
    delegations: dict[str, Delegation]
    devices: dict[DeviceId, str]
    retired: set[DeviceId]
    used_keys: set[bytes]
    former_devices: dict[DeviceId, tuple[str, DevicePublic]]
    revoked: dict[DeviceId, Revocation]
    rotations: dict[DeviceId, DeviceId]
    proposals: dict[DeviceId, tuple[str, DevicePublic, DeviceId]]
    departures: dict[str, Departure]
    device_ends: dict[DeviceId, Departure]
    _at: int
    _author: DeviceId

    if TYPE_CHECKING:  # provided by Roster, which mixes this class in

        def member(self, member_id: str) -> Member: ...

        def _new_devices_ok(self, devices: Iterable[DevicePublic]) -> None: ...

        def _e_member_remove(self, a: ChangeArgs, author: Member) -> None: ...

        def _e_device_add(self, a: ChangeArgs, author: Member) -> None: ...

    # -- queries --------------------------------------------------------------------

    def compromised(self, device_id: bytes, index: int) -> Revocation | None:
        """The revocation under which an entry ``device_id`` signed at log ``index`` is
        "signed after a declared compromise" (``None``: not revoked, or signed before the
        declared point)."""
        revocation = self.revoked.get(DeviceId(device_id))
        if revocation is None or index < revocation.since:
            return None
        return revocation

    def device_public(self, device_id: bytes) -> tuple[str, DevicePublic] | None:
        """The member and keys of a current or former device (for attributing old
        signatures after a removal, rotation or revocation)."""
        member_id = self.devices.get(DeviceId(device_id))
        if member_id is not None:
            return member_id, self.members[member_id].devices[DeviceId(device_id)]
        return self.former_devices.get(DeviceId(device_id))

    def _v_device_propose(self, a: ChangeArgs) -> None:
        target = self.member(a.member or "")
        if len(target.devices) + len(a.devices) > MAX_DEVICES_PER_MEMBER:
            raise RosterConflictError("too many devices")
        for dev in a.devices:
            if dev.device_id in self.proposals:
                raise RosterConflictError("device already proposed")
        self._new_devices_ok(a.devices)

    def _v_device_rotate(self, a: ChangeArgs) -> None:
        target = self.member(a.member or "")
        if a.device not in target.devices:
            raise RosterConflictError("member has no such device")
        if len(a.devices) != 1:
            raise RosterConflictError("a rotation names exactly one new device")
        self._new_devices_ok(a.devices)

    def _v_device_revoke(self, a: ChangeArgs) -> None:
        target = self.member(a.member or "")
        dev_id = DeviceId(a.device or b"")
        former = self.former_devices.get(dev_id)
        if dev_id not in target.devices and (former is None or former[0] != target.id):
            raise RosterConflictError("member has no such device")
        if dev_id in self.revoked:
            raise RosterConflictError("device is already revoked")

    def _v_delegation_head(self, a: ChangeArgs) -> None:
        delegation = self.delegations.get(a.delegation or "")
        if delegation is None:
            raise RosterConflictError("no such delegation")
        target = self.member(a.member or "")
        if target.delegation != delegation.id or target.role != ROLE_MEMBER:
            raise RosterConflictError("the new head must be a member of that delegation")

    def _retire(self, member: Member, dev_id: DeviceId, op: str, by: str) -> None:
        """Take a current device out for good (its keys stay attributable)."""
        dev = member.devices.pop(dev_id)
        self.devices.pop(dev_id, None)
        self.retired.add(dev_id)
        self.former_devices[dev_id] = (member.id, dev)
        self.device_ends[dev_id] = Departure(op=op, by=by, at=self._at)

    def _e_member_leave(self, a: ChangeArgs, author: Member) -> None:
        self._e_member_remove(a, author)
        gone = Departure(op="member.leave", by=author.id, at=self._at)
        self.departures[a.member or ""] = gone
        for dev_id in self.members[a.member or ""].devices:
            self.device_ends[dev_id] = gone

    def _e_device_propose(self, a: ChangeArgs, author: Member) -> None:
        proposer = self._author
        for dev in a.devices:
            self.proposals[dev.device_id] = (a.member or "", dev, proposer)

    def _e_device_rotate(self, a: ChangeArgs, author: Member) -> None:
        target = self.members[a.member or ""]
        old = DeviceId(a.device or b"")
        self._retire(target, old, "device.rotate", author.id)
        self._e_device_add(a, author)
        self.rotations[old] = a.devices[0].device_id

    def _e_device_revoke(self, a: ChangeArgs, author: Member) -> None:
        target = self.members[a.member or ""]
        dev_id = DeviceId(a.device or b"")
        if dev_id in target.devices:
            self._retire(target, dev_id, "device.revoke", author.id)
        self.revoked[dev_id] = Revocation(
            member=target.id, device=dev_id, since=a.since or 0, at=self._at, by=author.id
        )

    def _e_delegation_head(self, a: ChangeArgs, author: Member) -> None:
        delegation = self.delegations[a.delegation or ""]
        self.members[delegation.head].role = ROLE_MEMBER
        self.members[a.member or ""].role = ROLE_HEAD
        delegation.head = a.member or ""
