"""Build valid Docket logs in memory with protocol functions only (auditor tests).

:class:`LogBuilder` founds talks, enrols delegations and staff, opens channels, seals
drafts and signs receipts, appending every entry through a real
:class:`~protocol.ledger.Ledger` so that what it builds is valid by construction.  It
also plays the server (checkpoint signatures) and the witnesses (cosignatures), so a
test can tamper with any part and watch the auditor notice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocol import checkpoint as cpt
from protocol import crypto
from protocol.envelope import Payload, seal
from protocol.genesis import WitnessPolicy, found, witness_name
from protocol.keys import DeviceKeys
from protocol.ledger import Ledger
from protocol.merkle import LeafHash, MemoryTree
from protocol.receipt import make_receipt
from protocol.records import DraftId, MessageId
from protocol.roster import ChangeArgs, RosterChange, make_change

ORIGIN = "docket.example/talks/test"
BASE_TIME = 1_700_000_000_000


@dataclass(frozen=True, slots=True)
class Sent:
    """A draft the builder logged: its index, leaf hash and lineage ids."""

    index: int
    leaf: LeafHash
    draft: DraftId
    version: int


class LogBuilder:
    """A talks log under construction: ``entries`` is the log, ``keys`` every device."""

    def __init__(self, rng: crypto.Rng, *, quorum: int = 2) -> None:
        self.rng = rng
        self.log_key = crypto.SigningKey.generate(rng)
        self.mediator = DeviceKeys.generate(rng)
        self.genesis = found(
            mediator_keys=self.mediator,
            mediator="mediator",
            mediator_name="The Mediator",
            origin=ORIGIN,
            title="Test talks",
            log_key=self.log_key.public_bytes(),
            witness=WitnessPolicy(quorum=quorum),
            time=BASE_TIME,
        )
        self.ledger = Ledger(self.genesis)
        self.tree = MemoryTree()
        self.tree.append(self.genesis.raw)
        self.entries: list[bytes] = [self.genesis.raw]
        self.keys: dict[str, DeviceKeys] = {"mediator": self.mediator}
        self.heads: dict[str, str] = {}
        self.clock = BASE_TIME
        self.counter = 0

    @property
    def talks(self) -> bytes:
        return self.genesis.talks_id

    def _tick(self) -> int:
        self.clock += 1000
        return self.clock

    def append(self, data: bytes) -> int:
        """Apply ``data`` to the builder's ledger and log it; return its index."""
        index = self.ledger.size
        self.ledger.apply(data)
        self.entries.append(data)
        self.tree.append(data)
        return index

    # -- roster ------------------------------------------------------------------------

    def change(self, author: str, op: str, args: ChangeArgs) -> int:
        rc = make_change(
            author=self.keys[author], roster=self.ledger.roster, op=op, args=args, time=self._tick()
        )
        return self.append(rc.raw)

    def make_change(self, author: DeviceKeys, op: str, args: ChangeArgs) -> RosterChange:
        """A change signed by ``author`` on the current roster, not logged."""
        return make_change(
            author=author, roster=self.ledger.roster, op=op, args=args, time=self._tick()
        )

    def delegation(self, delegation: str, head: str) -> int:
        self.keys[head] = DeviceKeys.generate(self.rng)
        self.heads[delegation] = head
        args = ChangeArgs(
            delegation=delegation,
            name=delegation.upper(),
            member=head,
            member_name=head.title(),
            devices=(self.keys[head].public,),
        )
        return self.change("mediator", "delegation.create", args)

    def member(self, delegation: str, member: str) -> int:
        self.keys[member] = DeviceKeys.generate(self.rng)
        args = ChangeArgs(
            delegation=delegation,
            member=member,
            member_name=member.title(),
            devices=(self.keys[member].public,),
        )
        return self.change(self.heads[delegation], "member.enrol", args)

    def channel(self, channel: str, delegations: Sequence[str], members: Sequence[str] = ()) -> int:
        args = ChangeArgs(
            channel=channel,
            name=channel.title(),
            kind="working_group",
            delegations=tuple(sorted(delegations)),
            members=tuple(sorted(members)),
        )
        return self.change("mediator", "channel.create", args)

    # -- drafts and receipts -------------------------------------------------------------

    def draft(self, sender: str, channel: str, *, parent: Sent | None = None) -> Sent:
        roster = self.ledger.roster
        keys = self.keys[sender]
        self.counter += 1
        draft_id = DraftId(self.rng(16)) if parent is None else parent.draft
        version = 1 if parent is None else parent.version + 1
        sealed = seal(
            sender=keys,
            talks=self.genesis.talks_id,
            channel=channel,
            counter=self.ledger.counters.get(keys.device_id, 0) + 1,
            msg=MessageId(self.rng(16)),
            draft=draft_id,
            version=version,
            parents=() if parent is None else (parent.leaf,),
            roster=roster.head,
            recipients=roster.channel_devices(channel),
            payload=Payload(title=f"Draft {self.counter}", body=f"Text of draft {self.counter}"),
            time=self._tick(),
            rng=self.rng,
        )
        index = self.append(sealed.header.raw)
        return Sent(index=index, leaf=sealed.header.leaf, draft=draft_id, version=version)

    def receipt(self, device: str, sent: Sent, kind: str, reason: str | None = None) -> int:
        header = self.ledger.drafts[sent.leaf].header
        r = make_receipt(
            device=self.keys[device],
            header=header,
            index=sent.index,
            kind=kind,
            time=self._tick(),
            reason=reason,
        )
        return self.append(r.raw)

    # -- checkpoints -------------------------------------------------------------------

    def witness_keys(self) -> dict[str, DeviceKeys]:
        """Witness name -> signing device, for the mediator and every delegation head."""
        out = {witness_name(ORIGIN, "mediator"): self.mediator}
        for delegation, head in self.heads.items():
            out[witness_name(ORIGIN, delegation)] = self.keys[head]
        return out

    def checkpoint(
        self,
        size: int | None = None,
        *,
        cosigners: Sequence[str] | None = None,
        entries: Sequence[bytes] | None = None,
        log_key: crypto.SigningKey | None = None,
        timestamp: int = BASE_TIME // 1000,
    ) -> bytes:
        """A checkpoint note over the first ``size`` entries (default: all), signed by the
        log and cosigned by ``cosigners`` (witness ids; default: every witness)."""
        tree = self.tree if entries is None else MemoryTree.from_entries(entries)
        size = tree.size if size is None else size
        cp = cpt.Checkpoint(origin=ORIGIN, size=size, root=tree.root(size))
        lines = [cpt.sign_checkpoint(cp, ORIGIN, log_key or self.log_key)]
        witnesses = self.witness_keys()
        for who in ["mediator", *self.heads] if cosigners is None else cosigners:
            name = witness_name(ORIGIN, who)
            lines.append(cpt.cosign(cp, name, witnesses[name].signing, timestamp=timestamp))
        return cpt.format_note(cp.body(), lines)


def standard_log(rng: crypto.Rng) -> tuple[LogBuilder, dict[str, Sent]]:
    """Talks with two delegations, a plenary and a bilateral, drafts and receipts.

    Layout (indices): 0 genesis, 1-6 roster, 7-8 channels, then drafts and receipts; the
    returned dict names the drafts ``d1`` (plenary, fully received and acknowledged),
    ``d2`` (d1's version 2, received by all but ``b2``), ``d3`` (bilateral, received but
    not acknowledged).
    """
    b = LogBuilder(rng)
    b.delegation("alpha", "a-head")  # 1
    b.member("alpha", "a1")  # 2
    b.delegation("beta", "b-head")  # 3
    b.member("beta", "b1")  # 4
    b.member("beta", "b2")  # 5
    b.change(
        "mediator",
        "staff.enrol",
        ChangeArgs(
            member="clerk",
            member_name="Clerk",
            role="staff",
            devices=(b.keys.setdefault("clerk", DeviceKeys.generate(rng)).public,),
        ),
    )  # 6
    b.channel("plenary", ["alpha", "beta"], ["mediator"])  # 7
    b.channel("bilateral-alpha", ["alpha"], ["mediator"])  # 8
    sent: dict[str, Sent] = {}
    sent["d1"] = b.draft("a1", "plenary")  # 9
    for who in ("mediator", "a-head", "b-head", "b1", "b2"):
        b.receipt(who, sent["d1"], "received")  # 10-14
    b.receipt("mediator", sent["d1"], "acknowledged")  # 15
    sent["d2"] = b.draft("b1", "plenary", parent=sent["d1"])  # 16
    for who in ("mediator", "a-head", "a1", "b-head"):
        b.receipt(who, sent["d2"], "received")  # 17-20
    sent["d3"] = b.draft("mediator", "bilateral-alpha")  # 21
    b.receipt("a-head", sent["d3"], "received")  # 22
    b.receipt("a1", sent["d3"], "rejected", reason="ciphertext_mismatch")  # 23
    return b, sent
