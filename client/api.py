"""``DocketClient``: the async client library every role uses.

Theory of operation
-------------------
The server is trusted for availability only, so the client believes nothing it says
until the protocol's own verifiers have checked it against the pinned talks:

1. **Pin.**  Founding or joining stores the genesis whose hash is the talks id handed
   out of band.  Every later answer is checked against it; a different genesis is the
   ``key_change`` alarm.
2. **Sync** (:meth:`DocketClient.sync`).  Fetch the latest checkpoint and verify the
   log's signature with the key the genesis names.  Smaller than the last verified
   checkpoint is ``rollback``; same size with another root, or a failing consistency
   proof, is ``fork``.  Fetch the new entries, apply each through the protocol's
   :class:`~protocol.ledger.Ledger` (signatures, authority, counters, lineage,
   receipts; a failure maps to its alarm), and require the Merkle root over *all*
   entries to equal the checkpoint's root.  Only then commit entries and checkpoint to
   the local state in one transaction.  Promises the server made for our writes must be
   honoured by the entries at their indices (``gap``), within :attr:`stale_after_ms` of
   their arrival by our clock (``stale_log``), and never two for one index (``fork``).
   An entry the ledger refuses whose signature does not verify under the key of the
   device it names is ``forged``, whichever rule the ledger tripped over first.
3. **Witness.**  The mediator and each delegation's head cosign the verified checkpoint
   (:mod:`client.witness`), never anything inconsistent with what they cosigned before.
4. **Roster** changes are signed locally on top of the verified roster head, checked
   locally with the same rules the server applies, and submitted; the roster itself is
   only ever read from the verified log.
5. **Drafts.**  :meth:`~DocketClient.send` seals to exactly the channel's devices in the
   verified roster.  :meth:`~DocketClient.inbox` opens every new draft addressed to this
   device, using the sender key and recipient set *from the ledger at the draft*, sends
   ``received`` (or ``rejected`` with the error code) receipts in one batch, and shows
   only drafts that verified and are covered by a verified checkpoint.  The drafts come
   from the verified log, not from the server's notices, so a logged draft the server
   will not deliver is noticed (``withheld``).
6. After a ``rollback`` or ``fork`` alarm the client refuses to send: what it would sign
   could be shown to others on a history it does not share.
7. **Gossip** (:meth:`~DocketClient.check_checkpoint`): a checkpoint note another
   participant received is checked against our verified log, which proves a split view
   (``fork``) as soon as two views meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from client import keystore
from client.auditor import DEFAULT_CHUNK, AuditReport, AuditState, audit_log
from client.errors import (
    Alarm,
    ClientError,
    NetworkError,
    ServerError,
    StateError,
    UsageError,
    VerificationError,
)
from client.state import OPENED, REJECTED, LocalState, StoredCheckpoint, VerifiedLog
from client.transport import Credentials, Transport
from client.witness import Witness
from protocol import crypto, merkle
from protocol.checkpoint import Checkpoint, SignedNote, open_checkpoint
from protocol.encoding import Fields, JSONValue, b64d, b64e, canonical, parse
from protocol.envelope import (
    MAX_PAYLOAD,
    DraftHeader,
    Payload,
    encode_upload,
    keys_from_json,
    open_draft,
    seal,
)
from protocol.errors import BadSignatureError, ProtocolError
from protocol.evidence import EvidenceBundle, EvidenceReport, Proven
from protocol.evidence import verify_evidence as _verify_evidence
from protocol.genesis import Genesis, WitnessPolicy, found, witness_name
from protocol.keys import DeviceId, DeviceKeys, DevicePublic, readable_digits
from protocol.ledger import DraftState, parse_entry, raw_signature_verifies, signature_claim
from protocol.quorum import quorum_cosigners
from protocol.receipt import ACKNOWLEDGED, RECEIVED, Promise, Receipt, make_receipt
from protocol.records import ID_RE, DraftId, MessageId
from protocol.roster import (
    CHANNEL_KINDS,
    ROLE_HEAD,
    ROLE_MEDIATOR,
    STAFF_ROLES,
    ChangeArgs,
    Roster,
    RosterChange,
    make_change,
)
from protocol.roster import CONTEXTS as ROSTER_CONTEXTS

ENTRIES_PAGE = 1000
RECEIPT_BATCH = 256
INLINE_KEEP = 1024
"""At most this many inline drafts from notices are kept until they are opened."""
WAIT_FOR_INDEX = 10.0
# A server that promised an entry and has not checkpointed it after this long is showing
# a stale log (it checkpoints every second or so when healthy).
STALE_PROMISE_MS = 5 * 60 * 1000
INVITE_PREFIX = "docket-invite:"
ROLES = ("head", "member", *STAFF_ROLES)

PassphraseSource = str | Callable[[], str] | None
# The invitation id goes into a URL path: keep it to URL-safe characters.
_INVITATION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,200}")
_SERVER_RE = re.compile(r"https?://[^\s/?#]+(?:/[^\s?#]*)?")


def now_ms() -> int:
    """Wall-clock time in integer milliseconds (the protocol's time unit)."""
    return int(time.time() * 1000)


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncResult:
    """What one :meth:`DocketClient.sync` verified."""

    size: int
    root: bytes
    new_entries: int
    cosigned: bool
    trusted: bool
    cosigners: tuple[str, ...]

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "cosigned": self.cosigned,
            "cosigners": list(self.cosigners),
            "new_entries": self.new_entries,
            "root": b64e(self.root),
            "size": self.size,
            "trusted": self.trusted,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Invitation:
    """An invitation created by a mediator or head, with its out-of-band code."""

    id: str
    token: str
    member: str
    role: str
    delegation: str | None
    expires: int
    code: str

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "code": self.code,
            "delegation": self.delegation,
            "expires": self.expires,
            "id": self.id,
            "member": self.member,
            "role": self.role,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class InvitationCode:
    """Everything a joiner needs, handed out of band as one string."""

    server: str
    talks: bytes
    id: str
    token: str
    member: str
    role: str
    delegation: str | None

    def encode(self) -> str:
        """The code string (``docket-invite:`` + base64url canonical JSON)."""
        body = {
            "delegation": self.delegation,
            "id": self.id,
            "member": self.member,
            "role": self.role,
            "server": self.server,
            "talks": b64e(self.talks),
            "token": self.token,
        }
        return INVITE_PREFIX + b64e(canonical(body))

    @classmethod
    def decode(cls, code: str) -> InvitationCode:
        """Parse a code; a mangled one is a :class:`UsageError`."""
        code = code.strip()
        if not code.startswith(INVITE_PREFIX):
            raise UsageError(f"an invitation code starts with {INVITE_PREFIX!r}")
        try:
            f = Fields(parse(b64d(code[len(INVITE_PREFIX) :])), "invitation code")
            out = cls(
                delegation=f.opt_str("delegation", max_len=64),
                id=f.str("id", max_len=200, pattern=_INVITATION_ID_RE),
                member=f.str("member", max_len=64, pattern=ID_RE),
                role=f.str("role", max_len=16),
                server=f.str("server", max_len=2000, pattern=_SERVER_RE),
                talks=f.bytes("talks", length=32),
                token=f.str("token", max_len=200),
            )
            f.done()
        except ProtocolError as exc:
            raise UsageError(f"invalid invitation code: {exc.detail}") from exc
        return out


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
class InboxItem:
    """A received draft that opened and verified."""

    index: int
    channel: str
    sender: str
    title: str
    draft: bytes
    version: int
    time: int
    read: bool
    acknowledged: bool
    file_name: str | None

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "acknowledged": self.acknowledged,
            "channel": self.channel,
            "draft": b64e(self.draft),
            "file": self.file_name,
            "index": self.index,
            "read": self.read,
            "sender": self.sender,
            "time": self.time,
            "title": self.title,
            "version": self.version,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A draft addressed to us that failed to open or verify (a ``rejected`` receipt)."""

    index: int
    sender: str
    channel: str
    code: str

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "channel": self.channel,
            "code": self.code,
            "index": self.index,
            "sender": self.sender,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxResult:
    """The verified inbox, the drafts rejected this time, receipts sent, and drafts the
    server withheld."""

    items: tuple[InboxItem, ...]
    rejected: tuple[Rejection, ...]
    receipts_sent: int
    undelivered: tuple[int, ...] = ()
    """Log indices of drafts addressed to us that the server refused to deliver (each
    raised the ``withheld`` alarm; they are asked for again next time)."""

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "items": [i.to_json() for i in self.items],
            "receipts_sent": self.receipts_sent,
            "rejected": [r.to_json() for r in self.rejected],
            "undelivered": list(self.undelivered),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadDraft:
    """An opened draft: its verified header facts and the payload."""

    index: int
    channel: str
    sender: str
    header: DraftHeader
    payload: Payload
    leaf: bytes

    def to_json(self, *, include_file: bool = False) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        p = self.payload
        out: dict[str, JSONValue] = {
            "body": p.body,
            "channel": self.channel,
            "draft": b64e(self.header.draft),
            "file": None,
            "index": self.index,
            "leaf": b64e(self.leaf),
            "parents": [b64e(x) for x in self.header.parents],
            "sender": self.sender,
            "time": self.header.time,
            "title": p.title,
            "version": self.header.version,
        }
        if p.file_data is not None:
            file: dict[str, JSONValue] = {
                "name": p.file_name,
                "size": len(p.file_data),
                "type": p.media_type,
            }
            if include_file:
                file["data"] = b64e(p.file_data)
            out["file"] = file
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptLine:
    """One recipient device's receipt state for a draft."""

    member: str
    device: bytes
    received: int | None
    acknowledged: int | None
    rejected: str | None

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "acknowledged": self.acknowledged,
            "device": b64e(self.device),
            "member": self.member,
            "received": self.received,
            "rejected": self.rejected,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptStatus:
    """Receipts for one draft, verified from the log."""

    index: int
    sender: str
    channel: str
    lines: tuple[ReceiptLine, ...]

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "channel": self.channel,
            "index": self.index,
            "recipients": [line.to_json() for line in self.lines],
            "sender": self.sender,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryItem:
    """One version in a draft's lineage."""

    index: int
    version: int
    sender: str
    channel: str
    leaf: bytes
    parents: tuple[bytes, ...]
    time: int
    title: str | None

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "channel": self.channel,
            "index": self.index,
            "leaf": b64e(self.leaf),
            "parents": [b64e(p) for p in self.parents],
            "sender": self.sender,
            "time": self.time,
            "title": self.title,
            "version": self.version,
        }


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
            "talks": b64e(self.talks) if self.talks else None,
            "talks_fingerprint": self.talks_fingerprint,
            "witness": self.witness,
        }


# --- helpers -------------------------------------------------------------------------


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


def _promise(answer: Any, genesis: Genesis, leaf: bytes) -> Promise:
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


# --- the client ----------------------------------------------------------------------


class DocketClient:
    """One participant device of one talks, backed by a home directory.

    Use as ``async with DocketClient(home, passphrase=...) as client``.  Private keys are
    unlocked on first need (``passphrase`` may be a callable so a prompt only appears
    when a key is needed).  Every public coroutine verifies what it returns.
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
        self._server = server
        self._passphrase = passphrase
        self._keys = keys
        self.rng = rng
        self.timeout = timeout
        self._state: LocalState | None = None
        self._log: VerifiedLog | None = None
        self._transport: Transport | None = None
        # Inline drafts from notices (index -> {"ciphertext", "header", "keys"}), used
        # once by _fetch_draft instead of two GETs; checked exactly like a GET's answer.
        self._inline: dict[int, JSONValue] = {}
        # Entries the last audit() left out: newer than the last cosigned checkpoint.
        self.last_audit_pending = 0

    async def __aenter__(self) -> DocketClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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
        url = self._server or self.state.server
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
            self._keys = keystore.unlock(self.home, passphrase)
        return self._keys

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

    @property
    def roster(self) -> Roster:
        """The roster as of the last verified checkpoint."""
        return self.log.ledger.roster

    def transport(self, *, auth: bool = True) -> Transport:
        """The HTTP transport (credentials attached once talks are pinned)."""
        if self._transport is None:
            self._transport = Transport(self.server, timeout=self.timeout)
        if auth and self._transport.credentials is None:
            genesis = self.genesis()
            self._transport.credentials = Credentials(
                keys=self.keys, talks=genesis.talks_id, origin=genesis.origin
            )
        return self._transport

    def member_id(self) -> str | None:
        """Our member id: from the verified roster, else what the invitation said."""
        if self.state.genesis() is not None:
            member = self.log.ledger.roster.devices.get(self.device_id)
            if member is not None:
                return member
        return self.state.member_id()

    def _me(self) -> str:
        member = self.log.ledger.roster.devices.get(self.device_id)
        if member is None:
            raise UsageError(
                "this device is not in the verified roster yet (ask your head or the "
                "mediator to enrol it, then try again)"
            )
        return member

    def _record(self, alarm: Alarm) -> Alarm:
        self.state.record_alarm(alarm)
        return alarm

    def _check_not_frozen(self) -> None:
        frozen = self.state.get("frozen")
        if frozen:
            raise Alarm(
                frozen.get("alarm", "fork"),
                "refusing to sign anything after this alarm: "
                + str(frozen.get("detail", ""))
                + " (inspect 'docket audit'; restore trust out of band)",
            )

    # -- identity ---------------------------------------------------------------------

    @staticmethod
    def init_home(
        home: Path, passphrase: str, *, server: str | None = None, rng: crypto.Rng = os.urandom
    ) -> DevicePublic:
        """Create a home: fresh device keys in an encrypted key store, and the server URL."""
        keys = keystore.create_keystore(home, passphrase, rng)
        DocketClient.init_home_state(home, keys.device_id, server)
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
                wid = self._witness_id()
                witness = witness_name(genesis.origin, wid) if wid else None
        if member is None:
            pending = self.state.get("pending") or {}
            member = pending.get("member")
            role = pending.get("role")
            delegation = pending.get("delegation")
        return Identity(
            device=public,
            member=member,
            role=role,
            delegation=delegation,
            server=self._server or self.state.server,
            talks_fingerprint=genesis.fingerprint if genesis else None,
            talks=genesis.talks_id if genesis else None,
            enrolled=enrolled,
            witness=witness,
            alarms=tuple(a.name for a in self.state.alarms()),
        )

    def _witness_id(self) -> str | None:
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

    # -- founding and joining ---------------------------------------------------------

    async def server_identity(self) -> dict[str, Any]:
        """``GET /v1/talks`` as received (unverified): genesis, log key, origin."""
        answer = await self.transport(auth=False).request("GET", "/v1/talks", auth=False)
        if not isinstance(answer, dict):
            raise NetworkError("server sent an invalid /v1/talks answer")
        return answer

    async def found_talks(
        self,
        *,
        founding_token: str,
        title: str,
        mediator: str,
        mediator_name: str,
        log_key: bytes,
        origin: str,
        quorum: int = 1,
    ) -> Genesis:
        """Found the talks as the mediator: sign the genesis and submit it.

        ``log_key`` and ``origin`` are the server's checkpoint key and log origin, which
        ``docket-server init`` prints; they are pinned in the genesis, so the mediator
        must take them from the operator, not from the network.
        """
        if self.state.genesis() is not None:
            raise UsageError("this home already belongs to talks")
        try:
            genesis = found(
                mediator_keys=self.keys,
                mediator=mediator,
                mediator_name=mediator_name,
                origin=origin,
                title=title,
                log_key=log_key,
                witness=WitnessPolicy(quorum=quorum),
                time=now_ms(),
            )
        except ProtocolError as exc:
            raise UsageError(f"cannot found talks: {exc.detail}") from exc
        answer = await self.transport(auth=False).post(
            "/v1/talks", {"genesis": genesis.to_json(), "token": founding_token}, auth=False
        )
        promise = _promise(answer, genesis, genesis.leaf)
        if promise.index != 0:
            raise Alarm("gap", "the server did not log the genesis as entry 0")
        self.state.set("server", self.server.rstrip("/"))
        self.state.pin_genesis(genesis)
        self.state.set("member", mediator)
        self._log = None
        await self.sync()
        return genesis

    async def join(self, code: str, *, name: str, expect_talks: str | None = None) -> Genesis:
        """Accept an invitation: pin the talks from the code, register this device.

        The device is usable once the inviter enrols it (``docket enrol``); until then
        the server refuses its authentication.
        """
        invitation = InvitationCode.decode(code)
        if self._server is None:
            self._server = invitation.server
        if expect_talks is not None:
            check_talks_matches(invitation.talks, expect_talks)
        keys = self.keys  # unlock first: a wrong passphrase should change nothing
        answer = await self.server_identity()
        try:
            genesis = Genesis.from_json(answer.get("genesis"))
        except ProtocolError as exc:
            raise self._record(Alarm.from_protocol(exc, what="server genesis")) from exc
        if not crypto.equal(genesis.talks_id, invitation.talks):
            raise self._record(
                Alarm("key_change", "the server's talks differ from the invitation's")
            )
        self.state.set("server", self.server.rstrip("/"))
        self.state.pin_genesis(genesis)
        self._log = None
        body: dict[str, JSONValue] = {
            "device": keys.public.to_json(),
            "invitation": invitation.id,
            "name": name,
            "talks": b64e(genesis.talks_id),
        }
        sig = keys.signing.sign(crypto.CTX_JOIN, canonical(body))
        await self.transport(auth=False).post(
            f"/v1/invitations/{invitation.id}/accept",
            {
                "device": keys.public.to_json(),
                "name": name,
                "sig": b64e(sig),
                "token": invitation.token,
            },
            auth=False,
        )
        self.state.set(
            "pending",
            {
                "delegation": invitation.delegation,
                "member": invitation.member,
                "name": name,
                "role": invitation.role,
            },
        )
        self.state.set("member", invitation.member)
        return genesis

    accept_invitation = join

    async def invite(self, member: str, *, role: str, delegation: str | None = None) -> Invitation:
        """Create an invitation (mediator: any role; head: members of own delegation)."""
        if role not in ROLES:
            raise UsageError(f"role must be one of {', '.join(ROLES)}")
        if not ID_RE.fullmatch(member):
            raise UsageError("member ids are lowercase letters, digits and ._- (1-64)")
        await self.sync()
        me = self.roster.members[self._me()]
        if me.role == ROLE_HEAD:
            if role != "member":
                raise UsageError("a delegation head can only invite members")
            delegation = me.delegation
        elif me.role != ROLE_MEDIATOR:
            raise UsageError("only the mediator and delegation heads can invite")
        if role in ("head", "member") and not delegation:
            raise UsageError("a head or member invitation needs --delegation")
        if role in STAFF_ROLES:
            delegation = None
        if member in self.roster.members:
            raise UsageError(f"member id {member!r} is already in use")
        answer = await self.transport().post(
            "/v1/invitations", {"delegation": delegation, "member": member, "role": role}
        )
        if not isinstance(answer, dict):
            raise NetworkError("server sent an invalid invitation")
        inv_id, token = answer.get("id"), answer.get("token")
        if not isinstance(inv_id, str) or not isinstance(token, str):
            raise NetworkError("server sent an invalid invitation")
        # Remember what we invited whom as: the server's invitation list is unsigned, and
        # enrolment must use our own record of the role and delegation, not its word.
        created = dict(self.state.get("invitations", {}))
        created[member] = {"delegation": delegation, "id": inv_id, "role": role}
        self.state.set("invitations", created)
        code = InvitationCode(
            server=self.server,
            talks=self.genesis().talks_id,
            id=inv_id,
            token=token,
            member=member,
            role=role,
            delegation=delegation,
        ).encode()
        expires = answer.get("expires")
        return Invitation(
            id=inv_id,
            token=token,
            member=member,
            role=role,
            delegation=delegation,
            expires=expires if isinstance(expires, int) else 0,
            code=code,
        )

    async def invitations(self) -> list[dict[str, Any]]:
        """Invitations this device created, as the server reports them (unverified)."""
        answer = await self.transport().get("/v1/invitations")
        items = answer.get("invitations") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise NetworkError("server sent an invalid invitation list")
        return [i for i in items if isinstance(i, dict)]

    async def _accepted(self, member: str) -> tuple[DevicePublic, str, dict[str, Any]]:
        """The device key and display name of ``member``'s accepted invitation, and our own
        record of the invitation (role, delegation).

        The key comes from the server and is only as good as the fingerprint check the
        caller makes; the role and delegation come from what this client created.
        """
        mine = self.state.get("invitations", {}).get(member)
        if mine is None:
            raise UsageError(f"this device has not invited {member!r} ('docket invite' first)")
        for inv in await self.invitations():
            if inv.get("id") == mine["id"] and inv.get("state") == "accepted":
                if (inv.get("member"), inv.get("role"), inv.get("delegation")) != (
                    member,
                    mine["role"],
                    mine["delegation"],
                ):
                    raise self._record(
                        Alarm("forged", f"the server altered the invitation of {member!r}")
                    )
                try:
                    device = DevicePublic.from_json(inv.get("device"))
                except ProtocolError as exc:
                    raise self._record(Alarm.from_protocol(exc, what="invited device key")) from exc
                name = inv.get("name")
                if not isinstance(name, str) or not name:
                    raise NetworkError("accepted invitation lacks a display name")
                return device, name, dict(mine)
        raise UsageError(
            f"no accepted invitation for {member!r} (they must run 'docket join' first)"
        )

    # -- roster changes ---------------------------------------------------------------

    async def _submit_change(self, op: str, args: ChangeArgs) -> Sent:
        """Sign a change on the verified roster head, check it locally, submit it; on a
        stale roster, sync and re-sign once."""
        self._check_not_frozen()
        for attempt in (0, 1):
            await self.sync()
            change = make_change(
                author=self.keys, roster=self.roster, op=op, args=args, time=now_ms()
            )
            try:
                self.roster.copy().apply(change)
            except ProtocolError as exc:
                raise UsageError(f"{exc.code}: {exc.detail}") from exc
            try:
                answer = await self.transport().post("/v1/roster", change.to_json())
            except ServerError as exc:
                if exc.code == "stale_roster" and attempt == 0:
                    continue
                raise
            promise = _promise(answer, self.genesis(), change.leaf)
            self._keep_promise(promise)
            await self.wait_for(promise.index)
            return Sent(index=promise.index, leaf=change.leaf)
        raise ServerError(409, "stale_roster", "the roster kept changing")  # pragma: no cover

    async def create_delegation(
        self, delegation: str, *, name: str, head: str, expect_fingerprint: str | None = None
    ) -> Sent:
        """Mediator: create a delegation headed by ``head`` (who accepted an invitation)."""
        device, head_name, _ = await self._accepted(head)
        _check_fingerprint(device, expect_fingerprint)
        return await self._submit_change(
            "delegation.create",
            ChangeArgs(
                delegation=delegation,
                name=name,
                member=head,
                member_name=head_name,
                devices=(device,),
            ),
        )

    async def enrol(self, member: str, *, expect_fingerprint: str | None = None) -> Sent:
        """Enrol an invited member (head: own delegation; mediator: staff roles)."""
        device, member_name, inv = await self._accepted(member)
        _check_fingerprint(device, expect_fingerprint)
        role = inv.get("role")
        if role == "member":
            delegation = inv.get("delegation")
            if not isinstance(delegation, str):
                raise NetworkError("member invitation lacks its delegation")
            op = "member.enrol"
            args = ChangeArgs(
                delegation=delegation, member=member, member_name=member_name, devices=(device,)
            )
        elif role in STAFF_ROLES:
            op = "staff.enrol"
            args = ChangeArgs(member=member, member_name=member_name, role=role, devices=(device,))
        elif role == "head":
            raise UsageError("heads are enrolled by 'docket delegation create'")
        else:
            raise NetworkError(f"invitation has an unknown role {role!r}")
        return await self._submit_change(op, args)

    async def remove(self, member: str) -> Sent:
        """Remove a member (and retire their devices)."""
        return await self._submit_change("member.remove", ChangeArgs(member=member))

    async def create_channel(
        self,
        channel: str,
        *,
        name: str,
        kind: str,
        delegations: Iterable[str] = (),
        members: Iterable[str] = (),
    ) -> Sent:
        """Mediator: create a channel of whole delegations and/or individual members."""
        if kind not in CHANNEL_KINDS:
            raise UsageError(f"channel kind must be one of {', '.join(CHANNEL_KINDS)}")
        return await self._submit_change(
            "channel.create",
            ChangeArgs(
                channel=channel,
                name=name,
                kind=kind,
                delegations=tuple(sorted(set(delegations))),
                members=tuple(sorted(set(members))),
            ),
        )

    async def set_channel_members(
        self, channel: str, *, delegations: Iterable[str] = (), members: Iterable[str] = ()
    ) -> Sent:
        """Mediator: replace a channel's delegations and members."""
        return await self._submit_change(
            "channel.members",
            ChangeArgs(
                channel=channel,
                delegations=tuple(sorted(set(delegations))),
                members=tuple(sorted(set(members))),
            ),
        )

    # -- sync and witnessing ----------------------------------------------------------

    async def _fetch_checkpoint(
        self, size: int | None = None
    ) -> tuple[Checkpoint, SignedNote, str]:
        genesis = self.genesis()
        params: dict[str, str | int] = {} if size is None else {"size": size}
        data = await self.transport().request("GET", "/v1/log/checkpoint", params=params, raw=True)
        try:
            cp, note = open_checkpoint(
                data, origin=genesis.origin, log_name=genesis.log_name, log_key=genesis.log_key
            )
        except ProtocolError as exc:
            raise self._record(Alarm.from_protocol(exc, what="checkpoint")) from exc
        return cp, note, data.decode("utf-8")

    async def _consistency(self, old: int, new: int) -> list[bytes]:
        if old in (0, new):
            return []
        answer = await self.transport().get("/v1/log/proof/consistency", old=old, new=new)
        try:
            f = Fields(answer, "consistency")
            f.literal("old", old)
            f.literal("new", new)
            proof = [b64d(p, length=32, what="proof") for p in f.list("proof", max_items=128)]
            f.done()
        except ProtocolError as exc:
            raise self._record(Alarm.from_protocol(exc, what="consistency proof")) from exc
        return proof

    async def _entries(self, start: int, end: int, *, partial: bool = False) -> list[bytes]:
        """Entries ``[start, end)`` from the server.  A short answer is a ``gap`` alarm,
        unless ``partial``: then what was served is returned, for the auditor to judge
        (it reports a log shorter than its checkpoint as ``log_truncated``)."""
        out: list[bytes] = []
        while start + len(out) < end:
            first = start + len(out)
            last = min(end, first + ENTRIES_PAGE)
            answer = await self.transport().get("/v1/log/entries", start=first, end=last)
            items = answer.get("entries") if isinstance(answer, dict) else None
            if partial and isinstance(items, list) and not items:
                return out
            if not isinstance(items, list) or not items:
                raise self._record(
                    Alarm("gap", f"server returned no entries for [{first}, {last})", index=first)
                )
            for item in items:
                expected = start + len(out)
                if (
                    not isinstance(item, dict)
                    or item.get("index") != expected
                    or not isinstance(item.get("entry"), dict)
                ):
                    raise self._record(
                        Alarm("gap", "server returned entries out of sequence", index=expected)
                    )
                if expected >= end:
                    break
                out.append(canonical(item["entry"]))
        return out

    async def sync(self, *, witness: bool = True) -> SyncResult:
        """Verify and store everything new in the log (see the module docstring, step 2).

        When this device is a witness and ``witness`` is true, also cosign the verified
        checkpoint and submit the cosignature.
        """
        log = self.log
        stored = self.state.checkpoint()
        try:
            cp, note, note_text = await self._fetch_checkpoint()
        except ServerError as exc:
            if exc.status in (401, 403) and self.device_id not in log.ledger.roster.devices:
                member = self.state.member_id() or "MEMBER"
                raise UsageError(
                    f"this device is not enrolled yet (server: {exc.code}); whoever invited "
                    f"you enrols it with 'docket enrol {member}' (a head with 'docket "
                    "delegation create')"
                ) from exc
            raise
        old_size = log.size
        new_entries = 0
        if stored is not None and cp.size < stored.size:
            raise self._record(
                Alarm(
                    "rollback",
                    f"checkpoint size {cp.size} is below the {stored.size} already verified",
                )
            )
        if cp.size < old_size:
            # Entries are stored only with the checkpoint that covers them, so only the
            # pinned genesis can be ahead of every checkpoint: the talks were just
            # founded or joined and the server has not signed a checkpoint since.
            return SyncResult(
                size=0, root=cp.root, new_entries=0, cosigned=False, trusted=False, cosigners=()
            )
        if cp.size == old_size:
            if not crypto.equal(cp.root, log.root()):
                raise self._record(
                    Alarm(
                        "fork", f"checkpoint root at size {cp.size} differs from the verified one"
                    )
                )
        else:
            if stored is not None:
                proof = await self._consistency(stored.size, cp.size)
                try:
                    merkle.verify_consistency(stored.size, cp.size, stored.root, cp.root, proof)
                except ProtocolError as exc:
                    raise self._record(
                        Alarm(
                            "fork", f"new checkpoint is not consistent with the last: {exc.detail}"
                        )
                    ) from exc
            entries = await self._entries(old_size, cp.size)
            try:
                for i, data in enumerate(entries):
                    try:
                        log.append(data)
                    except ProtocolError as exc:
                        cause = _forgery_or(exc, log.ledger.roster, data)
                        raise self._record(
                            Alarm.from_protocol(cause, index=old_size + i, what="log entry")
                        ) from exc
                if not crypto.equal(log.root(), cp.root):
                    raise self._record(
                        Alarm("fork", "the entries served do not hash to the checkpoint's root")
                    )
            except Alarm:
                # The in-memory log holds unverifiable entries now: drop it, so it is
                # rebuilt from the last committed state.
                self._log = None
                raise
            self.state.commit_entries(
                old_size, entries, StoredCheckpoint(size=cp.size, root=cp.root, note=note_text)
            )
            new_entries = len(entries)
        if stored is None or stored.size != cp.size:
            self.state.set(
                "checkpoint",
                StoredCheckpoint(size=cp.size, root=cp.root, note=note_text).to_json(),
            )
        self._check_promises(cp.size)
        cosigners = tuple(sorted(quorum_cosigners(cp, note, self.roster.witnesses())))
        trusted = len(cosigners) >= self.roster.quorum()
        if trusted:
            self.state.set(
                "trusted", StoredCheckpoint(size=cp.size, root=cp.root, note=note_text).to_json()
            )
        cosigned = False
        if witness and not self.state.get("frozen"):
            cosigned = await self._cosign(cp, cosigners)
        return SyncResult(
            size=cp.size,
            root=cp.root,
            new_entries=new_entries,
            cosigned=cosigned,
            trusted=trusted,
            cosigners=cosigners,
        )

    def _keep_promise(self, promise: Promise) -> None:
        """Keep the server's verified promise for one of our writes, with its arrival
        time by our clock.  A second promise for the same index naming another entry is
        the server committing to two different logs: evidence of a fork."""
        held = self.state.promises().get(promise.index)
        if held is not None:
            if held.get("leaf") == b64e(promise.leaf):
                return  # the same promise again (an idempotent resubmission)
            raise self._record(
                Alarm(
                    "fork",
                    "the server promised two different entries at this index",
                    index=promise.index,
                )
            )
        self.state.add_promise(promise.index, promise.to_json(), seen=now_ms())

    def _check_promises(self, size: int) -> None:
        """Every promise below ``size`` must name the entry the log has at its index, and
        none may stay uncheckpointed for longer than :attr:`stale_after_ms` after it
        arrived (timed by our clock, not by the server's ``time`` in the promise)."""
        log = self.log
        now = now_ms()
        seen = self.state.promise_seen()
        for index, promise in self.state.promises().items():
            if index >= size:
                made = seen.get(index, promise.get("time"))
                if isinstance(made, int) and now - made > self.stale_after_ms:
                    raise self._record(
                        Alarm(
                            "stale_log",
                            f"the server promised this entry {(now - made) // 1000}s ago and "
                            f"its checkpoints still stop at size {size}",
                            index=index,
                        )
                    )
                continue
            try:
                leaf = b64d(promise.get("leaf"), length=32)
            except ProtocolError:
                continue
            if not crypto.equal(leaf, log.leaf(index)):
                raise self._record(
                    Alarm("gap", "the server promised another entry at this index", index=index)
                )
        self.state.drop_promises_below(size)

    async def _cosign(self, cp: Checkpoint, cosigners: Sequence[str]) -> bool:
        wid = self._witness_id()
        if wid is None:
            return False
        genesis = self.genesis()
        witness = Witness(self.state, origin=genesis.origin, witness_id=wid, keys=self.keys)
        if witness.name in cosigners:
            return False
        old = witness.size
        proof = await self._consistency(old, cp.size) if 0 < old < cp.size else []
        line = witness.cosign(cp, proof, timestamp=int(time.time()))
        await self.transport().post("/v1/log/cosignatures", {"signature": line, "size": cp.size})
        return True

    async def wait_for(self, index: int, *, timeout: float = WAIT_FOR_INDEX) -> None:
        """Sync until the verified log covers ``index`` (the server checkpoints in
        batches, so a just-promised entry can take a moment to appear)."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            result = await self.sync()
            if result.size > index:
                return
            if time.monotonic() > deadline:
                # Not an alarm yet: the promise is kept, and a later sync raises ``gap``
                # (another entry at that index) or ``stale_log`` (never checkpointed).
                raise NetworkError(
                    f"the server has not checkpointed log index {index} after "
                    f"{timeout:.0f}s; it will be verified at the next sync"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    # -- gossip -----------------------------------------------------------------------------

    def checkpoint_note(self) -> str:
        """The last checkpoint this client verified, as the signed note it received (with
        its cosignatures): what to hand to other participants to compare views."""
        stored = self.state.checkpoint()
        if stored is None:
            raise UsageError("no checkpoint verified yet (sync first)")
        return stored.note

    async def check_checkpoint(self, note: bytes | str) -> Checkpoint:
        """Gossip: check a checkpoint note someone else received from the server against
        the log this client verified, and return it if the two views agree.

        A server showing different logs to different people must sign different roots
        for them; once two such checkpoints meet, the split is proven.  Steps:

        1. the note must carry the log's signature (else it proves nothing: a
           :class:`VerificationError`, no alarm);
        2. sync, so our view is as recent as the server lets it be;
        3. a checkpoint no larger than our verified log must have our root at its size
           (``fork``: the server signed two roots for one history);
        4. a larger one must be one the server can prove extends ours: it must serve a
           consistency proof from our size that verifies (``fork`` if it does not), and
           failing to serve one for a size its own key signed is ``stale_log``.
        """
        genesis = self.genesis()
        data = note.encode("utf-8") if isinstance(note, str) else bytes(note)
        try:
            cp, _ = open_checkpoint(
                data, origin=genesis.origin, log_name=genesis.log_name, log_key=genesis.log_key
            )
        except ProtocolError as exc:
            raise VerificationError(
                f"not a checkpoint of this log: {exc.detail}", code=exc.code
            ) from exc
        await self.sync(witness=False)
        log = self.log
        if cp.size <= log.size:
            if not crypto.equal(cp.root, log.root(cp.size)):
                raise self._record(
                    Alarm(
                        "fork",
                        f"a checkpoint signed by the log gives size {cp.size} the root "
                        f"{b64e(cp.root)}; the verified log has {b64e(log.root(cp.size))}",
                    )
                )
            return cp
        try:
            answer = await self.transport().get(
                "/v1/log/proof/consistency", old=log.size, new=cp.size
            )
            f = Fields(answer, "consistency")
            f.literal("old", log.size)
            f.literal("new", cp.size)
            proof = [b64d(p, length=32, what="proof") for p in f.list("proof", max_items=128)]
            f.done()
        except (ServerError, ProtocolError) as exc:
            if isinstance(exc, ServerError) and exc.status >= 500:
                raise  # unavailable, not refusing: ask again later
            raise self._record(
                Alarm(
                    "stale_log",
                    f"the log signed a checkpoint of size {cp.size}, but the server shows "
                    f"{log.size} entries and cannot prove the larger log extends them "
                    f"({getattr(exc, 'code', 'invalid')})",
                )
            ) from exc
        try:
            merkle.verify_consistency(log.size, cp.size, log.root(), cp.root, proof)
        except ProtocolError as exc:
            raise self._record(
                Alarm(
                    "fork",
                    f"a checkpoint signed by the log at size {cp.size} does not extend the "
                    f"verified log of {log.size} entries: {exc.detail}",
                )
            ) from exc
        return cp

    # -- drafts ---------------------------------------------------------------------------

    async def send(
        self,
        channel: str,
        payload: Payload,
        *,
        draft_id: bytes | None = None,
        parents: Sequence[bytes] = (),
    ) -> Sent:
        """Seal ``payload`` to every device of ``channel`` and log it.

        A new draft gets a fresh draft id; a new version names its ``parents`` (leaf
        hashes of earlier versions) and, optionally, the ``draft_id`` they belong to.
        """
        self._check_not_frozen()
        await self.sync()
        me = self._me()
        roster = self.roster
        if channel not in roster.channels:
            raise UsageError(f"no channel {channel!r}")
        if not roster.is_channel_member(channel, me):
            raise UsageError(f"you are not a member of channel {channel!r}")
        draft, version, parent_list = self._lineage(channel, draft_id, parents)
        msg = MessageId(self.rng(16))
        for attempt in (0, 1):
            roster = self.roster
            counter = (
                max(self.log.ledger.counters.get(self.device_id, 0), self.state.get("counter", 0))
                + 1
            )
            sealed = seal(
                sender=self.keys,
                talks=roster.talks,
                channel=channel,
                counter=counter,
                msg=msg,
                draft=draft,
                version=version,
                parents=parent_list,
                roster=roster.head,
                recipients=roster.channel_devices(channel),
                payload=payload,
                time=now_ms(),
                rng=self.rng,
            )
            body = encode_upload(sealed)
            try:
                answer = await self._upload(body)
            except ServerError as exc:
                if exc.code in ("stale_roster", "bad_counter") and attempt == 0:
                    await self.sync()
                    continue
                raise
            promise = _promise(answer, self.genesis(), sealed.header.leaf)
            self._keep_promise(promise)
            self.state.set("counter", counter)
            # Keep our own copy (encrypted, as every recipient's) so history and read
            # work for our own drafts without fetching them back.
            self.state.put_draft(
                promise.index,
                keys={b64e(k): b64e(v) for k, v in sealed.keys.items()},
                ciphertext=sealed.ciphertext,
                status=OPENED,
                error=None,
            )
            self.state.mark_draft(promise.index, receipt="own")
            await self.wait_for(promise.index)
            return Sent(
                index=promise.index,
                leaf=sealed.header.leaf,
                draft=draft,
                version=version,
                msg=msg,
            )
        raise ServerError(409, "stale_roster", "the roster kept changing")  # pragma: no cover

    async def _upload(self, body: bytes) -> Any:
        transport = self.transport()
        try:
            return await transport.request("POST", "/v1/drafts", data=body)
        except ServerError:
            raise
        except NetworkError:
            # The outcome is unknown: resending the very same bytes is idempotent (the
            # server answers with the original promise), so try once more.
            return await transport.request("POST", "/v1/drafts", data=body)

    def _lineage(
        self, channel: str, draft_id: bytes | None, parents: Sequence[bytes]
    ) -> tuple[DraftId, int, list[merkle.LeafHash]]:
        ledger = self.log.ledger
        if not parents:
            if draft_id is not None:
                raise UsageError("a new version needs at least one --parent")
            return DraftId(self.rng(16)), 1, []
        parent_states: list[DraftState] = []
        for parent in parents:
            state = ledger.drafts.get(merkle.LeafHash(bytes(parent)))
            if state is None:
                raise UsageError(f"parent {b64e(parent)} is not a draft in the verified log")
            parent_states.append(state)
        ids = {s.header.draft for s in parent_states}
        if len(ids) != 1:
            raise UsageError("all parents must be versions of the same draft")
        (found_id,) = ids
        if draft_id is not None and draft_id != found_id:
            raise UsageError("--draft does not match the parents' draft id")
        if any(s.header.channel != channel for s in parent_states):
            raise UsageError("a new version must go to the same channel as its parents")
        version = max(s.header.version for s in parent_states) + 1
        return (
            DraftId(found_id),
            version,
            [merkle.LeafHash(bytes(p)) for p in parents],
        )

    async def _fetch_draft(self, index: int) -> tuple[dict[DeviceId, bytes], bytes]:
        """Wrapped keys and ciphertext of a draft addressed to us, checked against the
        header in the verified log (the server cannot swap the header)."""
        log = self.log
        inline = self._from_notice(index)
        if inline is not None:
            return inline
        answer = await self.transport().get(f"/v1/drafts/{index}")
        try:
            f = Fields(answer, "draft")
            header_obj = f.raw("header")
            f.literal("index", index)
            keys = keys_from_json(f.raw("keys"))
            f.done()
        except ProtocolError as exc:
            raise self._record(Alarm.from_protocol(exc, index=index, what="draft")) from exc
        if canonical(header_obj) != log.entries[index]:
            raise self._record(
                Alarm(
                    "forged", "the server's draft header differs from the logged one", index=index
                )
            )
        ciphertext = await self.transport().request(
            "GET", f"/v1/drafts/{index}/ciphertext", raw=True
        )
        return keys, bytes(ciphertext)

    def _from_notice(self, index: int) -> tuple[dict[DeviceId, bytes], bytes] | None:
        """Keys and ciphertext a notice carried inline for ``index``, if its header is
        the logged one; ``None`` (fetch it instead) for anything else."""
        inline = self._inline.pop(index, None)
        if inline is None:
            return None
        try:
            f = Fields(inline, "draft")
            ciphertext = f.bytes("ciphertext", max_len=MAX_PAYLOAD + crypto.AEAD_OVERHEAD)
            header_obj = f.raw("header")
            keys = keys_from_json(f.raw("keys"))
            f.done()
        except ProtocolError:
            return None
        if canonical(header_obj) != self.log.entries[index]:
            return None
        return keys, ciphertext

    def _keep_inline(self, notice: object) -> None:
        """Remember the inline draft of a ``{"draft", "index", "kind"}`` notice."""
        if isinstance(notice, dict) and isinstance(notice.get("index"), int):
            draft = notice.get("draft")
            if isinstance(draft, dict) and len(self._inline) < INLINE_KEEP:
                self._inline[notice["index"]] = draft

    def _open(self, index: int, keys: dict[DeviceId, bytes], ciphertext: bytes) -> Payload:
        log = self.log
        header = log.draft(index)
        origin = log.origins[index]
        opened = open_draft(
            header,
            keys,
            ciphertext,
            me=self.keys,
            talks=log.genesis.talks_id,
            sender=origin.device,
            recipients=header.recipients,
        )
        return opened.payload

    def _addressed(self, start: int = 0) -> list[int]:
        """Indices (from ``start``) of drafts addressed to this device by another one."""
        me = self.device_id
        return sorted(
            state.index
            for state in self.log.ledger.drafts.values()
            if state.index >= start and me in state.header.recipients and state.header.sender != me
        )

    async def _process_new(self) -> tuple[list[Rejection], int, list[int]]:
        """Open every new draft addressed to us and send receipts in one batch; also
        return the drafts the server withheld."""
        log = self.log
        rejections: list[Rejection] = []
        undelivered: list[int] = []
        # The cursor only skips work: the per-draft records decide what is done, so a
        # run interrupted half-way neither loses nor repeats a draft.
        cursor = int(self.state.get("inbox", 0))
        for index in self._addressed(cursor):
            if self.state.draft_record(index) is not None:
                continue
            try:
                keys, ciphertext = await self._fetch_draft(index)
            except ServerError as exc:
                # The verified log says this draft is addressed to us; a server that
                # answers "no such draft" (or "not yours") is withholding it.
                if exc.status not in (403, 404):
                    raise
                undelivered.append(index)
                self._withheld(index, exc)
                continue
            try:
                self._open(index, keys, ciphertext)
            except ProtocolError as exc:
                self.state.put_draft(
                    index,
                    keys={b64e(k): b64e(v) for k, v in keys.items()},
                    ciphertext=ciphertext,
                    status=REJECTED,
                    error=exc.code,
                )
                self.state.record_alarm(Alarm.from_protocol(exc, index=index, what="draft"))
                header = log.draft(index)
                rejections.append(
                    Rejection(
                        index=index,
                        sender=log.origins[index].member,
                        channel=header.channel,
                        code=exc.code,
                    )
                )
                continue
            self.state.put_draft(
                index,
                keys={b64e(k): b64e(v) for k, v in keys.items()},
                ciphertext=ciphertext,
                status=OPENED,
                error=None,
            )
        # Withheld drafts are asked for again next time.
        self.state.set("inbox", min([log.size, *undelivered]))
        sent = await self._send_pending_receipts()
        return rejections, sent, undelivered

    def _withheld(self, index: int, exc: ServerError) -> None:
        """Record (once per draft) that the server refused a draft the log says is ours."""
        if any(a.name == "withheld" and a.index == index for a in self.state.alarms()):
            return
        self.state.record_alarm(
            Alarm(
                "withheld",
                f"the log holds a draft for this device but the server answers "
                f"{exc.status} {exc.code}",
                index=index,
            )
        )

    async def _send_pending_receipts(self, *, catch_up: bool = True) -> int:
        if self.state.get("frozen"):
            return 0  # sign nothing on a history we may not share with others
        log = self.log
        me = self.device_id
        receipts: list[tuple[int, Receipt, str]] = []
        for record in self.state.draft_records():
            if record.receipt is not None:
                continue
            state = log.ledger.drafts[log.leaf(record.index)]
            if me in state.received or me in state.rejected:
                self.state.mark_draft(record.index, receipt=RECEIVED)
                continue
            kind = RECEIVED if record.status == OPENED else "rejected"
            receipt = make_receipt(
                device=self.keys,
                header=state.header,
                index=record.index,
                kind=kind,
                time=now_ms(),
                reason=record.error if kind == "rejected" else None,
            )
            receipts.append((record.index, receipt, kind))
        last = -1
        for start in range(0, len(receipts), RECEIPT_BATCH):
            batch = receipts[start : start + RECEIPT_BATCH]
            try:
                promises = await self._post_receipts([r for _, r, _ in batch])
            except ServerError as exc:
                if exc.code != "duplicate" or not catch_up:
                    raise
                # A run that died after sending receipts (before noting them) left them
                # logged past the checkpoint we verified: once the next checkpoint shows
                # them, send only what is still missing.
                await self.wait_for(self.log.size)
                return start + await self._send_pending_receipts(catch_up=False)
            last = max(last, *(p.index for p in promises))
            for index, _, kind in batch:
                self.state.mark_draft(index, receipt=kind)
        if receipts:
            # Our receipts are part of what we verify: wait until the log shows them.
            await self.wait_for(last)
        return len(receipts)

    async def _post_receipts(self, receipts: Sequence[Receipt]) -> list[Promise]:
        answer = await self.transport().post(
            "/v1/receipts", {"receipts": [r.to_json() for r in receipts]}
        )
        promises = answer.get("promises") if isinstance(answer, dict) else None
        if not isinstance(promises, list) or len(promises) != len(receipts):
            raise NetworkError("server answered receipts without one promise each")
        genesis = self.genesis()
        out = []
        for receipt, raw in zip(receipts, promises, strict=True):
            promise = _promise({"promise": raw}, genesis, receipt.leaf)
            self._keep_promise(promise)
            out.append(promise)
        return out

    async def inbox(self) -> InboxResult:
        """Sync, open new drafts, send receipts; return the verified inbox."""
        await self.sync()
        self._me()
        rejected, sent, undelivered = await self._process_new()
        log = self.log
        me = self.device_id
        items = []
        for record in self.state.draft_records():
            if record.status != OPENED or record.index >= log.size or record.receipt == "own":
                continue
            payload = self._open_record(record.index)
            header = log.draft(record.index)
            state = log.ledger.drafts[header.leaf]
            items.append(
                InboxItem(
                    index=record.index,
                    channel=header.channel,
                    sender=log.origins[record.index].member,
                    title=payload.title,
                    draft=header.draft,
                    version=header.version,
                    time=header.time,
                    read=record.read,
                    acknowledged=me in state.acknowledged,
                    file_name=payload.file_name,
                )
            )
        return InboxResult(
            items=tuple(items),
            rejected=tuple(rejected),
            receipts_sent=sent,
            undelivered=tuple(undelivered),
        )

    def _open_record(self, index: int) -> Payload:
        record = self.state.draft_record(index)
        if record is None or record.keys is None or record.ciphertext is None:
            raise StateError(f"draft {index} is not in the local cache")
        try:
            keys = {DeviceId(b64d(k, length=16)): b64d(v) for k, v in record.keys.items()}
            return self._open(index, keys, record.ciphertext)
        except ProtocolError as exc:
            raise StateError(f"cached draft {index} no longer opens ({exc.code})") from exc

    async def _ensure_opened(self, index: int, *, offline: bool = False) -> None:
        """Make sure the draft at ``index`` is fetched, verified and cached."""
        if not offline:
            await self.sync()
        log = self.log
        header = log.draft(index)
        if self.device_id not in header.recipients:
            raise UsageError(f"draft {index} is not addressed to this device")
        if self.state.draft_record(index) is None:
            if offline:
                raise StateError(f"draft {index} has not been fetched yet (run 'docket inbox')")
            if header.sender != self.device_id:
                _, _, undelivered = await self._process_new()
                if index in undelivered:
                    raise Alarm(
                        "withheld",
                        "the server refuses to deliver this draft addressed to you",
                        index=index,
                    )
            else:
                # Our own draft: we are a recipient too (every channel device is), but
                # it needs no receipt from us.
                keys, ciphertext = await self._fetch_draft(index)
                self._open(index, keys, ciphertext)
                self.state.put_draft(
                    index,
                    keys={b64e(k): b64e(v) for k, v in keys.items()},
                    ciphertext=ciphertext,
                    status=OPENED,
                    error=None,
                )
                self.state.mark_draft(index, receipt="own")
        record = self.state.draft_record(index)
        if record is None or record.status != OPENED:
            code = (record.error if record is not None else None) or "unavailable"
            raise VerificationError(f"draft {index} failed verification ({code})", code=code)

    async def read(self, index: int, *, offline: bool = False) -> ReadDraft:
        """Open a verified draft addressed to us and mark it read."""
        await self._ensure_opened(index, offline=offline)
        log = self.log
        payload = self._open_record(index)
        self.state.mark_draft(index, read=True)
        header = log.draft(index)
        return ReadDraft(
            index=index,
            channel=header.channel,
            sender=log.origins[index].member,
            header=header,
            payload=payload,
            leaf=header.leaf,
        )

    async def ack(self, index: int) -> Sent:
        """Sign an ``acknowledged`` receipt (after our ``received`` one is logged)."""
        self._check_not_frozen()
        await self._ensure_opened(index)
        log = self.log
        header = log.draft(index)
        if header.sender == self.device_id:
            raise UsageError("you cannot acknowledge your own draft")
        state = log.ledger.drafts[header.leaf]
        if self.device_id in state.acknowledged:
            raise UsageError(f"draft {index} is already acknowledged")
        if self.device_id not in state.received:
            await self._send_pending_receipts()
            state = self.log.ledger.drafts[header.leaf]
            if self.device_id not in state.received:
                raise UsageError(f"draft {index} has no logged 'received' receipt from you yet")
        receipt = make_receipt(
            device=self.keys, header=header, index=index, kind=ACKNOWLEDGED, time=now_ms()
        )
        (promise,) = await self._post_receipts([receipt])
        await self.wait_for(promise.index)
        return Sent(index=promise.index, leaf=receipt.leaf)

    def receipts(self, index: int) -> ReceiptStatus:
        """Receipts for the draft at ``index``, from the verified log."""
        log = self.log
        header = log.draft(index)
        state = log.ledger.drafts[header.leaf]
        roster = log.ledger.roster
        lines = []
        for device in header.recipients:
            if device == header.sender:
                continue
            # Members removed since keep their devices in the roster's record of them.
            member = _member_of_device(roster, device)
            received = state.received.get(device)
            acked = state.acknowledged.get(device)
            rejected = state.rejected.get(device)
            lines.append(
                ReceiptLine(
                    member=member,
                    device=device,
                    received=received.time if received else None,
                    acknowledged=acked.time if acked else None,
                    rejected=rejected.reason if rejected else None,
                )
            )
        lines.sort(key=lambda line: (line.member, line.device))
        return ReceiptStatus(
            index=index,
            sender=log.origins[index].member,
            channel=header.channel,
            lines=tuple(lines),
        )

    async def history(self, draft_id: bytes, *, fetch: bool = True) -> list[HistoryItem]:
        """Every logged version of a draft, oldest first, with titles where this device
        can open them (``fetch`` opens versions addressed to us not yet fetched)."""
        log = self.log
        versions = log.ledger.lineage(draft_id)
        if not versions:
            raise UsageError(f"no draft {b64e(draft_id)} in the verified log")
        out = []
        for state in versions:
            title = None
            addressed = self.device_id in state.header.recipients
            if addressed and fetch and self.state.draft_record(state.index) is None:
                with contextlib.suppress(ClientError):
                    await self._ensure_opened(state.index)
            record = self.state.draft_record(state.index)
            if record is not None and record.status == OPENED:
                with contextlib.suppress(StateError):
                    title = self._open_record(state.index).title
            out.append(
                HistoryItem(
                    index=state.index,
                    version=state.header.version,
                    sender=state.sender_member,
                    channel=state.header.channel,
                    leaf=state.header.leaf,
                    parents=tuple(state.header.parents),
                    time=state.header.time,
                    title=title,
                )
            )
        return out

    async def watch(
        self, *, count: int | None = None, timeout: float | None = None
    ) -> AsyncIterator[InboxItem]:
        """Yield newly verified drafts as the server announces them (WebSocket push,
        long-poll fallback), until ``count`` drafts arrived or ``timeout`` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = {i.index for i in (await self.inbox()).items}
        delivered = 0

        def remaining() -> float | None:
            """Seconds left before the deadline (None: no deadline)."""
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        while count is None or delivered < count:
            left = remaining()
            if left is not None and left <= 0:
                return
            await self._wait_notice(left)
            for item in (await self.inbox()).items:
                if item.index not in seen:
                    seen.add(item.index)
                    delivered += 1
                    yield item
                    if count is not None and delivered >= count:
                        return

    async def _wait_notice(self, timeout: float | None) -> None:
        """Wait until the server announces something after our verified log, or time
        runs out.  WebSocket first; long-poll ``/v1/inbox`` if the socket fails."""
        after = self.log.size - 1
        wait = 25.0 if timeout is None else min(timeout, 25.0)
        try:
            ws = await self.transport().websocket("/v1/ws", after=after, inline=1)
        except (NetworkError, ServerError):
            ws = None
        if ws is not None:
            try:
                msg = await asyncio.wait_for(ws.receive(), timeout=wait + 0.1)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    # Closed or failed: pause so a server that keeps closing the socket
                    # is not hammered with reconnects.
                    await asyncio.sleep(1.0)
                else:
                    with contextlib.suppress(ValueError):
                        self._keep_inline(json.loads(msg.data))
            except TimeoutError:
                pass
            finally:
                await ws.close()
            return
        answer = await self.transport().request(
            "GET",
            "/v1/inbox",
            params={"after": after, "wait": max(0, int(wait)), "limit": 1, "inline": 1},
            timeout=wait + 10,
        )
        if isinstance(answer, dict) and isinstance(answer.get("items"), list):
            for item in answer["items"]:
                self._keep_inline(item)

    # -- evidence -----------------------------------------------------------------------

    async def _quorum_checkpoint(self, index: int) -> tuple[Checkpoint, str]:
        """The largest checkpoint known with the witness quorum that covers the entry at
        ``index`` and agrees with the verified log.

        Quorum is counted with the roster in force at ``index``, as the arbitrator's
        verifier counts it.  Candidates: the latest checkpoint, and the ones this client
        last verified and last saw trusted (re-fetched: cosignatures keep arriving).
        """
        log = self.log
        roster = log.roster_at(index)
        candidates: list[int | None] = [None]
        for stored in (self.state.trusted_checkpoint(), self.state.checkpoint()):
            if stored is not None:
                candidates.append(stored.size)
        seen: set[int] = set()
        best: tuple[Checkpoint, str] | None = None
        closest = (0, 0)
        for size in candidates:
            cp, note, text = await self._fetch_checkpoint(size)
            if cp.size in seen:
                continue
            seen.add(cp.size)
            if cp.size <= index or cp.size > log.size:
                continue
            if not crypto.equal(cp.root, log.root(cp.size)):
                raise self._record(
                    Alarm("fork", f"checkpoint at size {cp.size} disagrees with the verified log")
                )
            names = quorum_cosigners(cp, note, roster.witnesses())
            if len(names) >= roster.quorum():
                if best is None or cp.size > best[0].size:
                    best = (cp, text)
            elif len(names) > closest[1]:
                closest = (cp.size, len(names))
        if best is not None:
            return best
        have = f" (best: size {closest[0]} with {closest[1]})" if closest[1] else ""
        raise VerificationError(
            f"no checkpoint with the witness quorum ({roster.quorum()}) covers log index "
            f"{index} yet{have}: the witnesses must sync first",
            code="no_quorum",
        )

    async def disclose(self, index: int) -> EvidenceBundle:
        """Build an evidence bundle for a draft addressed to us (discloses its content key)."""
        await self.sync()
        await self._ensure_opened(index)
        log = self.log
        header = log.draft(index)
        record = self.state.draft_record(index)
        if record is None or record.keys is None or record.ciphertext is None:
            raise StateError(f"draft {index} is not in the local cache")
        wrapped = b64d(record.keys[b64e(self.device_id)])
        content_key = self.keys.box.unwrap(wrapped)
        state = log.ledger.drafts[header.leaf]
        cp, text = await self._quorum_checkpoint(index)

        def proven(i: int) -> Proven:
            """The entry at ``i`` with its inclusion proof in the chosen checkpoint."""
            return Proven(
                index=i, entry=log.entries[i], proof=tuple(log.tree.inclusion_proof(i, cp.size))
            )

        bundle = EvidenceBundle(
            genesis=proven(0),
            roster=tuple(proven(i) for i in log.roster_indices if i < index),
            draft=proven(index),
            ciphertext=record.ciphertext,
            content_key=content_key,
            receipts=tuple(proven(i) for i in state.receipt_indices if i < cp.size),
            checkpoint=text,
        )
        # Check our own work with the arbitrator's verifier before handing it out.
        try:
            _verify_evidence(bundle, log.genesis.talks_id)
        except ProtocolError as exc:
            raise VerificationError(f"built an unverifiable bundle: {exc.detail}") from exc
        return bundle

    @staticmethod
    def verify_evidence(data: bytes | Path, talks: str) -> EvidenceReport:
        """Verify an evidence bundle (bytes or a file) offline against a pinned talks id
        or fingerprint; raise :class:`VerificationError` unless it proves its claim."""
        if isinstance(data, Path):
            path = data
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
        return verify_evidence_bytes(data, talks)

    # -- audit --------------------------------------------------------------------------

    async def fetch_log(self) -> tuple[list[bytes], list[bytes], int]:
        """Download the log for an audit, unverified: the entries up to the newest
        checkpoint that carries the witness quorum (else the latest checkpoint), that
        checkpoint's note, and the latest checkpoint's size.

        Entries beyond the newest cosigned checkpoint are left for the next audit: the
        witnesses have not vouched for them yet, so the latest checkpoint lacking quorum
        is the normal state between syncs, not an alarm.
        """
        with contextlib.suppress(Alarm):
            # The audit forms its own judgement (and reports any alarm): a failing sync
            # must not stop it.
            await self.sync()
        latest, note, text = await self._fetch_checkpoint()
        chosen_size, chosen_text = latest.size, text
        names = quorum_cosigners(latest, note, self.roster.witnesses())
        trusted = self.state.trusted_checkpoint()
        if len(names) < self.roster.quorum() and trusted is not None:
            # Re-fetch it: more cosignatures may have arrived since.
            _, _, chosen_text = await self._fetch_checkpoint(trusted.size)
            chosen_size = trusted.size
        entries = await self._entries(0, chosen_size, partial=True)
        return entries, [chosen_text.encode("utf-8")], latest.size

    async def audit(
        self,
        *,
        workers: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> AuditReport:
        """Audit the whole log from outside (``client.auditor``), against the pinned
        talks and the state of this home's previous audit; store the new audit state
        when the audit passed."""
        entries, notes, latest = await self.fetch_log()
        self.last_audit_pending = latest - len(entries)
        previous = None
        stored = self.state.get("audit")
        if isinstance(stored, str):
            try:
                previous = AuditState.from_bytes(stored.encode("utf-8"))
            except ProtocolError as exc:
                raise StateError("stored audit state is damaged") from exc
        if workers is None and len(entries) <= 4 * DEFAULT_CHUNK:
            workers = 1  # small logs: starting processes costs more than it saves
        report = audit_log(
            entries,
            pinned_talks=self.genesis().talks_id,
            checkpoints=notes,
            previous=previous,
            workers=workers,
            progress=progress,
        )
        if report.ok and report.state is not None:
            self.state.set("audit", report.state.to_bytes().decode("utf-8"))
        return report

    # -- views --------------------------------------------------------------------------

    def trusted_summary(self) -> dict[str, JSONValue]:
        """The last verified checkpoint and the last one seen with the witness quorum."""
        out: dict[str, JSONValue] = {}
        for key, value in (
            ("checkpoint", self.state.checkpoint()),
            ("trusted", self.state.trusted_checkpoint()),
        ):
            out[key] = None if value is None else {"root": b64e(value.root), "size": value.size}
        return out


def _forgery_or(exc: ProtocolError, roster: Roster, data: bytes) -> ProtocolError:
    """What to report for an entry the ledger refused.

    The ledger stops at the first rule an entry breaks, and for a tampered entry that can
    be any rule: a changed ``roster`` field reads as a stale roster state, a changed
    ``counter`` as a gap.  When the entry's signature does not verify under the key of
    the device it names, the truth is simpler: it is not what its author signed, and the
    alarm says so (``forged``) instead of naming a symptom.
    """
    if exc.code == BadSignatureError.code:
        return exc
    try:
        entry = parse_entry(data)
    except ProtocolError:
        return exc
    claim = signature_claim(entry)
    if claim is not None:
        device, context = claim
    elif isinstance(entry, RosterChange):
        device, context = entry.author, ROSTER_CONTEXTS[entry.record_type]
    else:
        return exc
    try:
        _, public = roster.device(device)
    except ProtocolError:
        return exc
    if raw_signature_verifies(public.sign_pk, context, data, entry.sig):
        return exc
    return BadSignatureError(
        f"the entry is not what its author signed (the ledger first saw {exc.code}: {exc.detail})"
    )


def _member_of_device(roster: Roster, device: bytes) -> str:
    """The member a device belongs (or belonged) to."""
    current = roster.devices.get(DeviceId(device))
    if current is not None:
        return current
    for member in roster.members.values():
        if device in member.devices:
            return member.id
    return b64e(device)


def _check_fingerprint(device: DevicePublic, expected: str | None) -> None:
    if expected is None:
        return
    if _digits(expected) != _digits(device.fingerprint):
        raise Alarm(
            "key_change",
            f"the invited device's fingerprint is {device.fingerprint}, not the one expected",
        )


def _digits(text: str) -> str:
    return re.sub(r"[^0-9]", "", text)


def _fingerprint_digits(text: str) -> str | None:
    """The 40 digits of a talks fingerprint, or None if ``text`` is not one."""
    compact = re.sub(r"\s", "", text)
    return compact if re.fullmatch(r"[0-9]{40}", compact) else None


def check_talks_matches(talks_id: bytes, given: str) -> None:
    """Require ``given`` (a talks id in base64url, or a fingerprint) to name ``talks_id``."""
    digits = _fingerprint_digits(given)
    if digits is not None:
        if digits != _digits(readable_digits(talks_id, groups=8)):
            raise Alarm("key_change", "the talks fingerprint does not match")
        return
    try:
        expected = b64d(given.strip(), length=32, what="talks id")
    except ProtocolError as exc:
        raise UsageError("--talks must be a talks fingerprint (40 digits) or talks id") from exc
    if not crypto.equal(expected, talks_id):
        raise Alarm("key_change", "the talks id does not match")


def verify_evidence_bytes(data: bytes, talks: str) -> EvidenceReport:
    """Verify an evidence bundle against a pinned talks id (base64url) or fingerprint.

    A fingerprint cannot be turned back into a talks id, so the bundle's genesis supplies
    the candidate id and the fingerprint must match it; the protocol verifier then
    checks everything against that id.
    """
    digits = _fingerprint_digits(talks)
    if digits is not None:
        try:
            bundle = EvidenceBundle.from_bytes(data)
            genesis = Genesis.from_bytes(bundle.genesis.entry)
        except ProtocolError as exc:
            raise VerificationError(f"evidence is invalid: {exc.code}: {exc.detail}") from exc
        if _digits(genesis.fingerprint) != digits:
            raise VerificationError(
                "evidence is for other talks (fingerprint mismatch)", code="wrong_talks"
            )
        pinned = bytes(genesis.talks_id)
    else:
        try:
            pinned = b64d(talks.strip(), length=32, what="talks id")
        except ProtocolError as exc:
            raise UsageError("--talks must be a talks fingerprint (40 digits) or talks id") from exc
    try:
        return _verify_evidence(data, pinned)
    except ProtocolError as exc:
        raise VerificationError(f"evidence does not verify: {exc.detail}", code=exc.code) from exc


__all__ = [
    "ClientError",
    "DocketClient",
    "HistoryItem",
    "InboxItem",
    "InboxResult",
    "Invitation",
    "InvitationCode",
    "ReadDraft",
    "ReceiptStatus",
    "Sent",
    "SyncResult",
    "check_talks_matches",
    "verify_evidence_bytes",
]
