"""Challenge-response login and short-lived bearer tokens.

1. ``challenge(device)``: 32 random bytes, single use, valid ``challenge_ttl``.  Unknown
   devices get a challenge too, so the answer is no roster oracle.
2. ``token(challenge, device, sig)``: the device signs ``CTX_AUTH || canonical({
   challenge, device, origin, talks})``, binding the answer to this log and these talks.
   The device must be a current roster device; unknown or removed keys can never log in.
3. Tokens are 32 random bytes; only SHA-256(token) is kept (in memory and in the
   database, so a restart does not log everybody out).  Every request re-checks that
   the token's device is still in the roster, so removing a device revokes its tokens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from protocol import crypto
from protocol.encoding import b64d, b64e
from protocol.errors import ProtocolError
from protocol.keys import DEVICE_ID_LEN, DeviceId, DevicePublic
from protocol.records import verify_record
from protocol.roster import Member
from server.clock import Clock
from server.errors import BadChallengeError, BadTokenError, UnauthenticatedError, UnavailableError
from server.services.state import LogState
from server.storage.auth import insert_token_txn, live_tokens_txn
from server.storage.db import Store

TOKEN_LEN = 32
CHALLENGE_LEN = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """An authenticated current roster device and its member."""

    device: DeviceId
    public: DevicePublic
    member: Member

    @property
    def role(self) -> str:
        """The member's role: mediator, head, member, staff, observer or auditor."""
        return self.member.role


class AuthService:
    """Challenges, tokens, and the caller behind each request."""

    def __init__(
        self,
        *,
        state: LogState,
        store: Store,
        clock: Clock,
        token_ttl: float,
        challenge_ttl: float,
        max_challenges: int,
    ) -> None:
        self._state = state
        self._store = store
        self._clock = clock
        self._token_ms = int(token_ttl * 1000)
        self._challenge_ms = int(challenge_ttl * 1000)
        self._max_challenges = max_challenges
        self._challenges: dict[bytes, tuple[bytes, int]] = {}
        self._tokens: dict[bytes, tuple[DeviceId, int]] = {}

    async def start(self) -> None:
        """Load the tokens that are still valid."""
        now = self._clock()
        for token_hash, device, expires in await self._store.read(live_tokens_txn, now):
            self._tokens[token_hash] = (DeviceId(device), expires)

    # -- login ------------------------------------------------------------------------

    def challenge(self, device: bytes) -> tuple[bytes, int]:
        """A fresh single-use challenge for ``device`` and its expiry (ms)."""
        self._state.require_ledger()
        now = self._clock()
        if len(self._challenges) >= self._max_challenges:
            self._challenges = {c: v for c, v in self._challenges.items() if v[1] > now}
            if len(self._challenges) >= self._max_challenges:
                raise UnavailableError("too many outstanding challenges; try again soon")
        challenge = os.urandom(CHALLENGE_LEN)
        expires = now + self._challenge_ms
        self._challenges[challenge] = (device, expires)
        return challenge, expires

    async def token(self, challenge: bytes, device: bytes, sig: bytes) -> tuple[bytes, int]:
        """Check a signed challenge; return a new bearer token and its expiry (ms)."""
        ledger = self._state.require_ledger()
        # Single use: the challenge is gone whether or not this attempt succeeds.
        issued = self._challenges.pop(challenge, None)
        now = self._clock()
        if issued is None or issued[1] <= now or not crypto.equal(issued[0], device):
            raise BadChallengeError("unknown, used or expired challenge")
        try:
            _, public = ledger.roster.device(device)
        except ProtocolError:
            raise BadChallengeError("this device cannot log in") from None
        record = {
            "challenge": b64e(challenge),
            "device": b64e(device),
            "origin": self._state.origin,
            "sig": b64e(sig),
            "talks": b64e(ledger.talks),
        }
        try:
            verify_record(public.sign_pk, crypto.CTX_AUTH, record)
        except ProtocolError:
            raise BadChallengeError("the challenge signature does not verify") from None
        token = os.urandom(TOKEN_LEN)
        token_hash = crypto.sha256(token)
        expires = now + self._token_ms
        await self._store.write(insert_token_txn, token_hash, device, expires, now)
        self._tokens[token_hash] = (DeviceId(device), expires)
        if len(self._tokens) > 4 * self._max_challenges:
            self._tokens = {h: v for h, v in self._tokens.items() if v[1] > now}
        return token, expires

    # -- per request ----------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> tuple[Caller, int]:
        """The caller behind an ``Authorization: Bearer`` header, and the token's expiry."""
        ledger = self._state.require_ledger()
        if not authorization:
            raise UnauthenticatedError("this route needs a bearer token")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise UnauthenticatedError("expected 'Authorization: Bearer <token>'")
        try:
            token = b64d(value.strip(), length=TOKEN_LEN, what="token")
        except ProtocolError:
            raise BadTokenError("malformed bearer token") from None
        found = self._tokens.get(crypto.sha256(token))
        if found is None or found[1] <= self._clock():
            raise BadTokenError("unknown or expired token")
        device, expires = found
        try:
            member, public = ledger.roster.device(device)
        except ProtocolError:
            raise BadTokenError("the token's device is no longer in the roster") from None
        return Caller(device=device, public=public, member=member), expires


def parse_device_id(value: object) -> DeviceId:
    """A device id from base64url (16 bytes)."""
    return DeviceId(b64d(value, length=DEVICE_ID_LEN, what="device"))
