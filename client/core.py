"""``ClientCore``: what every capability of the client shares.

The core owns one home directory: the encrypted key store, the verified local state
(:mod:`client.state`), the transport (:mod:`client.transport`), the pinned genesis and
the verified log and roster replayed from that state.  It records alarms and holds the
frozen check; it neither syncs nor signs anything itself.  The capabilities
(:mod:`client.admin`, :mod:`client.logsync`, :mod:`client.drafts`,
:mod:`client.receipts`, :mod:`client.evidence`, :mod:`client.audit`) each take a core,
and :class:`client.api.DocketClient` composes them (the theory of operation is in
:mod:`client.api`).

6. **Frozen.**  After a ``rollback`` or ``fork`` alarm the client refuses to send
   (:meth:`ClientCore.check_not_frozen`): what it would sign could be shown to others on
   a history it does not share.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client import keystore, tls
from client.errors import Alarm, NetworkError, UsageError
from client.state import LocalState, VerifiedLog
from client.transport import Credentials, Transport
from protocol import crypto
from protocol.encoding import JSONValue, b64d, b64e
from protocol.errors import ProtocolError
from protocol.genesis import Genesis, witness_name
from protocol.keys import DeviceId, DeviceKeys, DevicePublic, readable_digits
from protocol.receipt import Promise
from protocol.roster import ROLE_HEAD, ROLE_MEDIATOR, Roster

# A server that promised an entry and has not checkpointed it after this long is showing
# a stale log (it checkpoints every second or so when healthy).
STALE_PROMISE_MS = 5 * 60 * 1000

PassphraseSource = str | Callable[[], str] | None

EnsureOpened = Callable[[int], Awaitable[None]]
RequireCurrent = Callable[[], Awaitable[object]]
"""Sync until a fresh witness quorum vouches for the view, or raise (client.freshness)."""
"""Make sure the draft at a log index is fetched, verified and cached (what
:meth:`client.drafts.DraftOpener.ensure_opened` does; receipts and evidence need it)."""


def now_ms() -> int:
    """Wall-clock time in integer milliseconds (the protocol's time unit)."""
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """A draft (or roster change) the server promised to log."""

    index: int
    leaf: bytes
    draft: bytes | None = None
    version: int | None = None
    msg: bytes | None = None

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        out: dict[str, JSONValue] = {"index": self.index, "leaf": b64e(self.leaf)}
        if self.draft is not None:
            out["draft"] = b64e(self.draft)
            out["version"] = self.version
            out["msg"] = b64e(self.msg or b"")
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """Who this home is."""

    device: DevicePublic
    member: str | None
    role: str | None
    delegation: str | None
    server: str | None
    talks_fingerprint: str | None
    talks: bytes | None
    enrolled: bool
    witness: str | None = None
    alarms: tuple[str, ...] = field(default_factory=tuple)
    status: str = ""
    """``enrolled``, ``not yet``, or how this device stopped being current, e.g.
    ``removed at index 12 by nh`` (from the verified log)."""

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "alarms": list(self.alarms),
            "delegation": self.delegation,
            "device": b64e(self.device.device_id),
            "enrolled": self.enrolled,
            "fingerprint": self.device.fingerprint,
            "member": self.member,
            "role": self.role,
            "server": self.server,
            "status": self.status or ("enrolled" if self.enrolled else "not yet"),
            "talks": b64e(self.talks) if self.talks else None,
            "talks_fingerprint": self.talks_fingerprint,
            "witness": self.witness,
        }


# --- helpers -------------------------------------------------------------------------


def verified_promise(answer: Any, genesis: Genesis, leaf: bytes) -> Promise:
    """Verify the server's promise for a write of ``leaf``."""
    if not isinstance(answer, dict) or "promise" not in answer:
        raise NetworkError("server answer lacks a promise")
    try:
        promise = Promise.from_json(answer["promise"])
        promise.verify(genesis.log_key)
    except ProtocolError as exc:
        raise Alarm.from_protocol(exc, what="server promise") from exc
    if promise.origin != genesis.origin or not crypto.equal(promise.leaf, leaf):
        raise Alarm("forged", "the server's promise names another entry or log")
    return promise


def parse_leaf_or_index(value: str, log: VerifiedLog) -> bytes:
    """A parent given as a log index (digits) or a base64url leaf hash."""
    if value.isdigit():
        index = int(value)
        if index >= log.size:
            raise UsageError(f"log index {index} is beyond the verified log")
        return log.leaf(index)
    try:
        return b64d(value, length=32, what="parent")
    except ProtocolError as exc:
        raise UsageError(f"--parent must be a log index or a leaf hash: {exc.detail}") from exc


def decode_id(value: str, what: str, length: int = 16) -> bytes:
    """A base64url id from the command line."""
    try:
        return b64d(value, length=length, what=what)
    except ProtocolError as exc:
        raise UsageError(f"invalid {what}: {exc.detail}") from exc


def digits(text: str) -> str:
    """Only the digits of ``text`` (fingerprints are compared digit by digit)."""
    return re.sub(r"[^0-9]", "", text)


def fingerprint_digits(text: str) -> str | None:
    """The 40 digits of a talks fingerprint, or None if ``text`` is not one."""
    compact = re.sub(r"\s", "", text)
    return compact if re.fullmatch(r"[0-9]{40}", compact) else None


def check_talks_matches(talks_id: bytes, given: str) -> None:
    """Require ``given`` (a talks id in base64url, or a fingerprint) to name ``talks_id``."""
    given_digits = fingerprint_digits(given)
    if given_digits is not None:
        if given_digits != digits(readable_digits(talks_id, groups=8)):
            raise Alarm("key_change", "the talks fingerprint does not match")
        return
    try:
        expected = b64d(given.strip(), length=32, what="talks id")
    except ProtocolError as exc:
        raise UsageError("--talks must be a talks fingerprint (40 digits) or talks id") from exc
    if not crypto.equal(expected, talks_id):
        raise Alarm("key_change", "the talks id does not match")


# --- the core ------------------------------------------------------------------------


class ClientCore:
    """One participant device of one talks, backed by a home directory.

    Private keys are unlocked on first need (``passphrase`` may be a callable so a
    prompt only appears when a key is needed); the local state, the verified log and
    the transport are opened on first use.
    """

    def __init__(
        self,
        home: Path,
        *,
        server: str | None = None,
        passphrase: PassphraseSource = None,
        keys: DeviceKeys | None = None,
        rng: crypto.Rng = os.urandom,
        timeout: float = 30.0,
        stale_after: float = STALE_PROMISE_MS / 1000,
    ) -> None:
        self.home = Path(home)
        # How long a promised entry may stay beyond every checkpoint (``stale_log``).
        self.stale_after_ms = int(stale_after * 1000)
        # The server URL given explicitly; None: the one stored in the home.
        self.server_url = server
        # --insecure: cleartext http:// to a non-loopback host was explicitly accepted.
        self.insecure = False
        self._passphrase = passphrase
        self._keys = keys
        self._former: list[DeviceKeys] = []
        self._unlocked: str | None = None
        self.rng = rng
        self.timeout = timeout
        self._state: LocalState | None = None
        self._log: VerifiedLog | None = None
        self._transport: Transport | None = None

    async def close(self) -> None:
        """Close the network session and the local state."""
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
        if self._state is not None:
            self._state.close()
            self._state = None

    # -- local pieces ---------------------------------------------------------------------

    @property
    def state(self) -> LocalState:
        """The local verified state (opened on first use)."""
        if self._state is None:
            self._state = LocalState(self.home)
        return self._state

    @property
    def server(self) -> str:
        """The server URL: the explicit one, else the one stored in the home."""
        url = self.server_url or self.state.server
        if not url:
            raise UsageError("no server URL: pass --server (or set it with 'docket init')")
        return url

    def public(self) -> DevicePublic:
        """This device's public keys (no passphrase needed)."""
        if self._keys is not None:
            return self._keys.public
        return keystore.load_public(self.home)

    @property
    def keys(self) -> DeviceKeys:
        """This device's private keys, unlocked on first use."""
        if self._keys is None:
            source = self._passphrase
            passphrase = source() if callable(source) else source
            if passphrase is None:
                passphrase = keystore.read_passphrase()
            self._keys, self._former = keystore.unlock_all(self.home, passphrase)
            self._unlocked = passphrase
        return self._keys

    @property
    def former_keys(self) -> list[DeviceKeys]:
        """This device's keys before its rotations (they open drafts wrapped to them)."""
        _ = self.keys
        return self._former

    def keys_for(self, device: bytes) -> DeviceKeys | None:
        """This device's current or former keys with the id ``device``."""
        for keys in (self.keys, *self.former_keys):
            if keys.device_id == device:
                return keys
        return None

    def passphrase_used(self) -> str:
        """The passphrase that unlocked the key store (to re-seal it after a rotation)."""
        _ = self.keys
        if self._unlocked is None:
            raise UsageError("this client was given its keys, not a key store")
        return self._unlocked

    def replace_keys(self, keys: DeviceKeys) -> None:
        """Use ``keys`` from now on, the current ones becoming former keys (rotation)."""
        self._former = [*self.former_keys, self.keys]
        self._keys = keys

    def restore_keys(self, keys: DeviceKeys) -> None:
        """Undo :meth:`replace_keys` (a rotation that turned out not to be logged)."""
        if self._former and self._former[-1].device_id == keys.device_id:
            self._former.pop()
        self._keys = keys

    @property
    def device_id(self) -> DeviceId:
        """This device's id."""
        return self.public().device_id

    def genesis(self) -> Genesis:
        """The pinned genesis, or a :class:`UsageError` before founding or joining."""
        genesis = self.state.genesis()
        if genesis is None:
            raise UsageError("this home has no talks yet (run 'docket join' or 'talks found')")
        return genesis

    @property
    def log(self) -> VerifiedLog:
        """The verified log, replayed from the local state on first use."""
        if self._log is None:
            log = self.state.load_log()
            if log is None:
                raise UsageError("this home has no talks yet (run 'docket join' or 'talks found')")
            self._log = log
        return self._log

    def forget_log(self) -> None:
        """Drop the in-memory log: the next use replays it from the committed state (after
        a new pin, or when it took in entries that failed to verify)."""
        self._log = None

    @property
    def roster(self) -> Roster:
        """The roster as of the last verified checkpoint."""
        return self.log.ledger.roster

    def transport(self, *, auth: bool = True) -> Transport:
        """The HTTP transport (credentials attached once talks are pinned)."""
        if self._transport is None:
            url = self.server
            consented = self.insecure
            if not consented and tls.is_cleartext_remote(url):
                consented = self.state.get("insecure_url") == url.rstrip("/")
            tls.check_url(url, insecure=consented)
            context = tls.client_context(tls.home_ca(self.home))
            self._transport = Transport(url, timeout=self.timeout, ssl_context=context)
        if auth and self._transport.credentials is None:
            genesis = self.genesis()
            self._transport.credentials = Credentials(
                keys=self.keys, talks=genesis.talks_id, origin=genesis.origin
            )
        return self._transport

    def my_ids(self) -> set[bytes]:
        """This device's id and its ids before rotations (kept in the local state so no
        passphrase is needed to tell them)."""
        former = self.state.get("former_devices", [])
        return {self.device_id, *(b64d(d) for d in former if isinstance(d, str))}

    def remember_former(self, device: bytes) -> None:
        """Record an id this device had before a rotation."""
        former = list(self.state.get("former_devices", []))
        if b64e(device) not in former:
            self.state.set("former_devices", [*former, b64e(device)])

    def forget_transport(self) -> None:
        """Log in again on the next request (after this device's keys changed)."""
        if self._transport is not None:
            self._transport.credentials = None

    def member_id(self) -> str | None:
        """Our member id: from the verified roster, else what the invitation said."""
        if self.state.genesis() is not None:
            member = self.log.ledger.roster.devices.get(self.device_id)
            if member is not None:
                return member
        return self.state.member_id()

    def me(self) -> str:
        """Our member id in the verified roster; a :class:`UsageError` before enrolment."""
        member = self.log.ledger.roster.devices.get(self.device_id)
        if member is None:
            raise UsageError(
                "this device is not in the verified roster yet (ask your head or the "
                "mediator to enrol it, then try again)"
            )
        return member

    def record(self, alarm: Alarm) -> Alarm:
        """Record ``alarm`` in the local state and return it (for ``raise``)."""
        self.state.record_alarm(alarm)
        return alarm

    def check_not_frozen(self) -> None:
        """Refuse to sign anything after a ``rollback`` or ``fork`` alarm (step 6)."""
        frozen = self.state.get("frozen")
        if frozen:
            raise Alarm(
                frozen.get("alarm", "fork"),
                "refusing to sign anything after this alarm: "
                + str(frozen.get("detail", ""))
                + " (inspect 'docket audit'; restore trust out of band)",
            )

    def witness_id(self) -> str | None:
        """ "mediator" or our delegation id if this device witnesses the log, else None."""
        genesis = self.state.genesis()
        if genesis is None:
            return None
        roster = self.roster
        member_id = roster.devices.get(self.device_id)
        if member_id is None:
            return None
        member = roster.members[member_id]
        if member.role == ROLE_MEDIATOR and member.id == genesis.mediator:
            return "mediator"
        if member.role == ROLE_HEAD and member.delegation is not None:
            return member.delegation
        return None

    # -- identity ---------------------------------------------------------------------

    @staticmethod
    def init_home(
        home: Path, passphrase: str, *, server: str | None = None, rng: crypto.Rng = os.urandom
    ) -> DevicePublic:
        """Create a home: fresh device keys in an encrypted key store, and the server URL."""
        keys = keystore.create_keystore(home, passphrase, rng)
        ClientCore.init_home_state(home, keys.device_id, server)
        return keys.public

    @staticmethod
    def init_home_state(home: Path, device: DeviceId, server: str | None) -> None:
        """Record in a new home which device it holds and which server it talks to."""
        state = LocalState(home)
        try:
            state.set("device", b64e(device))
            if server:
                state.set("server", server.rstrip("/"))
        finally:
            state.close()

    def whoami(self) -> Identity:
        """Who this home is: device, member, role, talks, witness name, alarms."""
        public = self.public()
        genesis = self.state.genesis()
        member = role = delegation = witness = None
        enrolled = False
        if genesis is not None:
            roster = self.roster
            member_id = roster.devices.get(public.device_id)
            if member_id is not None:
                enrolled = True
                m = roster.members[member_id]
                member, role, delegation = m.id, m.role, m.delegation
                wid = self.witness_id()
                witness = witness_name(genesis.origin, wid) if wid else None
        status = "enrolled" if enrolled else "not yet"
        if genesis is not None and not enrolled:
            roster = self.roster
            former = roster.device_public(public.device_id)
            end = roster.device_ends.get(public.device_id)
            if former is not None and end is not None:
                m = roster.members[former[0]]
                member, role, delegation = m.id, m.role, m.delegation
                status = _ended(roster, public.device_id, end)
        departed = self.state.get("departed")
        if enrolled is False and status == "not yet" and isinstance(departed, dict):
            status = f"left at index {departed.get('at')} by {departed.get('by')}"
        elif enrolled and isinstance(departed, dict):
            enrolled = False  # logged as gone, as the server promised; not yet seen here
            status = f"left at index {departed.get('at')} by {departed.get('by')}"
        if member is None:
            pending = self.state.get("pending") or {}
            member = pending.get("member")
            role = pending.get("role")
            delegation = pending.get("delegation")
        return Identity(
            status=status,
            device=public,
            member=member,
            role=role,
            delegation=delegation,
            server=self.server_url or self.state.server,
            talks_fingerprint=genesis.fingerprint if genesis else None,
            talks=genesis.talks_id if genesis else None,
            enrolled=enrolled,
            witness=witness,
            alarms=tuple(a.name for a in self.state.alarms()),
        )


_ENDED = {
    "member.remove": "removed",
    "member.leave": "left",
    "device.remove": "device removed",
    "device.rotate": "device rotated",
    "device.revoke": "revoked",
}


def _ended(roster: Roster, device: DeviceId, end: Any) -> str:
    """How a device stopped being current, in words (``removed at index 12 by nh``)."""
    text = f"{_ENDED.get(end.op, end.op)} at index {end.at} by {end.by}"
    revocation = roster.revoked.get(device)
    if revocation is not None:
        text += f" (declared compromised since index {revocation.since})"
    new = roster.rotations.get(device)
    if new is not None:
        text += f"; new device {b64e(new)}"
    return text
