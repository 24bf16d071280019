"""``DocketClient``: the async client library every role uses.

Theory of operation
-------------------
The server is trusted for availability only, so the client believes nothing it says
until the protocol's own verifiers have checked it against the pinned talks.  The steps
are told in full where they are done:

1. **Pin** (:mod:`client.admin`): founding or joining stores the genesis whose hash is
   the talks id handed out of band; every later answer is checked against it.
2. **Sync** (:mod:`client.logsync`): checkpoints, consistency proofs and every entry are
   verified through the protocol's ledger before anything is stored; the server's
   promises for our writes must be kept.
3. **Witness** (:mod:`client.logsync`, :mod:`client.witness`): the mediator and each
   delegation's head cosign the verified checkpoint.
4. **Roster** (:mod:`client.admin`): changes are signed on the verified roster head and
   checked locally before they are submitted.
5. **Drafts** (:mod:`client.drafts`, :mod:`client.receipts`): sealed to exactly the
   channel's devices in the verified roster; opened with the ledger's sender and
   recipients; answered with receipts; a logged draft the server withholds is noticed.
6. **Frozen** (:mod:`client.core`): after a ``rollback`` or ``fork`` alarm the client
   refuses to sign anything.
7. **Gossip** (:mod:`client.logsync`): a checkpoint note someone else received is
   checked against our verified log, which proves a split view as soon as two meet.

Evidence for an arbitrator is in :mod:`client.evidence`, the full-log audit in
:mod:`client.audit`.

Layout
------
:class:`~client.core.ClientCore` owns the home, keys, local state, transport and the
verified log.  Each capability is a class over the core: :class:`~client.logsync.LogSync`
below the others, which never import one another; where one needs another (the inbox
posts receipts, acknowledging opens the draft first) :class:`DocketClient` wires them
with a callable.  The facade keeps every method of the client as it was, and exposes
the parts as ``core``, ``logsync``, ``admin``, ``drafts``, ``receipting``, ``evidence``,
``auditing``, ``freshness`` and ``acts`` (:class:`~client.acts.Acts`, which signs and
logs the acts that capabilities such as grants and rounds are made of).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from client.acts import Acts
from client.admin import INVITE_PREFIX, ROLES, Admin, Invitation, InvitationCode
from client.annexes import Annexes
from client.audit import Audit
from client.auditor import AuditReport
from client.core import (
    STALE_PROMISE_MS,
    ClientCore,
    Identity,
    PassphraseSource,
    Sent,
    check_talks_matches,
    decode_id,
    now_ms,
    parse_leaf_or_index,
)
from client.drafts import Drafts, HistoryItem, InboxItem, InboxResult, ReadDraft
from client.errors import ClientError, UsageError, VerificationError
from client.evidence import (
    Evidence,
    bundle_kind,
    verify_agreed_bytes,
    verify_broken_promise_bytes,
    verify_evidence_bytes,
    verify_misbehaviour_bytes,
    verify_round_bytes,
)
from client.freshness import Freshness, ReaderView
from client.lifecycle import Lifecycle
from client.logsync import ENTRIES_PAGE, WAIT_FOR_INDEX, LogSync, SyncResult
from client.negotiation import Negotiation
from client.opener import INLINE_KEEP, DraftOpener, Rejection
from client.receipts import RECEIPT_BATCH, ReceiptLine, Receipts, ReceiptStatus
from client.state import LocalState, VerifiedLog
from client.transport import Transport
from protocol import crypto
from protocol.agreement import AgreedBundle, RoundBundle, verify_agreed, verify_round
from protocol.annex import Manifest
from protocol.brokenpromise import BrokenPromiseBundle
from protocol.checkpoint import Checkpoint, SignedNote, parse_note
from protocol.encoding import JSONValue
from protocol.envelope import Payload
from protocol.errors import ProtocolError
from protocol.evidence import EvidenceBundle
from protocol.genesis import Genesis, WitnessPolicy
from protocol.keys import DeviceId, DeviceKeys, DevicePublic
from protocol.misbehaviour import MisbehaviourBundle
from protocol.receipt import Promise, Receipt
from protocol.roster import Roster


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
        self.core = ClientCore(
            home,
            server=server,
            passphrase=passphrase,
            keys=keys,
            rng=rng,
            timeout=timeout,
            stale_after=stale_after,
        )
        # The lambdas are deliberate (hence the noqa): they look the method up on every
        # call.  The checkpoint fetch, draft fetch and receipt post of every part go
        # through this object's private methods, so patching one of them, on the class
        # or on this instance (as the fault-injection tests do), reaches every caller;
        # and the inbox's receipts go to ``receipting``, built after the opener.
        self.logsync = LogSync(
            self.core,
            fetch_checkpoint=lambda size: self._fetch_checkpoint(size),  # noqa: PLW0108
        )
        opener = DraftOpener(
            self.core,
            self.logsync,
            send_receipts=lambda: self.receipting.send_pending(),  # noqa: PLW0108
            fetch_draft=lambda index: self._fetch_draft(index),  # noqa: PLW0108
        )
        # Everything that signs waits for a view a fresh witness quorum vouches for.
        self.freshness = Freshness(self.core, self.logsync)
        current = self.freshness.require_current
        self.drafts = Drafts(self.core, self.logsync, opener, require_current=current)
        self.acts = Acts(self.core, self.logsync, require_current=current)
        self.receipting = Receipts(
            self.core,
            self.logsync,
            ensure_opened=opener.ensure_opened,
            post=lambda receipts: self._post_receipts(receipts),  # noqa: PLW0108
            require_current=current,
            acts=self.acts,
        )
        self.admin = Admin(self.core, self.logsync, require_current=current)
        self.acts = Acts(self.core, self.logsync, require_current=current)
        self.annexes = Annexes(
            self.core, send_draft=self.drafts.send, read_payload=self._read_payload
        )
        self.lifecycle = Lifecycle(self.core, self.logsync, self.admin, self.acts, opener)
        self.evidence = Evidence(self.core, self.logsync, ensure_opened=opener.ensure_opened)
        self.auditing = Audit(self.core, self.logsync)
        self.negotiation = Negotiation(
            self.core,
            self.logsync,
            self.acts,
            opener,
            send=self.drafts.send,
        )

    async def __aenter__(self) -> DocketClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the network session and the local state."""
        await self.core.close()

    # -- local pieces (the core) ------------------------------------------------------

    @property
    def home(self) -> Path:
        """The home directory."""
        return self.core.home

    @home.setter
    def home(self, value: Path) -> None:
        self.core.home = value

    @property
    def rng(self) -> crypto.Rng:
        """The randomness source for ids and sealing."""
        return self.core.rng

    @rng.setter
    def rng(self, value: crypto.Rng) -> None:
        self.core.rng = value

    @property
    def timeout(self) -> float:
        """The network timeout in seconds."""
        return self.core.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self.core.timeout = value

    @property
    def stale_after_ms(self) -> int:
        """How long a promised entry may stay beyond every checkpoint (``stale_log``)."""
        return self.core.stale_after_ms

    @stale_after_ms.setter
    def stale_after_ms(self, value: int) -> None:
        self.core.stale_after_ms = value

    @property
    def state(self) -> LocalState:
        """The local verified state (opened on first use)."""
        return self.core.state

    @property
    def server(self) -> str:
        """The server URL: the explicit one, else the one stored in the home."""
        return self.core.server

    def public(self) -> DevicePublic:
        """This device's public keys (no passphrase needed)."""
        return self.core.public()

    @property
    def keys(self) -> DeviceKeys:
        """This device's private keys, unlocked on first use."""
        return self.core.keys

    @property
    def device_id(self) -> DeviceId:
        """This device's id."""
        return self.core.device_id

    def genesis(self) -> Genesis:
        """The pinned genesis, or a :class:`UsageError` before founding or joining."""
        return self.core.genesis()

    @property
    def log(self) -> VerifiedLog:
        """The verified log, replayed from the local state on first use."""
        return self.core.log

    @property
    def roster(self) -> Roster:
        """The roster as of the last verified checkpoint."""
        return self.core.roster

    def transport(self, *, auth: bool = True) -> Transport:
        """The HTTP transport (credentials attached once talks are pinned)."""
        return self.core.transport(auth=auth)

    def member_id(self) -> str | None:
        """Our member id: from the verified roster, else what the invitation said."""
        return self.core.member_id()

    init_home = staticmethod(ClientCore.init_home)
    init_home_state = staticmethod(ClientCore.init_home_state)

    def whoami(self) -> Identity:
        """Who this home is: device, member, role, talks, witness name, alarms."""
        return self.core.whoami()

    # -- founding, joining, invitations, roster (admin) -----------------------------------

    async def server_identity(self) -> dict[str, Any]:
        """``GET /v1/talks`` as received (unverified): genesis, log key, origin."""
        return await self.admin.server_identity()

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
        """Found the talks as the mediator (:meth:`client.admin.Admin.found_talks`)."""
        return await self.admin.found_talks(
            founding_token=founding_token,
            title=title,
            mediator=mediator,
            mediator_name=mediator_name,
            log_key=log_key,
            origin=origin,
            quorum=quorum,
            policy=policy,
        )

    async def join(self, code: str, *, name: str, expect_talks: str | None = None) -> Genesis:
        """Accept an invitation: pin the talks from the code, register this device."""
        return await self.admin.join(code, name=name, expect_talks=expect_talks)

    accept_invitation = join

    async def invite(self, member: str, *, role: str, delegation: str | None = None) -> Invitation:
        """Create an invitation (mediator: any role; head: members of own delegation)."""
        return await self.admin.invite(member, role=role, delegation=delegation)

    async def invitations(self) -> list[dict[str, Any]]:
        """Invitations this device created, as the server reports them (unverified)."""
        return await self.admin.invitations()

    async def create_delegation(
        self, delegation: str, *, name: str, head: str, expect_fingerprint: str | None = None
    ) -> Sent:
        """Mediator: create a delegation headed by ``head`` (who accepted an invitation)."""
        return await self.admin.create_delegation(
            delegation, name=name, head=head, expect_fingerprint=expect_fingerprint
        )

    async def enrol(self, member: str, *, expect_fingerprint: str | None = None) -> Sent:
        """Enrol an invited member (head: own delegation; mediator: staff roles)."""
        return await self.admin.enrol(member, expect_fingerprint=expect_fingerprint)

    async def remove(self, member: str) -> Sent:
        """Remove a member (and retire their devices)."""
        return await self.admin.remove(member)

    async def set_witness(self, name: str, *, key: bytes, party: str) -> Sent:
        """Register or rotate a witness key (:meth:`client.admin.Admin.set_witness`)."""
        return await self.admin.set_witness(name, key=key, party=party)

    async def remove_witness(self, name: str) -> Sent:
        """Retire a registered witness."""
        return await self.admin.remove_witness(name)

    async def set_policy(self, policy: WitnessPolicy) -> Sent:
        """Replace the witness policy (mediator)."""
        return await self.admin.set_policy(policy)

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
        return await self.admin.create_channel(
            channel, name=name, kind=kind, delegations=delegations, members=members
        )

    async def set_channel_members(
        self, channel: str, *, delegations: Iterable[str] = (), members: Iterable[str] = ()
    ) -> Sent:
        """Mediator: replace a channel's delegations and members."""
        return await self.admin.set_channel_members(
            channel, delegations=delegations, members=members
        )

    # -- sync, witnessing, gossip (logsync) -----------------------------------------------

    async def sync(self, *, witness: bool = True) -> SyncResult:
        """Verify and store everything new in the log (:meth:`client.logsync.LogSync.sync`)."""
        return await self.logsync.sync(witness=witness)

    async def wait_for(self, index: int, *, timeout: float = WAIT_FOR_INDEX) -> None:
        """Sync until the verified log covers ``index``."""
        await self.logsync.wait_for(index, timeout=timeout)

    def checkpoint_note(self) -> str:
        """The last checkpoint this client verified, as the signed note it received."""
        return self.logsync.checkpoint_note()

    async def check_checkpoint(self, note: bytes | str) -> Checkpoint:
        """Gossip: check a checkpoint note someone else received against our log."""
        return await self.logsync.check_checkpoint(note)

    # -- drafts and receipts ----------------------------------------------------------

    async def send(
        self,
        channel: str,
        payload: Payload,
        *,
        draft_id: bytes | None = None,
        parents: Sequence[bytes] = (),
        non_paper: bool = False,
    ) -> Sent:
        """Seal ``payload`` to every device of ``channel`` and log it."""
        return await self.drafts.send(
            channel, payload, draft_id=draft_id, parents=parents, non_paper=non_paper
        )

    async def inbox(self) -> InboxResult:
        """Sync, open new drafts, send receipts; return the verified inbox."""
        return await self.drafts.inbox()

    async def read(self, index: int, *, offline: bool = False) -> ReadDraft:
        """Open a verified draft addressed to us and mark it read."""
        return await self.drafts.read(index, offline=offline)

    async def _read_payload(self, index: int) -> Payload:
        return (await self.drafts.read(index)).payload

    async def send_annex(
        self,
        channel: str,
        path: Path,
        *,
        title: str,
        media_type: str = "application/octet-stream",
        draft_id: bytes | None = None,
        parents: Sequence[bytes] = (),
    ) -> tuple[Sent, Manifest]:
        """Send a large file as an annex stream beside a draft (:mod:`client.annexes`)."""
        return await self.annexes.send(
            channel, path, title=title, media_type=media_type, draft_id=draft_id, parents=parents
        )

    async def save_annex(self, index: int, dest: Path) -> Manifest:
        """Fetch, check and decrypt the annex of draft ``index`` into ``dest``."""
        return await self.annexes.save(index, dest)

    async def history(self, draft_id: bytes, *, fetch: bool = True) -> list[HistoryItem]:
        """Every logged version of a draft, oldest first."""
        return await self.drafts.history(draft_id, fetch=fetch)

    def watch(
        self, *, count: int | None = None, timeout: float | None = None
    ) -> AsyncIterator[InboxItem]:
        """Yield newly verified drafts as the server announces them."""
        return self.drafts.watch(count=count, timeout=timeout)

    async def ack(self, index: int) -> Sent:
        """Sign an ``acknowledged`` receipt (after our ``received`` one is logged)."""
        return await self.receipting.ack(index)

    def receipts(self, index: int) -> ReceiptStatus:
        """Receipts for the draft at ``index``, from the verified log."""
        return self.receipting.status(index)

    # -- evidence and audit -------------------------------------------------------------

    def view_status(self) -> ReaderView:
        """Whether the verified view is current for a reader (the witness quorum vouched
        for the latest checkpoint within ``max_age``); records ``stale_log`` or
        ``clock_anomaly`` once per checkpoint size when not
        (:meth:`client.freshness.Freshness.check_reader_view`)."""
        return self.freshness.check_reader_view()

    async def disclose(self, index: int) -> EvidenceBundle:
        """Build an evidence bundle for a draft addressed to us (discloses its content key)."""
        return await self.evidence.disclose(index)

    async def disclose_agreed(self, index: int) -> AgreedBundle:
        """An agreed-text bundle for the agreed version at ``index``: its evidence bundle,
        under a checkpoint covering every initial, and the initials with their proofs
        (:mod:`protocol.agreement`).  Discloses the text to whoever gets the file."""
        await self.sync()
        agreed = {a.index: a for a in self.negotiation.agreed()}.get(index)
        if agreed is None:
            raise UsageError(f"bad_initial: the version at index {index} is not agreed")
        evidence = await self.evidence.disclose(index, cover=agreed.agreed_at)
        size = Checkpoint.from_body(parse_note(evidence.checkpoint.encode("utf-8")).text).size
        initials = tuple(self.evidence.proven(i, size) for i in sorted(agreed.initials.values()))
        bundle = AgreedBundle(evidence=evidence, initials=initials)
        try:
            verify_agreed(bundle, self.genesis().talks_id)
        except ProtocolError as exc:
            raise VerificationError(f"built an unverifiable bundle: {exc.detail}") from exc
        return bundle

    async def disclose_round(self, number: int, channel: str | None) -> RoundBundle:
        """A round record bundle for closed round ``number`` of ``channel`` (None: the
        whole talks): the close and every countersignature so far, with proofs under a
        checkpoint with the quorum (:mod:`protocol.agreement`)."""
        await self.sync()
        rounds = [r for r in self.negotiation.rounds() if r.channel == channel]
        if not 1 <= number <= len(rounds) or rounds[number - 1].closed_at is None:
            raise UsageError(f"bad_round: round {number} of this scope is not closed")
        r = rounds[number - 1]
        assert r.closed_at is not None and r.size is not None
        acts = [r.closed_at, *sorted(r.countersigns.values())]
        cp, note = await self.logsync.quorum_checkpoint(max(acts))
        log = self.log
        bundle = RoundBundle(
            genesis=self.evidence.proven(0, cp.size),
            roster=tuple(
                self.evidence.proven(i, cp.size) for i in log.roster_indices if i < cp.size
            ),
            close=self.evidence.proven(r.closed_at, cp.size),
            countersigns=tuple(self.evidence.proven(i, cp.size) for i in acts[1:]),
            consistency=tuple(log.tree.consistency_proof(r.size, cp.size)),
            checkpoint=note,
        )
        try:
            verify_round(bundle, self.genesis().talks_id)
        except ProtocolError as exc:
            raise VerificationError(f"built an unverifiable bundle: {exc.detail}") from exc
        return bundle

    async def disclose_misbehaviour(self, index: int) -> MisbehaviourBundle:
        """Build a misbehaviour bundle for a draft addressed to us that did not open to
        its committed text (:meth:`client.evidence.Evidence.disclose_misbehaviour`)."""
        return await self.evidence.disclose_misbehaviour(index)

    async def disclose_broken_promise(self, index: int) -> BrokenPromiseBundle:
        """Build a broken-promise bundle for the server's promise of ``index``, which the
        log has not honoured (:meth:`client.evidence.Evidence.disclose_broken_promise`)."""
        return await self.evidence.disclose_broken_promise(index)

    verify_evidence = staticmethod(Evidence.verify_evidence)

    async def fetch_log(self) -> tuple[list[bytes], list[bytes], int]:
        """Download the log for an audit, unverified (:meth:`client.audit.Audit.fetch_log`)."""
        return await self.auditing.fetch_log()

    async def audit(
        self,
        *,
        workers: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        broken_promises: Sequence[bytes] = (),
    ) -> AuditReport:
        """Audit the whole log from outside (:meth:`client.audit.Audit.audit`)."""
        return await self.auditing.audit(
            workers=workers, progress=progress, broken_promises=broken_promises
        )

    @property
    def last_audit_pending(self) -> int:
        """Entries the last audit() left out: newer than the last cosigned checkpoint."""
        return self.auditing.last_audit_pending

    @last_audit_pending.setter
    def last_audit_pending(self, value: int) -> None:
        self.auditing.last_audit_pending = value

    def trusted_summary(self) -> dict[str, JSONValue]:
        """The last verified checkpoint and the last one seen with the witness quorum."""
        return self.auditing.trusted_summary()

    # -- seams ----------------------------------------------------------------------------
    # Every checkpoint fetch, draft fetch and receipt post of every part passes through
    # these (see __init__); tests patch them to inject server faults and crashes.

    async def _fetch_checkpoint(
        self, size: int | None = None
    ) -> tuple[Checkpoint, SignedNote, str]:
        return await self.logsync.fetch_checkpoint_from_server(size)

    async def _fetch_draft(self, index: int) -> tuple[dict[DeviceId, bytes], bytes]:
        return await self.drafts.opener.fetch_draft_from_server(index)

    async def _post_receipts(self, receipts: Sequence[Receipt]) -> list[Promise]:
        return await self.receipting.post_to_server(receipts)


__all__ = [
    "ENTRIES_PAGE",
    "INLINE_KEEP",
    "INVITE_PREFIX",
    "RECEIPT_BATCH",
    "ROLES",
    "STALE_PROMISE_MS",
    "WAIT_FOR_INDEX",
    "ClientError",
    "DocketClient",
    "HistoryItem",
    "Identity",
    "InboxItem",
    "InboxResult",
    "Invitation",
    "InvitationCode",
    "PassphraseSource",
    "ReadDraft",
    "ReceiptLine",
    "ReceiptStatus",
    "Rejection",
    "Sent",
    "SyncResult",
    "bundle_kind",
    "check_talks_matches",
    "decode_id",
    "now_ms",
    "parse_leaf_or_index",
    "verify_agreed_bytes",
    "verify_broken_promise_bytes",
    "verify_evidence_bytes",
    "verify_misbehaviour_bytes",
    "verify_round_bytes",
]
