"""Invitations: how a new member's device keys reach the person who enrols them.

The server only carries keys; it never enrols anybody.  The inviter (the mediator for
heads and staff, a head for members of their own delegation) creates an invitation and
hands its token to the invitee out of band.  The invitee accepts with the token, the
new device's public keys and a ``CTX_JOIN`` signature by that device.  The inviter
lists their invitations, checks the fingerprint with the invitee, and signs the roster
change; when a change enrolling that member id is logged, the invitation becomes
``used`` (in the same transaction, see the sequencer).
"""

from __future__ import annotations

import os

from protocol import crypto
from protocol.encoding import Fields, b64d, b64e, canonical, parse
from protocol.errors import BadValueError, DuplicateError, ProtocolError, RosterConflictError
from protocol.keys import DevicePublic
from protocol.names import check_distinct
from protocol.records import verify_record
from protocol.roster import ROLE_HEAD, ROLE_MEDIATOR, ROLE_MEMBER, STAFF_ROLES
from server.clock import Clock
from server.errors import BadTokenError, ForbiddenError, NotFoundError
from server.services.auth import Caller
from server.services.state import LogState
from server.storage.auth import (
    InvitationRow,
    accept_invitation_txn,
    get_meta_txn,
    insert_invitation_txn,
    invitation_txn,
    invitations_by_txn,
    set_meta_txn,
)
from server.storage.db import Store

SHORT_SEALED_MAX = 4096
INVITATION_ID_LEN = 16
INVITATION_TOKEN_LEN = 32
ROLE_DEVICE = "device"
"""An invitation for a new device of an existing member (docs/PROTOCOL.md section 5a):
created by the member's head (the mediator, on the mediator's side) or by one of the
member's own devices; the keys it carries are enrolled only by a logged ``device.add``
(or proposed by the member's device with ``device.propose``)."""
ROLES = (ROLE_HEAD, ROLE_MEMBER, *STAFF_ROLES, ROLE_DEVICE)


class InvitationService:
    """Create, list and accept invitations (see the module docstring)."""

    def __init__(self, *, state: LogState, store: Store, clock: Clock, ttl: float) -> None:
        self._state = state
        self._store = store
        self._clock = clock
        self._ttl_ms = int(ttl * 1000)

    async def create(
        self, caller: Caller, *, delegation: str | None, member: str, role: str
    ) -> tuple[str, bytes, int]:
        """Create an invitation; return its id, token and expiry (ms)."""
        ledger = self._state.require_ledger()
        self._state.require_writable()
        roster = ledger.roster
        if role not in ROLES:
            raise BadValueError(f"role must be one of {', '.join(ROLES)}")
        if role == ROLE_DEVICE:
            target = roster.members.get(member)
            if target is None or not target.active:
                raise RosterConflictError("a device invitation names a current member")
            owner = (
                caller.role == ROLE_MEDIATOR
                if target.delegation is None
                else roster.delegations[target.delegation].head == caller.member.id
            )
            if not owner and caller.member.id != member:
                raise ForbiddenError("a member's head or the member invites a new device")
            delegation = target.delegation
        elif caller.role == ROLE_MEDIATOR:
            if role == ROLE_HEAD:
                if delegation is None:
                    raise BadValueError("a head invitation names the delegation to create")
                if delegation in roster.delegations:
                    raise RosterConflictError("that delegation already exists")
            elif role in STAFF_ROLES:
                if delegation is not None:
                    raise BadValueError("staff, observers and auditors belong to no delegation")
            else:
                raise ForbiddenError("members are invited by their delegation's head")
        elif caller.role == ROLE_HEAD:
            if role != ROLE_MEMBER or delegation != caller.member.delegation:
                raise ForbiddenError("a head invites members of their own delegation only")
        else:
            raise ForbiddenError("only the mediator and delegation heads invite")
        if role != ROLE_DEVICE and member in roster.members:
            raise RosterConflictError("that member id is already in the roster")
        now = self._clock()
        invitation_id = b64e(os.urandom(INVITATION_ID_LEN))
        token = os.urandom(INVITATION_TOKEN_LEN)
        row = InvitationRow(
            id=invitation_id,
            token_hash=crypto.sha256(token),
            inviter=caller.member.id,
            delegation=delegation,
            member=member,
            role=role,
            state="open",
            device=None,
            name=None,
            expires=now + self._ttl_ms,
            created=now,
        )
        await self._store.write(insert_invitation_txn, row)
        return invitation_id, token, row.expires

    async def list_for(self, caller: Caller) -> list[InvitationRow]:
        """The invitations the caller's member created."""
        self._state.require_ledger()
        return await self._store.read(invitations_by_txn, caller.member.id)

    async def accept(
        self, invitation_id: str, *, token: bytes, device: DevicePublic, name: str, sig: bytes
    ) -> None:
        """Record the invitee's device keys (see the module docstring)."""
        ledger = self._state.require_ledger()
        self._state.require_writable()
        try:
            b64d(invitation_id, length=INVITATION_ID_LEN, what="invitation")
        except ProtocolError:
            raise NotFoundError("no such invitation") from None
        row = await self._store.read(invitation_txn, invitation_id)
        if row is None:
            raise NotFoundError("no such invitation")
        if not crypto.equal(crypto.sha256(token), row.token_hash) or row.expires <= self._clock():
            raise BadTokenError("wrong or expired invitation token")
        device_json = canonical(device.to_json())
        if row.state == "accepted" and row.device == device_json and row.name == name:
            return  # the same acceptance again: nothing to do
        if row.state != "open":
            raise DuplicateError(f"the invitation is already {row.state}")
        record = {
            "device": device.to_json(),
            "invitation": invitation_id,
            "name": name,
            "sig": b64e(sig),
            "talks": b64e(ledger.talks),
        }
        verify_record(device.sign_pk, crypto.CTX_JOIN, record)
        if row.role != "device":
            # A new device of an enrolled member carries that member's own name; any
            # other newcomer must not look like someone already in the talks.
            check_distinct(name, ledger.roster.skeletons["member"], "display name")
        roster = ledger.roster
        if (
            device.device_id in roster.devices
            or device.device_id in roster.retired
            or device.sign_pk in roster.used_keys
            or device.enc_pk in roster.used_keys
        ):
            raise RosterConflictError("that device key is already enrolled or retired")
        if not await self._store.write(accept_invitation_txn, invitation_id, device_json, name):
            raise DuplicateError("the invitation was accepted concurrently")

    # -- short codes (client/shortcode.py) ----------------------------------------------
    #
    # The inviter stores its full code sealed under a key only the short code gives,
    # under a handle derived from it; the server never sees the short code, the token in
    # clear or the code.  One meta row per handle (``short:<handle>``), valid while its
    # invitation is open, so no schema change is needed for it.

    async def store_short(
        self, caller: Caller, invitation_id: str, *, handle: bytes, sealed: bytes
    ) -> None:
        """Keep the inviter's sealed code under ``handle`` (the inviter only)."""
        self._state.require_ledger()
        self._state.require_writable()
        row = await self._store.read(invitation_txn, invitation_id)
        if row is None or row.inviter != caller.member.id:
            raise NotFoundError("no such invitation")
        if row.state != "open" or row.expires <= self._clock():
            raise DuplicateError(f"the invitation is already {row.state}")
        if not 0 < len(sealed) <= SHORT_SEALED_MAX:
            raise BadValueError("short.sealed: empty or too large")
        value = canonical({"id": invitation_id, "sealed": b64e(sealed)})
        await self._store.write(set_meta_txn, _short_key(handle), value)

    async def lookup_short(self, handle: bytes) -> bytes:
        """The sealed code under ``handle`` while its invitation is open, else 404."""
        self._state.require_ledger()
        value = await self._store.read(get_meta_txn, _short_key(handle))
        if value is None:
            raise NotFoundError("no invitation under this short code")
        f = Fields(parse(value), "short")
        invitation_id = f.str("id", max_len=64)
        sealed = f.bytes("sealed", max_len=SHORT_SEALED_MAX)
        f.done()
        row = await self._store.read(invitation_txn, invitation_id)
        if row is None or row.state != "open" or row.expires <= self._clock():
            raise NotFoundError("no invitation under this short code")
        return sealed


def _short_key(handle: bytes) -> str:
    return f"short:{b64e(handle)}"
