"""Challenge-response login and short-lived bearer tokens.

1. ``challenge(device)``: 32 random bytes, single use, valid ``challenge_ttl``.  Unknown
   devices get a challenge too, so the answer is no roster oracle.
2. ``token(challenge, device, sig)``: the device signs ``CTX_AUTH || canonical({
   challenge, device, origin, talks})``, binding the answer to this log and these talks.
   The device must be a current roster device; unknown or removed keys can never log in.
3. Tokens are 32 random bytes; only SHA-256(token) is kept (in memory and in the
   database, so a restart does not log everybody out).  Every request re-checks that
   the token's device is still in the roster, so removing a device revokes its tokens.
4. ``logout`` revokes the presented token and ``rotate`` swaps it for a new one: the old
   token is gone from memory and the database before the answer, so it gets 401 at once.

Expiry is measured on a clock that never goes backwards (:class:`SteadyClock`, its
high-water mark stored with every token), and expired tokens and challenges are
deleted, not merely ignored: setting the system clock back cannot revive them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass

from protocol import crypto
from protocol.encoding import b64d, b64e
from protocol.errors import ProtocolError
from protocol.keys import DEVICE_ID_LEN, DeviceId, DevicePublic
from protocol.records import verify_record
from protocol.roster import Member
from server.clock import Clock, SteadyClock
from server.errors import BadChallengeError, BadTokenError, UnauthenticatedError, UnavailableError
from server.services.state import LogState
from server.storage.auth import (
    delete_expired_tokens_txn,
    delete_token_txn,
    high_water_txn,
    insert_token_txn,
    live_tokens_txn,
)
from server.storage.db import Store

log = logging.getLogger("docket.auth")

TOKEN_LEN = 32
CHALLENGE_LEN = 32
SWEEP_MS = 10_000
"""Expired challenges and tokens are swept from memory at most this often."""
SWEEP_INTERVAL = 10.0
"""Seconds between sweeps of the database: expired tokens deleted, the clock's
high-water mark stored.  A crash loses at most this much of the mark (a graceful stop
sweeps once more), so a clock set back across a crash revives nothing that expired
more than this long before it."""


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
        self._swept = 0
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the tokens that are still valid, after deleting the expired ones."""
        stored = await self._store.read(high_water_txn)
        if isinstance(self._clock, SteadyClock):
            self._clock.advance(stored)
        now = max(self._clock(), stored)
        await self._sweep_store(now, "at start-up")
        for token_hash, device, expires in await self._store.read(live_tokens_txn, now):
            self._tokens[token_hash] = (DeviceId(device), expires)
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="docket-token-sweeper")

    async def close(self) -> None:
        """Stop sweeping; one last sweep keeps the exact high-water mark."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self._sweep_store(self._clock(), "at shutdown")

    async def _sweep_store(self, now: int, when: str) -> None:
        """Delete expired tokens and store the high-water mark, unless read-only."""
        if self._state.read_only is not None:
            return  # never write into a store that failed its checks
        try:
            await self._store.write(delete_expired_tokens_txn, now)
        except Exception as exc:
            # A full or failing disk: memory is swept anyway, and expired tokens are
            # never loaded; one line, the disk's own error says the rest.
            log.warning("could not sweep expired tokens %s: %s", when, exc)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = self._clock()
            self._swept = -SWEEP_MS  # force the in-memory sweep too
            self._sweep(now)
            await self._sweep_store(now, "in the periodic sweep")

    def _sweep(self, now: int) -> None:
        """Forget expired challenges and tokens (the database is swept on each insert)."""
        if now - self._swept < SWEEP_MS:
            return
        self._swept = now
        self._challenges = {c: v for c, v in self._challenges.items() if v[1] > now}
        self._tokens = {h: v for h, v in self._tokens.items() if v[1] > now}

    # -- login ------------------------------------------------------------------------

    def challenge(self, device: bytes) -> tuple[bytes, int]:
        """A fresh single-use challenge for ``device`` and its expiry (ms)."""
        self._state.require_ledger()
        now = self._clock()
        self._sweep(now)
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
        return await self._issue(DeviceId(device), now)

    async def _issue(self, device: DeviceId, now: int) -> tuple[bytes, int]:
        token = os.urandom(TOKEN_LEN)
        token_hash = crypto.sha256(token)
        expires = now + self._token_ms
        await self._store.write(insert_token_txn, token_hash, device, expires, now)
        self._tokens[token_hash] = (device, expires)
        self._sweep(now)
        if len(self._tokens) > 4 * self._max_challenges:
            self._tokens = {h: v for h, v in self._tokens.items() if v[1] > now}
        return token, expires

    async def logout(self, authorization: str | None) -> None:
        """Revoke the presented (valid) token: from now on it answers 401."""
        token_hash = self._lookup(authorization)[0]
        # Forget it in memory first: no request can use it while the delete commits.
        self._tokens.pop(token_hash, None)
        await self._store.write(delete_token_txn, token_hash)

    async def rotate(self, authorization: str | None) -> tuple[bytes, int]:
        """A new token for the caller's device; the presented one is revoked at once."""
        token_hash, device, _ = self._lookup(authorization)
        self._tokens.pop(token_hash, None)
        await self._store.write(delete_token_txn, token_hash)
        return await self._issue(device, self._clock())

    def alive(self, authorization: str | None) -> bool:
        """Whether the token in ``authorization`` is still valid (for long sessions)."""
        try:
            self._lookup(authorization)
        except ProtocolError:
            return False
        return True

    # -- per request ----------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> tuple[Caller, int]:
        """The caller behind an ``Authorization: Bearer`` header, and the token's expiry."""
        ledger = self._state.require_ledger()
        _, device, expires = self._lookup(authorization)
        try:
            member, public = ledger.roster.device(device)
        except ProtocolError:
            raise BadTokenError("the token's device is no longer in the roster") from None
        return Caller(device=device, public=public, member=member), expires

    def _lookup(self, authorization: str | None) -> tuple[bytes, DeviceId, int]:
        """``(hash, device, expires)`` of a valid bearer token."""
        if not authorization:
            raise UnauthenticatedError("this route needs a bearer token")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise UnauthenticatedError("expected 'Authorization: Bearer <token>'")
        try:
            token = b64d(value.strip(), length=TOKEN_LEN, what="token")
        except ProtocolError:
            raise BadTokenError("malformed bearer token") from None
        token_hash = crypto.sha256(token)
        found = self._tokens.get(token_hash)
        if found is None or found[1] <= self._clock():
            raise BadTokenError("unknown or expired token")
        return token_hash, found[0], found[1]


def parse_device_id(value: object) -> DeviceId:
    """A device id from base64url (16 bytes)."""
    return DeviceId(b64d(value, length=DEVICE_ID_LEN, what="device"))
