"""The negotiation's acts from a participant's side: rounds, initials, sealed proposals.

Every rule is :mod:`protocol.negotiation`'s, checked on the client's own verified
ledger before anything is signed (:class:`client.acts.Acts`), so a refusal here is a
stable code with nothing sent.  What is read (rounds, standing initials, agreed texts,
calls) comes from the verified log only.

Sealed proposals
  A proposal for call N is an ordinary draft to the call's channel, delivered to every
  device of it, whose only content is a file of type :data:`SEALED_TYPE`: the real
  payload encrypted (XChaCha20-Poly1305) under a fresh key ``K`` that only the sender
  holds, with the associated data ``"docket/v1/proposal" || talks || N``.  The sender
  keeps ``K`` wrapped to its own device's X25519 key in its local state, logs
  ``proposal.commit`` with ``commitment(K, proposal plaintext)``, and after the release
  logs ``proposal.reveal`` with ``K`` wrapped to every recipient device of the draft
  (sealed boxes: the server never learns ``K``).  A reader unwraps ``K``, opens the
  inner payload and checks it against the commitment the sender logged before the
  release.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from client.acts import Acts
from client.core import ClientCore, Sent
from client.errors import ServerError, UsageError
from client.logsync import LogSync
from client.opener import DraftOpener
from protocol import crypto
from protocol.encoding import JSONValue, b64d, b64e
from protocol.envelope import Payload, keys_to_json
from protocol.errors import CommitmentMismatchError, LateProposalError, ProtocolError
from protocol.keys import DeviceId
from protocol.negotiation import (
    SEALED_TYPE,
    AgreedText,
    Call,
    CallsState,
    InitialsState,
    Proposal,
    Round,
    RoundsState,
    open_proposal,
    seal_proposal,
)

SEALED_NAME = "proposal.sealed"
CLOSE_ATTEMPTS = 3
"""How often a round close is re-signed when another entry landed first."""

SendDraft = Callable[[str, Payload], Awaitable[Sent]]


@dataclass(frozen=True, slots=True, kw_only=True)
class TextStatus:
    """Where the newest version of a draft stands: tabled, initialled k of n, agreed."""

    channel: str
    draft: bytes
    index: int
    version: int
    initialled: tuple[str, ...]
    parties: tuple[str, ...]
    agreed: AgreedText | None

    @property
    def state(self) -> str:
        if self.agreed is not None:
            return "agreed"
        if self.initialled:
            return f"initialled {len(self.initialled)} of {len(self.parties)}"
        return "tabled"

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "agreed": None if self.agreed is None else self.agreed.to_json(),
            "channel": self.channel,
            "draft": b64e(self.draft),
            "index": self.index,
            "initialled": list(self.initialled),
            "parties": list(self.parties),
            "state": self.state,
            "version": self.version,
        }


class Negotiation:
    """Rounds, initials and calls for proposals (see the module docstring)."""

    def __init__(
        self,
        core: ClientCore,
        logsync: LogSync,
        acts: Acts,
        opener: DraftOpener,
        *,
        send: SendDraft,
    ) -> None:
        self.core = core
        self.logsync = logsync
        self.acts = acts
        self.opener = opener
        self._send = send

    # -- states from the verified log ---------------------------------------------------

    def _state(self, name: str) -> object:
        return self.core.log.ledger.act_state(name)

    @property
    def rounds_state(self) -> RoundsState:
        st = self._state("rounds")
        assert isinstance(st, RoundsState)
        return st

    @property
    def initials_state(self) -> InitialsState:
        st = self._state("initials")
        assert isinstance(st, InitialsState)
        return st

    @property
    def calls_state(self) -> CallsState:
        st = self._state("calls")
        assert isinstance(st, CallsState)
        return st

    def rounds(self) -> list[Round]:
        return self.rounds_state.all()

    def agreed(self) -> list[AgreedText]:
        return sorted(self.initials_state.agreed.values(), key=lambda a: a.agreed_at)

    def texts(self) -> list[TextStatus]:
        """The state of every draft's newest version in channels with delegations."""
        ledger = self.core.log.ledger
        roster = ledger.roster
        newest: dict[bytes, tuple[int, int]] = {}
        for state in ledger.drafts.values():
            h = state.header
            best = newest.get(h.draft)
            if best is None or (h.version, state.index) > best:
                newest[h.draft] = (h.version, state.index)
        out = []
        st = self.initials_state
        for draft_id, (version, index) in sorted(newest.items(), key=lambda kv: kv[1][1]):
            header = ledger.drafts[self.core.log.leaf(index)].header
            try:
                parties = tuple(sorted(roster.channel(header.channel).delegations))
            except ProtocolError:
                continue
            if not parties:
                continue
            out.append(
                TextStatus(
                    channel=header.channel,
                    draft=draft_id,
                    index=index,
                    version=version,
                    initialled=tuple(sorted(st.initials.get(header.leaf, {}))),
                    parties=parties,
                    agreed=st.agreed.get(header.leaf),
                )
            )
        return out

    # -- rounds ---------------------------------------------------------------------------

    def _scope_rounds(self, channel: str | None) -> list[Round]:
        return [r for r in self.rounds() if r.channel == channel]

    async def open_round(self, channel: str | None) -> Sent:
        await self.logsync.sync()
        number = len(self._scope_rounds(channel)) + 1
        return await self.acts.submit("round.open", {"channel": channel, "round": number})

    async def close_round(self, channel: str | None) -> Sent:
        """Close the open round of the scope over the log just before the record."""
        await self.logsync.sync()
        open_rounds = [r for r in self._scope_rounds(channel) if r.closed_at is None]
        if not open_rounds:
            raise UsageError("bad_round: no round of this scope is open")
        number = open_rounds[-1].number

        def body() -> Mapping[str, JSONValue]:
            # Evaluated after the sync that precedes signing: the log just before the act.
            log = self.core.log
            return {"channel": channel, "round": number, "root": b64e(log.root()), "size": log.size}

        for attempt in range(CLOSE_ATTEMPTS):
            try:
                return await self.acts.submit("round.close", body)
            except ServerError as exc:
                # Another entry landed between signing and sequencing: sign again.
                if exc.code != "unknown_checkpoint" or attempt == CLOSE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def countersign(self, number: int, channel: str | None) -> Sent:
        await self.logsync.sync()
        rounds = self._scope_rounds(channel)
        if not 1 <= number <= len(rounds) or rounds[number - 1].closed_at is None:
            raise UsageError(f"bad_round: round {number} of this scope is not closed")
        r = rounds[number - 1]
        assert r.root is not None
        body: dict[str, JSONValue] = {
            "channel": channel,
            "round": number,
            "root": b64e(r.root),
            "size": r.size,
        }
        return await self.acts.submit("round.countersign", body)

    # -- initials ----------------------------------------------------------------------

    async def initial(self, index: int, *, withdraw: bool = False) -> Sent:
        """Initial (or withdraw the initial on) exactly the version at ``index``."""
        await self.logsync.sync()
        header = self.core.log.draft(index)
        body: dict[str, JSONValue] = {
            "channel": header.channel,
            "draft": b64e(header.draft),
            "entry": b64e(header.leaf),
        }
        if withdraw:
            return await self.acts.submit("initial.withdraw", body)
        body |= {"commit": b64e(header.commit), "index": index}
        return await self.acts.submit("initial", body)

    # -- calls for sealed proposals ------------------------------------------------------

    def calls(self) -> list[Call]:
        return list(self.calls_state.calls)

    def _call(self, number: int) -> Call:
        calls = self.calls_state.calls
        if not 1 <= number <= len(calls):
            raise UsageError(f"bad_call: no call {number}")
        return calls[number - 1]

    async def open_call(self, channel: str, delegations: list[str], deadline: int) -> Sent:
        await self.logsync.sync()
        body: dict[str, JSONValue] = {
            "call": len(self.calls_state.calls) + 1,
            "channel": channel,
            "deadline": deadline,
            "delegations": sorted(set(delegations)),
        }
        return await self.acts.submit("call.open", body)

    async def release(self, number: int) -> Sent:
        await self.logsync.sync()
        self._call(number)
        return await self.acts.submit("call.release", {"call": number})

    async def propose(self, number: int, payload: Payload, *, now: int) -> tuple[Sent, Sent]:
        """Table a sealed proposal for call ``number``: the sealed draft, then its
        commitment.  Refused before anything is sent if the call is released or past
        its deadline (``late_proposal``) or this delegation has committed already."""
        await self.logsync.sync()
        call = self._call(number)
        if call.released_at is not None or now > call.deadline:
            exc = LateProposalError("the call is released or its deadline has passed")
            raise UsageError(f"{exc.code}: {exc.detail}")
        member = self.core.roster.member(self.core.me())
        if member.delegation not in call.delegations:
            raise UsageError("not_entitled: your delegation is not named in the call")
        if member.delegation in call.proposals:
            raise UsageError("bad_call: your delegation already committed a proposal")
        core = self.core
        key = crypto.new_content_key(core.rng)
        plaintext = payload.to_bytes()
        talks = core.genesis().talks_id
        sealed = seal_proposal(key, plaintext, talks=talks, call=number, rng=core.rng)
        outer = Payload(
            title=f"Sealed proposal for call {number}",
            file_name=SEALED_NAME,
            media_type=SEALED_TYPE,
            file_data=sealed,
        )
        sent = await self._send(call.channel, outer)
        own = crypto.wrap_key(key, core.keys.public.enc_pk, core.rng)
        core.state.set(f"proposal/{b64e(sent.leaf)}", b64e(own))
        body: dict[str, JSONValue] = {
            "call": number,
            "commit": b64e(crypto.commitment(key, plaintext)),
            "entry": b64e(sent.leaf),
            "index": sent.index,
        }
        committed = await self.acts.submit("proposal.commit", body)
        return sent, committed

    def _mine(self, call: Call) -> Proposal:
        for p in call.proposals.values():
            if p.member == self.core.me():
                return p
        raise UsageError("bad_call: you committed no proposal to this call")

    async def reveal(self, number: int) -> Sent:
        """Wrap this member's proposal key to every recipient device of its draft."""
        await self.logsync.sync()
        call = self._call(number)
        proposal = self._mine(call)
        stored = self.core.state.get(f"proposal/{b64e(proposal.entry)}")
        if not isinstance(stored, str):
            raise UsageError("bad_call: this device does not hold the proposal's key")
        key = self.core.keys.box.unwrap(b64d(stored))
        roster = self.core.log.roster_at(proposal.index)
        header = self.core.log.draft(proposal.index)
        devices = roster.channel_devices(header.channel)
        keys: dict[DeviceId, bytes] = {}
        for device in header.recipients:
            keys[device] = crypto.wrap_key(key, devices[device].enc_pk, self.core.rng)
        body: dict[str, JSONValue] = {
            "call": number,
            "entry": b64e(proposal.entry),
            "keys": keys_to_json(keys),
        }
        return await self.acts.submit("proposal.reveal", body)

    async def open_proposal(self, index: int) -> tuple[Call, Proposal, Payload]:
        """Open the revealed proposal whose sealed draft is at ``index``: its key from
        the reveal, its content checked against the commitment logged before release."""
        await self.logsync.sync()
        found = self.calls_state.proposal_at(index)
        if found is None:
            raise UsageError(f"bad_call: no committed proposal at index {index}")
        call, proposal = found
        if proposal.revealed_at is None:
            raise UsageError("not_released: this proposal is not revealed (yet)")
        wrapped = proposal.keys.get(self.core.device_id)
        if wrapped is None:
            raise UsageError("not_a_recipient: the reveal wraps no key to this device")
        await self.opener.ensure_opened(index)
        outer = self.opener.open_record(index)
        if outer.media_type != SEALED_TYPE or outer.file_data is None:
            raise CommitmentMismatchError("the proposal draft is not a sealed proposal")
        key = self.core.keys.box.unwrap(wrapped)
        talks = self.core.genesis().talks_id
        plaintext = open_proposal(
            key, outer.file_data, talks=talks, call=call.number, commit=proposal.commit
        )
        try:
            return call, proposal, Payload.from_bytes(plaintext)
        except ProtocolError as exc:
            raise CommitmentMismatchError(f"the proposal is malformed: {exc.code}") from exc
