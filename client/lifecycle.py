"""Devices and people over months of talks: new devices, rotation, revocation, heads
replaced, members leaving, history grants (docs/PROTOCOL.md section 5a).

1. **New device.**  The member's head (the mediator, on the mediator's side) or one of
   the member's own devices creates a device invitation; the new laptop joins with it
   (``docket join``) and reads its fingerprint aloud.  The head enrols it with a logged
   ``device.add``.  A member's own device instead logs ``device.propose`` (signed by a
   device the log already trusts, so the host cannot substitute the key) and the head
   approves the proposal with ``device.add`` (``docket device approve``).
2. **Rotation.**  Only the owner (head, or mediator for the mediator's side) logs
   ``device.rotate``.  A head or the mediator rotates their own device directly; a
   member's device proposes its new keys and the head rotates them in; the member's
   device then finishes (``docket device rotate`` again), keeping its old keys as
   former keys so drafts wrapped to the old id still open here.
3. **Revocation** names the first log index the device is declared compromised from;
   ``--compromised-since`` accepts an index or a time, which is turned into the first
   logged index whose entry carries a signed time at or after it (an index is the
   stronger statement: a thief can sign any time).
4. **Grants** re-wrap the content keys this device holds (as a recipient, or by an
   earlier grant) to a new device in the channel (:mod:`protocol.grants`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from client import keystore
from client.acts import Acts
from client.admin import Admin, Invitation, InvitationCode, _check_fingerprint
from client.core import ClientCore, Sent, now_ms, verified_promise
from client.errors import NetworkError, ServerError, StateError, UsageError
from client.logsync import LogSync
from client.opener import DraftOpener
from client.state import OPENED
from protocol.encoding import JSONValue, b64d, b64e, parse
from protocol.errors import ProtocolError
from protocol.grants import FAMILY as GRANTS
from protocol.grants import KIND as GRANT_KIND
from protocol.grants import GrantState, make_grant_body
from protocol.keys import DeviceId, DeviceKeys, DevicePublic
from protocol.receipt import Promise
from protocol.roster import ROLE_MEDIATOR, ChangeArgs, Roster, make_change

ROLE_DEVICE = "device"
PENDING_DIR = "pending-keys"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceLine:
    """One device of a member as the verified log shows it."""

    device: DeviceId
    member: str
    fingerprint: str
    status: str

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "device": b64e(self.device),
            "fingerprint": self.fingerprint,
            "member": self.member,
            "status": self.status,
        }


def owns(roster: Roster, author: str, member: str) -> bool:
    """Whether ``author`` is the owner of ``member`` (their head; the mediator on the
    mediator's side), the authority for device changes."""
    target = roster.members[member]
    if target.delegation is None:
        return roster.members[author].role == ROLE_MEDIATOR
    return roster.delegations[target.delegation].head == author


def device_lines(roster: Roster, member: str | None = None) -> list[DeviceLine]:
    """Every current, proposed and former device (of ``member``, or of everyone)."""
    out = []
    for m in sorted(roster.members.values(), key=lambda m: m.id):
        if member is not None and m.id != member:
            continue
        for dev_id, dev in sorted(m.devices.items()):
            out.append(
                DeviceLine(
                    device=dev_id, member=m.id, fingerprint=dev.fingerprint, status="current"
                )
            )
    for dev_id, (owner, dev, proposer) in sorted(roster.proposals.items()):
        if member is None or owner == member:
            out.append(
                DeviceLine(
                    device=dev_id,
                    member=owner,
                    fingerprint=dev.fingerprint,
                    status=f"proposed by {b64e(proposer)}",
                )
            )
    for dev_id, (owner, dev) in sorted(roster.former_devices.items()):
        if member is not None and owner != member:
            continue
        end = roster.device_ends.get(dev_id)
        status = "former" if end is None else f"{end.op} at index {end.at} by {end.by}"
        revocation = roster.revoked.get(dev_id)
        if revocation is not None:
            status += f"; compromised since index {revocation.since}"
        out.append(
            DeviceLine(device=dev_id, member=owner, fingerprint=dev.fingerprint, status=status)
        )
    return out


class Lifecycle:
    """Device and people changes and history grants (see the module docstring)."""

    def __init__(
        self, core: ClientCore, logsync: LogSync, admin: Admin, acts: Acts, opener: DraftOpener
    ) -> None:
        self.core = core
        self.logsync = logsync
        self.admin = admin
        self.acts = acts
        self.opener = opener

    # -- devices ----------------------------------------------------------------------

    def _member(self, member: str | None) -> str:
        me = self.core.me()
        target = member or me
        if target not in self.core.roster.members or not self.core.roster.members[target].active:
            raise UsageError(f"no current member {target!r}")
        return target

    def _device(self, member: str, device: str) -> DeviceId:
        """A device id given as base64url or as a unique prefix of it."""
        roster = self.core.roster
        ids = [
            d
            for d, m in [
                *roster.devices.items(),
                *((k, v[0]) for k, v in roster.former_devices.items()),
            ]
            if m == member and b64e(d).startswith(device)
        ]
        if len(ids) != 1:
            raise UsageError(
                f"{device!r} names {len(ids)} devices of {member} (see 'docket device list')"
            )
        return ids[0]

    async def invite_device(self, member: str | None = None) -> Invitation:
        """A device invitation for ``member`` (default: this member)."""
        core = self.core
        await self.logsync.sync()
        target = self._member(member)
        me = core.me()
        if target != me and not owns(core.roster, me, target):
            raise UsageError("a member's head or the member invites a new device")
        delegation = core.roster.members[target].delegation
        answer = await core.transport().post(
            "/v1/invitations", {"delegation": delegation, "member": target, "role": ROLE_DEVICE}
        )
        if not isinstance(answer, dict):
            raise NetworkError("server sent an invalid invitation")
        inv_id, token = answer.get("id"), answer.get("token")
        if not isinstance(inv_id, str) or not isinstance(token, str):
            raise NetworkError("server sent an invalid invitation")
        created = dict(core.state.get("invitations", {}))
        created[target] = {"delegation": delegation, "id": inv_id, "role": ROLE_DEVICE}
        core.state.set("invitations", created)
        code = InvitationCode(
            server=core.server,
            talks=core.genesis().talks_id,
            id=inv_id,
            token=token,
            member=target,
            role=ROLE_DEVICE,
            delegation=delegation,
        ).encode()
        expires = answer.get("expires")
        return Invitation(
            id=inv_id,
            token=token,
            member=target,
            role=ROLE_DEVICE,
            delegation=delegation,
            expires=expires if isinstance(expires, int) else 0,
            code=code,
        )

    async def add_device(
        self, member: str, *, expect_fingerprint: str | None
    ) -> tuple[Sent, DevicePublic, bool]:
        """Enrol (owner) or propose (the member's own device) the device that accepted
        this device's invitation; returns where it was logged, the keys, and whether
        it was only proposed."""
        core = self.core
        await self.logsync.sync()
        device, _name, inv = await self.admin._accepted(member)
        if inv.get("role") != ROLE_DEVICE:
            raise UsageError(f"the invitation for {member!r} is not a device invitation")
        _check_fingerprint(device, expect_fingerprint)
        me = core.me()
        if owns(core.roster, me, member):
            sent = await self.admin._submit_change(
                "device.add", ChangeArgs(member=member, devices=(device,))
            )
            return sent, device, False
        if me != member:
            raise UsageError("only the member's head or the member's own devices add a device")
        sent = await self.admin._submit_change(
            "device.propose", ChangeArgs(member=member, devices=(device,))
        )
        return sent, device, True

    def _proposal(self, member: str, device: str | None, fingerprint: str | None) -> DevicePublic:
        found = [
            (d, pub)
            for d, (owner, pub, _by) in self.core.roster.proposals.items()
            if owner == member and (device is None or b64e(d).startswith(device))
        ]
        if len(found) != 1:
            raise UsageError(
                f"{len(found)} matching proposed devices for {member} (see 'docket device list')"
            )
        _check_fingerprint(found[0][1], fingerprint)
        return found[0][1]

    async def approve_device(
        self, member: str, *, device: str | None, fingerprint: str | None
    ) -> Sent:
        """Head: enrol a device the member's own device proposed (``device.add``)."""
        await self.logsync.sync()
        public = self._proposal(member, device, fingerprint)
        return await self.admin._submit_change(
            "device.add", ChangeArgs(member=member, devices=(public,))
        )

    async def remove_device(self, member: str, device: str) -> Sent:
        await self.logsync.sync()
        dev = self._device(member, device)
        return await self.admin._submit_change(
            "device.remove", ChangeArgs(member=member, device=dev)
        )

    async def revoke_device(self, member: str, device: str, *, since: str) -> tuple[Sent, int]:
        """Revoke a device declared compromised since an index or a time (ms, or ISO)."""
        await self.logsync.sync()
        dev = self._device(member, device)
        index = self._since_index(since)
        sent = await self.admin._submit_change(
            "device.revoke", ChangeArgs(member=member, device=dev, since=index)
        )
        return sent, index

    def _since_index(self, since: str) -> int:
        log = self.core.log
        if since.isdigit() and int(since) < 10**9:
            index = int(since)
            if not 1 <= index <= log.size:
                raise UsageError(f"--compromised-since must be an index from 1 to {log.size}")
            return index
        ms = _parse_time(since)
        for i in range(1, log.size):
            obj = parse(log.entries[i])
            t = obj.get("time") if isinstance(obj, dict) else None
            if isinstance(t, int) and not isinstance(t, bool) and t >= ms:
                return i
        return log.size

    async def _post_own_exit(self, op: str, args: ChangeArgs) -> Promise:
        """Sign, check and post a change that takes this very device out of the roster
        (rotating or leaving): once it is logged, this device's login no longer works,
        so the change is not waited for with the old keys; the server's verified,
        kept promise is the receipt of it."""
        core = self.core
        core.check_not_frozen()
        await self.admin._require_current()
        change = make_change(author=core.keys, roster=core.roster, op=op, args=args, time=now_ms())
        try:
            core.roster.copy().apply(change, index=core.log.size)
        except ProtocolError as exc:
            raise UsageError(f"{exc.code}: {exc.detail}") from exc
        answer = await core.transport().post("/v1/roster", change.to_json())
        promise = verified_promise(answer, core.genesis(), change.leaf)
        self.logsync.keep_promise(promise)
        return promise

    async def _sync_as(self, keys: DeviceKeys) -> bool:
        """Sync logged in as ``keys`` (a pending rotation's); False if refused."""
        core = self.core
        old = core.keys
        core.replace_keys(keys)
        core.forget_transport()
        try:
            await self.logsync.sync()
        except ServerError as exc:
            if exc.status != 401:
                raise
            core.restore_keys(old)
            core.forget_transport()
            return False
        return True

    async def rotate(self, member: str | None = None, device: str | None = None) -> dict[str, Any]:
        """Rotate keys (see the module docstring, step 2).  Returns what happened."""
        core = self.core
        pending_home = core.home / PENDING_DIR
        passphrase = core.passphrase_used()
        if member is None and keystore.keystore_path(pending_home).exists():
            pending = keystore.unlock(pending_home, passphrase)
            old_id = core.device_id
            try:
                await self.logsync.sync()
            except ServerError as exc:
                if exc.status != 401 or not await self._sync_as(pending):
                    raise
                if core.roster.rotations.get(old_id) != pending.device_id:
                    raise UsageError(
                        "this device is out of the roster and was not rotated"
                    ) from exc
                keystore.rotate_keystore(core.home, passphrase, pending, core.rng)
                core.remember_former(old_id)
                shutil.rmtree(pending_home, ignore_errors=True)
                return {
                    "state": "rotated",
                    "new_device": b64e(pending.device_id),
                    "fingerprint": pending.public.fingerprint,
                }
            if not owns(core.roster, core.me(), core.me()):
                return {"state": "waiting", "new_device": b64e(pending.device_id)}
            # An owner's own rotation that never got logged (the post failed): the
            # old keys still work, so the kept-aside keys are dropped and it starts over.
            shutil.rmtree(pending_home, ignore_errors=True)
        await self.logsync.sync()
        me = core.me()
        roster = core.roster
        if member is not None:
            # The owner rotates in the keys a member's device proposed.
            if device is None:
                raise UsageError("name the device to rotate (see 'docket device list')")
            old = self._device(member, device)
            proposed = [
                pub for owner, pub, by in roster.proposals.values() if owner == member and by == old
            ]
            if len(proposed) != 1:
                raise UsageError(
                    "that device has not proposed new keys ('docket device rotate' on it)"
                )
            sent = await self.admin._submit_change(
                "device.rotate", ChangeArgs(member=member, device=old, devices=(proposed[0],))
            )
            new_id = b64e(proposed[0].device_id)
            return {"state": "rotated", "index": sent.index, "new_device": new_id}
        new = DeviceKeys.generate(core.rng)
        if owns(roster, me, me):
            # The new keys are kept aside first, so a crash after the post loses nothing.
            keystore.ensure_home(pending_home)
            keystore.write_keystore(pending_home, new, (), passphrase, core.rng)
            promise = await self._post_own_exit(
                "device.rotate", ChangeArgs(member=me, device=core.device_id, devices=(new.public,))
            )
            out = self._finish(new, pending_home)
            await self.logsync.wait_for(promise.index)
            out["index"] = promise.index
            return out
        keystore.ensure_home(pending_home)
        keystore.write_keystore(pending_home, new, (), passphrase, core.rng)
        sent = await self.admin._submit_change(
            "device.propose", ChangeArgs(member=me, devices=(new.public,))
        )
        return {
            "state": "proposed",
            "index": sent.index,
            "new_device": b64e(new.device_id),
            "fingerprint": new.public.fingerprint,
        }

    def _finish(self, new: DeviceKeys, pending_home: Any) -> dict[str, Any]:
        """Make ``new`` this home's keys (the old ones kept as former keys)."""
        core = self.core
        core.remember_former(core.device_id)
        keystore.rotate_keystore(core.home, core.passphrase_used(), new, core.rng)
        core.replace_keys(new)
        core.forget_transport()
        if pending_home is not None:
            shutil.rmtree(pending_home, ignore_errors=True)
        return {
            "state": "rotated",
            "new_device": b64e(new.device_id),
            "fingerprint": new.public.fingerprint,
        }

    # -- people -----------------------------------------------------------------------

    async def replace_head(self, delegation: str, member: str) -> Sent:
        """Mediator: make ``member`` the head of ``delegation`` (``delegation.head``)."""
        return await self.admin._submit_change(
            "delegation.head", ChangeArgs(delegation=delegation, member=member)
        )

    async def leave(self) -> Sent:
        """Leave the talks (``member.leave``): this member's devices are retired.  The
        departure is remembered from the server's verified promise (this device can no
        longer read the log to see it)."""
        core = self.core
        await self.logsync.sync()
        me = core.me()
        promise = await self._post_own_exit("member.leave", ChangeArgs(member=me))
        core.state.set("departed", {"at": promise.index, "by": me, "op": "member.leave"})
        return Sent(index=promise.index, leaf=promise.leaf)

    # -- history grants -----------------------------------------------------------------

    def held(self, channel: str, upto: int, exclude: DeviceId) -> list[int]:
        """Drafts of ``channel`` up to ``upto`` whose key this device holds and the
        device ``exclude`` does not."""
        core = self.core
        log = core.log
        me = core.device_id
        grants = log.ledger.act_state(GRANTS.name)
        out = []
        for state in log.ledger.drafts_in(channel):
            if state.index > upto:
                continue
            recipients = state.header.recipients
            mine = me in recipients or (
                isinstance(grants, GrantState) and grants.holds(me, state.index)
            )
            theirs = exclude in recipients or (
                isinstance(grants, GrantState) and grants.holds(exclude, state.index)
            )
            if mine and not theirs:
                out.append(state.index)
        return sorted(out)

    async def grant(
        self,
        member: str,
        device: str,
        *,
        channel: str,
        upto: int | None = None,
        indices: Iterable[int] | None = None,
    ) -> tuple[Sent, list[int]]:
        """Grant ``member``'s ``device`` the history of ``channel`` (every draft this
        device holds up to ``upto``, or ``indices``)."""
        core = self.core
        await self.logsync.sync()
        dev = self._device(member, device)
        roster = core.roster
        if dev not in roster.devices:
            raise UsageError("that device is not current")
        public = roster.members[member].devices[dev]
        last = core.log.size - 1 if upto is None else upto
        chosen = self.held(channel, last, dev) if indices is None else sorted(set(indices))
        if not chosen:
            raise UsageError(f"no drafts of {channel!r} to grant (none held, or all granted)")
        keys: dict[int, bytes] = {}
        for index in chosen:
            await self.opener.ensure_opened(index, offline=False)
            record = core.state.draft_record(index)
            if (
                record is None
                or record.status != OPENED
                or record.keys is None
                or record.ciphertext is None
            ):
                raise StateError(f"draft {index} is not open here; it cannot be granted")
            wrapped = {DeviceId(bytes(_b64(k))): _b64(v) for k, v in record.keys.items()}
            keys[index] = self.opener.open_full(index, wrapped, record.ciphertext).content_key
        body = make_grant_body(
            channel=channel, device=public, upto=last, content_keys=keys, rng=core.rng
        )
        sent = await self.acts.submit(GRANT_KIND, body)
        return sent, chosen


def _b64(value: str) -> bytes:
    return b64d(value)


def _parse_time(value: str) -> int:
    """Milliseconds from an integer (ms since the epoch) or an ISO 8601 time."""
    if value.isdigit():
        return int(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            "--compromised-since takes a log index, a time in ms or ISO 8601"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)
