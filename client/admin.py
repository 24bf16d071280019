"""``Admin``: founding and joining the talks, invitations, roster and channel changes.

1. **Pin.**  Founding or joining stores the genesis whose hash is the talks id handed
   out of band.  Every later answer is checked against it; a different genesis is the
   ``key_change`` alarm.
4. **Roster** changes are signed locally on top of the verified roster head, checked
   locally with the same rules the server applies, and submitted; the roster itself is
   only ever read from the verified log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from client import shortcode
from client.acts import submit_signed
from client.core import (
    ClientCore,
    RequireCurrent,
    Sent,
    check_talks_matches,
    digits,
    now_ms,
    verified_promise,
)
from client.errors import Alarm, NetworkError, ServerError, UsageError
from client.logsync import LogSync
from protocol import crypto
from protocol.encoding import Fields, JSONValue, b64d, b64e, canonical, parse
from protocol.errors import ProtocolError
from protocol.genesis import Genesis, WitnessPolicy, found
from protocol.keys import DevicePublic
from protocol.names import check_name, normalise_name
from protocol.records import ID_RE
from protocol.roster import (
    CHANNEL_KINDS,
    ROLE_HEAD,
    ROLE_MEDIATOR,
    STAFF_ROLES,
    ChangeArgs,
    RosterChange,
    make_change,
)

INVITE_PREFIX = "docket-invite:"
ROLES = ("head", "member", *STAFF_ROLES)

# The invitation id goes into a URL path: keep it to URL-safe characters.
_INVITATION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,200}")
_SERVER_RE = re.compile(r"https?://[^\s/?#]+(?:/[^\s?#]*)?")


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
    short_code: str | None = None
    """The 16-character form (:mod:`client.shortcode`), once stored at the server."""

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "code": self.code,
            "short_code": self.short_code,
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
        code = "".join(code.split())  # a code wrapped over lines, or pasted with spaces
        if not code.startswith(INVITE_PREFIX):
            raise UsageError(
                f"this is not an invitation code: a full code is one line starting "
                f"{INVITE_PREFIX!r} (a short code looks like 'ABCDE-FGHJK-...'); "
                "paste the code you were given as it is",
                code="bad_invitation",
            )
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
            # Almost always a code cut short or mistyped in copying, not a forgery.
            raise UsageError(
                f"this invitation code is cut short or mistyped ({len(code)} characters): "
                "ask whoever invited you to send it again, and paste it whole",
                code="bad_invitation",
            ) from exc
        return out


class Admin:
    """Who takes part: the talks' founding, invitations, enrolment, channels (steps 1, 4)."""

    def __init__(
        self,
        core: ClientCore,
        logsync: LogSync,
        *,
        require_current: RequireCurrent | None = None,
    ) -> None:
        self.core = core
        self.logsync = logsync
        self._require_current = require_current or logsync.sync

    # -- founding and joining ---------------------------------------------------------

    async def server_identity(self) -> dict[str, Any]:
        """``GET /v1/talks`` as received (unverified): genesis, log key, origin."""
        answer = await self.core.transport(auth=False).request("GET", "/v1/talks", auth=False)
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
        quorum: int | None = None,
        policy: WitnessPolicy | None = None,
    ) -> Genesis:
        """Found the talks as the mediator: sign the genesis and submit it.

        ``policy`` is the witness policy (default: :meth:`WitnessPolicy.parties`, the
        mediator and a majority of the delegations); ``quorum`` alone means a ``count``
        policy of that many witnesses.

        ``log_key`` and ``origin`` are the server's checkpoint key and log origin, which
        ``docket-server init`` prints; they are pinned in the genesis, so the mediator
        must take them from the operator, not from the network.
        """
        core = self.core
        if core.state.genesis() is not None:
            raise UsageError("this home already belongs to talks")
        try:
            genesis = found(
                mediator_keys=core.keys,
                mediator=mediator,
                mediator_name=display_name(mediator_name, "--name"),
                origin=origin,
                title=display_name(title, "--title"),
                log_key=log_key,
                witness=policy
                or (WitnessPolicy.parties() if quorum is None else WitnessPolicy(quorum=quorum)),
                time=now_ms(),
            )
        except ProtocolError as exc:
            if exc.code == "weak_key":  # a mistyped key that still decodes to 32 bytes
                raise UsageError(
                    f"--log-key is not a valid key: {_FROM_INIT}", code="bad_log_key"
                ) from exc
            raise UsageError(f"cannot found talks: {exc.detail}") from exc
        check_founding_token(founding_token)
        try:
            answer = await core.transport(auth=False).post(
                "/v1/talks", {"genesis": genesis.to_json(), "token": founding_token}, auth=False
            )
        except ServerError as exc:
            raise _founding_refusal(exc) from exc
        promise = verified_promise(answer, genesis, genesis.leaf)
        if promise.index != 0:
            raise Alarm("gap", "the server did not log the genesis as entry 0")
        core.state.set("server", core.server.rstrip("/"))
        core.state.pin_genesis(genesis)
        core.state.set("member", mediator)
        core.forget_log()
        await self.logsync.sync()
        return genesis

    async def join(self, code: str, *, name: str, expect_talks: str | None = None) -> Genesis:
        """Accept an invitation: pin the talks from the code, register this device.

        The device is usable once the inviter enrols it (``docket enrol``); until then
        the server refuses its authentication.
        """
        core = self.core
        name = display_name(name, "--name")
        if not code.strip().startswith(INVITE_PREFIX) and shortcode.looks_short(code):
            code = await self.full_code(code)
        invitation = InvitationCode.decode(code)
        if core.server_url is None:
            core.server_url = invitation.server
        if expect_talks is not None:
            check_talks_matches(invitation.talks, expect_talks)
        keys = core.keys  # unlock first: a wrong passphrase should change nothing
        answer = await self.server_identity()
        try:
            genesis = Genesis.from_json(answer.get("genesis"))
        except ProtocolError as exc:
            raise core.record(Alarm.from_protocol(exc, what="server genesis")) from exc
        if not crypto.equal(genesis.talks_id, invitation.talks):
            raise core.record(
                Alarm("key_change", "the server's talks differ from the invitation's")
            )
        core.state.set("server", core.server.rstrip("/"))
        core.state.pin_genesis(genesis)
        core.forget_log()
        body: dict[str, JSONValue] = {
            "device": keys.public.to_json(),
            "invitation": invitation.id,
            "name": name,
            "talks": b64e(genesis.talks_id),
        }
        sig = keys.signing.sign(crypto.CTX_JOIN, canonical(body))
        try:
            await core.transport(auth=False).post(
                f"/v1/invitations/{invitation.id}/accept",
                {
                    "device": keys.public.to_json(),
                    "name": name,
                    "sig": b64e(sig),
                    "token": invitation.token,
                },
                auth=False,
            )
        except ServerError as exc:
            if exc.code in ("confusable_name", "bad_name"):
                raise UsageError(
                    f"the display name {name!r} looks the same as one already in these talks "
                    "(or is not allowed): choose another with --name",
                    code=exc.code,
                ) from exc
            raise
        core.state.set(
            "pending",
            {
                "delegation": invitation.delegation,
                "member": invitation.member,
                "name": name,
                "role": invitation.role,
            },
        )
        core.state.set("member", invitation.member)
        return genesis

    # -- invitations ------------------------------------------------------------------

    async def invite(self, member: str, *, role: str, delegation: str | None = None) -> Invitation:
        """Create an invitation (mediator: any role; head: members of own delegation)."""
        core = self.core
        if role not in ROLES:
            raise UsageError(f"role must be one of {', '.join(ROLES)}")
        if not ID_RE.fullmatch(member):
            raise UsageError("member ids are lowercase letters, digits and ._- (1-64)")
        await self.logsync.sync()
        me = core.roster.members[core.me()]
        if me.role == ROLE_HEAD:
            if role != "member":
                raise UsageError("a delegation head can only invite members", code="forbidden")
            if delegation is not None and delegation != me.delegation:
                # Never quietly swap in the head's own delegation: the person invited would
                # join a delegation the inviter did not name.
                raise UsageError(
                    f"a delegation head invites members of their own delegation only "
                    f"({me.delegation!r}), not of {delegation!r}",
                    code="forbidden",
                )
            delegation = me.delegation
        elif me.role != ROLE_MEDIATOR:
            raise UsageError("only the mediator and delegation heads can invite")
        if role in ("head", "member") and not delegation:
            raise UsageError("a head or member invitation needs --delegation")
        if role in STAFF_ROLES:
            delegation = None
        if member in core.roster.members:
            raise UsageError(f"member id {member!r} is already in use")
        answer = await core.transport().post(
            "/v1/invitations", {"delegation": delegation, "member": member, "role": role}
        )
        if not isinstance(answer, dict):
            raise NetworkError("server sent an invalid invitation")
        inv_id, token = answer.get("id"), answer.get("token")
        if not isinstance(inv_id, str) or not isinstance(token, str):
            raise NetworkError("server sent an invalid invitation")
        # Remember what we invited whom as: the server's invitation list is unsigned, and
        # enrolment must use our own record of the role and delegation, not its word.
        created = dict(core.state.get("invitations", {}))
        created[member] = {"delegation": delegation, "id": inv_id, "role": role}
        core.state.set("invitations", created)
        code = InvitationCode(
            server=core.server,
            talks=core.genesis().talks_id,
            id=inv_id,
            token=token,
            member=member,
            role=role,
            delegation=delegation,
        ).encode()
        expires = answer.get("expires")
        short, handle, sealed = shortcode.seal(code)
        await core.transport().post(
            f"/v1/invitations/{inv_id}/short", {"handle": b64e(handle), "sealed": b64e(sealed)}
        )
        return Invitation(
            id=inv_id,
            token=token,
            member=member,
            role=role,
            delegation=delegation,
            expires=expires if isinstance(expires, int) else 0,
            code=code,
            short_code=short,
        )

    async def full_code(self, short: str) -> str:
        """The full invitation code behind a short code, fetched from the server and
        checked against the fingerprint the short code is (:mod:`client.shortcode`)."""
        data = shortcode.parse(short)  # a typo is caught here, before any request
        if self.core.server_url is None:
            raise UsageError(
                "a short invitation code needs the server: add --server URL (the one "
                "'docket invite' printed beside the code)"
            )
        try:
            answer = await self.core.transport(auth=False).post(
                "/v1/invitations/short", {"handle": b64e(shortcode.handle(data))}, auth=False
            )
        except ServerError as exc:
            if exc.code == "not_found":
                raise UsageError(
                    f"{self.core.server} has no open invitation under this short code: "
                    "check each character, or ask for the code again (it may have expired "
                    "or been used already)",
                    code="bad_short_code",
                ) from exc
            raise
        sealed = answer.get("sealed") if isinstance(answer, dict) else None
        try:
            box = b64d(sealed, what="sealed invitation")
        except ProtocolError as exc:
            raise NetworkError("server sent an invalid short-code answer") from exc
        return shortcode.open_sealed(data, box)

    async def invitations(self) -> list[dict[str, Any]]:
        """Invitations this device created, as the server reports them (unverified)."""
        answer = await self.core.transport().get("/v1/invitations")
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
        core = self.core
        mine = core.state.get("invitations", {}).get(member)
        if mine is None:
            raise UsageError(f"this device has not invited {member!r} ('docket invite' first)")
        for inv in await self.invitations():
            if inv.get("id") == mine["id"] and inv.get("state") == "accepted":
                if (inv.get("member"), inv.get("role"), inv.get("delegation")) != (
                    member,
                    mine["role"],
                    mine["delegation"],
                ):
                    raise core.record(
                        Alarm("forged", f"the server altered the invitation of {member!r}")
                    )
                try:
                    device = DevicePublic.from_json(inv.get("device"))
                except ProtocolError as exc:
                    raise core.record(Alarm.from_protocol(exc, what="invited device key")) from exc
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
        stale roster, sync and re-sign once (:func:`client.acts.submit_signed`)."""
        core = self.core

        def sign() -> RosterChange:
            return make_change(
                author=core.keys, roster=core.roster, op=op, args=args, time=now_ms()
            )

        def check(change: RosterChange) -> None:
            core.roster.copy().apply(change, index=core.log.size)

        return await submit_signed(
            core, self.logsync, self._require_current, path="/v1/roster", sign=sign, check=check
        )

    async def set_witness(self, name: str, *, key: bytes, party: str) -> Sent:
        """Register (or rotate) a witness key for ``party`` (``witness.set``)."""
        return await self._submit_change(
            "witness.set", ChangeArgs(witness=name, key=key, party=party)
        )

    async def remove_witness(self, name: str) -> Sent:
        """Retire a registered witness for good (``witness.remove``)."""
        return await self._submit_change("witness.remove", ChangeArgs(witness=name))

    async def set_policy(self, policy: WitnessPolicy) -> Sent:
        """Replace the witness policy (``policy.set``, mediator)."""
        return await self._submit_change("policy.set", ChangeArgs(policy=policy))

    async def create_delegation(
        self, delegation: str, *, name: str, head: str, expect_fingerprint: str | None = None
    ) -> Sent:
        """Mediator: create a delegation headed by ``head`` (who accepted an invitation)."""
        # Say what is wrong before asking the server about invitations: an existing
        # delegation is the reason, whatever became of the head's invitation.
        await self.logsync.sync()
        existing = self.core.roster.delegations.get(delegation)
        if existing is not None:
            raise UsageError(
                f"delegation {delegation!r} already exists (headed by {existing.head!r}); "
                "choose another id",
                code="roster_conflict",
            )
        mine = self.core.state.get("invitations", {}).get(head)
        if mine is not None and mine.get("role") != ROLE_HEAD:
            raise UsageError(
                f"{head!r} was invited as {mine.get('role')!r}, not as a head "
                f"('docket invite {head} --role head --delegation {delegation}')",
                code="roster_conflict",
            )
        if mine is not None and mine.get("delegation") != delegation:
            raise UsageError(
                f"{head!r} was invited to head {mine.get('delegation')!r}, not {delegation!r}",
                code="roster_conflict",
            )
        device, head_name, _ = await self._accepted(head)
        _check_fingerprint(device, expect_fingerprint)
        return await self._submit_change(
            "delegation.create",
            ChangeArgs(
                delegation=delegation,
                name=display_name(name, "delegation name"),
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
                name=display_name(name, "channel name"),
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


_FROM_INIT = "copy it whole from what 'docket-server init' printed"


def display_name(name: str, what: str) -> str:
    """A name a person typed, as it will be signed (NFC, no outer spaces), or a
    :class:`UsageError` (``bad_name``) saying which character is not allowed."""
    normalised = normalise_name(name)
    try:
        return check_name(normalised, what)
    except ProtocolError as exc:
        raise UsageError(
            f"{exc.detail}: names are shown to every party as written, so they may not hold "
            "control, bidi, zero-width or other invisible characters",
            code=exc.code,
        ) from exc


def check_founding_token(token: str) -> None:
    """A founding token is 32 bytes in base64url (43 characters): say so, not "not
    unpadded base64url", when a character was lost or changed in copying."""
    try:
        b64d(token, length=32, what="founding token")
    except ProtocolError as exc:
        raise UsageError(
            f"this is not a founding token ({len(token)} characters; a founding token has "
            f"43 letters, digits, '-' or '_'): {_FROM_INIT}",
            code="bad_founding_token",
        ) from exc


def check_log_key(text: str) -> bytes:
    """The server's log key (``--log-key``): 32 bytes in base64url, a valid key."""
    try:
        key = b64d(text, length=32, what="log key")
    except ProtocolError as exc:
        raise UsageError(
            f"--log-key is not a log key ({len(text)} characters; a log key has 43 letters, "
            f"digits, '-' or '_'): {_FROM_INIT}",
            code="bad_log_key",
        ) from exc
    return key


def _founding_refusal(exc: ServerError) -> Exception:
    """The server's refusal of a genesis, in words that point at the likely typo."""
    if exc.code == "bad_token":
        return UsageError(
            "the server refused the founding token: it is not the one this server's "
            f"'docket-server init' printed; {_FROM_INIT}.  Nothing was founded",
            code="bad_founding_token",
        )
    if exc.code == "bad_value" and "checkpoint key" in exc.detail:
        return UsageError(
            "--log-key is not this server's log key: a wrong key would pin another log; "
            f"{_FROM_INIT}.  Nothing was founded",
            code="bad_log_key",
        )
    if exc.code == "bad_value" and "origin" in exc.detail:
        return UsageError(
            "--origin is not this server's log origin; copy it from what 'docket-server "
            "init' printed.  Nothing was founded",
            code="usage",
        )
    return exc


def _check_fingerprint(device: DevicePublic, expected: str | None) -> None:
    if expected is None:
        return
    if digits(expected) != digits(device.fingerprint):
        raise Alarm(
            "key_change",
            f"the invited device's fingerprint is {device.fingerprint}, not the one expected",
        )
